//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The campaign's agent processes and what it reads in their log.

// spawn starts the agent through lab.sh agent-exec, as a child of the test,
// and returns when it runs ztagent itself (lab.sh has then written its pid
// for agent-wait).
func (c *campaign) spawn() time.Time {
	c.mark()
	a, err := c.l.execAgent()
	if err != nil {
		c.fatalf("start the agent: %v", err)
	}
	c.agent = a
	at, ok := a.waitExec()
	if !ok {
		c.fatalf("the agent exited before it ran ztagent: %v", a.err)
	}
	return at
}

// mark writes the round in the agent's log, where lastLogLine finds it.
func (c *campaign) mark() {
	f, err := os.OpenFile(c.logPath(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		c.fatalf("agent log: %v", err)
	}
	fmt.Fprintf(f, "%s round %d\n", campaignMark, c.round)
	f.Close()
}

const campaignMark = "=== campaign"

func (c *campaign) logPath() string { return filepath.Join(c.l.dir, "agent.log") }

// lastLogLine is the message of the agent's last log line since the last
// mark ("(none)" when it logged nothing).
func (c *campaign) lastLogLine() string {
	for _, line := range slices.Backward(c.logSinceMark()) {
		if msg := logMessage(line); msg != "" {
			return msg
		}
	}
	return "(none)"
}

// logSinceMark is the agent's log from the last mark on, line by line.
func (c *campaign) logSinceMark() []string {
	b, _ := os.ReadFile(c.logPath())
	s := string(b)
	if i := strings.LastIndex(s, campaignMark); i >= 0 {
		s = s[i:]
	}
	return strings.Split(strings.TrimSpace(s), "\n")
}

// logMessage is the message of a zap console line (time, level, [logger,]
// caller, message, fields), "" for anything else.
func logMessage(line string) string {
	f := strings.Split(line, "\t")
	for i := 2; i < len(f)-1; i++ {
		if strings.Contains(f[i], ".go:") {
			return f[i+1]
		}
	}
	return ""
}

// agentProc is an agent process the test owns (lab.sh agent-exec becomes
// ztagent), reaped as soon as it exits.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once reaped; err is then set
	err  error
}

func (l *lab) execAgent() (*agentProc, error) {
	cmd := exec.Command(filepath.Join(l.root, "scripts/lab.sh"), "agent-exec")
	cmd.Env = l.env(nil)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &agentProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	return a, nil
}

// waitExec waits until the process runs ztagent (lab.sh and ip(8) exec
// into it) and returns when it did; false when it exited first.
func (a *agentProc) waitExec() (time.Time, bool) {
	comm := fmt.Sprintf("/proc/%d/comm", a.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case <-a.done:
			return time.Time{}, false
		default:
		}
		if b, _ := os.ReadFile(comm); strings.TrimSpace(string(b)) == "ztagent" {
			return time.Now(), true
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Time{}, false
}

// loggedAfter is how long after from the agent logged msg, by the log's
// timestamps (since the last mark). When msg is not there (its wording
// changed), it is the time until now: an upper bound, said in the test log.
func (c *campaign) loggedAfter(from time.Time, msg string) time.Duration {
	for _, line := range c.logSinceMark() {
		if logMessage(line) != msg {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", strings.SplitN(line, "\t", 2)[0])
		if err == nil {
			return max(at.Sub(from), time.Millisecond)
		}
	}
	c.t.Logf("no %q in the agent's log: taking the time until now", msg)
	return time.Since(from)
}
