//go:build !linux

package main

import "os/exec"

// dieWithParent is Linux's Pdeathsig; elsewhere a killed bench may leave
// its no-op driver running.
func dieWithParent(*exec.Cmd) {}
