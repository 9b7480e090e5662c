//go:build !windows

package main

import (
	"os"
	"os/exec"
)

func prepareConsole()        {}
func setGroup(cmd *exec.Cmd) {}

// interrupt sends SIGINT, as Ctrl+C at a terminal does.
func interrupt(p *os.Process) error { return p.Signal(os.Interrupt) }
