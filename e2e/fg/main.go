// Command fg runs a command in the foreground the way a person at a terminal
// does, for the Windows smoke test (scripts/smoke.ps1), where a script has no
// other way to press Ctrl+C: it starts the command, writing its output to a
// file, and when a stop file appears it interrupts it (Ctrl+Break on
// Windows, SIGINT elsewhere), waits for it to exit and exits as it did.
//
//	fg -log agent.log -stop agent.stop -- ztagent run ...
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"
)

func main() {
	logPath := flag.String("log", "", "file the command's output goes to")
	stopPath := flag.String("stop", "", "interrupt the command once this file exists")
	grace := flag.Duration("grace", 60*time.Second, "how long the command may take to exit once interrupted")
	flag.Parse()
	if err := run(*logPath, *stopPath, *grace, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "fg:", err)
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		os.Exit(1)
	}
}

func run(logPath, stopPath string, grace time.Duration, args []string) error {
	if logPath == "" || stopPath == "" || len(args) == 0 {
		return errors.New("usage: fg -log FILE -stop FILE -- COMMAND [ARG...]")
	}
	out, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer out.Close()
	prepareConsole()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	setGroup(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return fmt.Errorf("%s exited before it was stopped: %w", args[0], err)
		case <-tick.C:
		}
		if _, err := os.Stat(stopPath); err == nil {
			break
		}
	}
	if err := interrupt(cmd.Process); err != nil {
		cmd.Process.Kill()
		return fmt.Errorf("interrupt %s: %w", args[0], err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(grace):
		cmd.Process.Kill()
		return fmt.Errorf("%s did not exit within %s of the interrupt", args[0], grace)
	}
}
