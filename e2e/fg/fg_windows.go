package main

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// prepareConsole gives fg a console if it has none (a CI job's), which the
// command shares: console control events reach only processes on one.
func prepareConsole() {
	windows.NewLazySystemDLL("kernel32.dll").NewProc("AllocConsole").Call()
}

// setGroup starts the command in a process group of its own, so that
// Ctrl+Break reaches it and not fg.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// interrupt sends Ctrl+Break to the command's group; Go programs read it as
// os.Interrupt.
func interrupt(p *os.Process) error {
	return windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid))
}
