//go:build !unix

package process

import (
	"os/exec"
	"syscall"
)

// Without process groups only the child itself can be stopped, and only
// by killing it.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func kill(cmd *exec.Cmd) error { return cmd.Process.Kill() }
