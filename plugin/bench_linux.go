package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel send c SIGTERM when bench dies, however it
// dies: a bench killed with SIGKILL leaves no no-op driver behind.
func dieWithParent(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
