//go:build unix && !linux

package process

import "syscall"

// sysProcAttr puts the child in a process group of its own, so Stop
// reaches its workers.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
