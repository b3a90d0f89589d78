//go:build unix

package process

import (
	"errors"
	"os/exec"
	"syscall"
)

// signalGroup sends sig to the child's whole process group, so workers it
// forked go with it. A group that is already gone is not an error.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	err := syscall.Kill(-cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func terminate(cmd *exec.Cmd) error { return signalGroup(cmd, syscall.SIGTERM) }

func kill(cmd *exec.Cmd) error { return signalGroup(cmd, syscall.SIGKILL) }
