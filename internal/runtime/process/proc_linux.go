//go:build linux

package process

import "syscall"

// sysProcAttr puts the child in a process group of its own (so Stop
// reaches its workers) and has the kernel kill it if slipway dies, so a
// crashed slipway leaves no model server holding a GPU. Pdeathsig fires
// when the forking OS thread exits; Go only retires a thread when a
// goroutine exits while locked to it, and then the supervisor restarts the
// child, so the worst case is a spurious restart.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
