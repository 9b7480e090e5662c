//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// The campaign kills the agent at random moments across its life and checks
// that it always comes back, and that the client namespace is left exactly
// as before the first start. `make test` runs the fast form (8 rounds),
// `make soak` the long one (50). The schedule of every round (what it does,
// when it kills) is drawn from one seed, logged first; set ZT_CAMPAIGN_SEED
// (and ZT_CAMPAIGN_ROUNDS) to replay it.
const (
	campaignSeedEnv   = "ZT_CAMPAIGN_SEED"
	campaignRoundsEnv = "ZT_CAMPAIGN_ROUNDS"
	campaignRounds    = 8
)

// phase is the part of the agent's life a round kills it in.
type phase int

const (
	// phaseEnroll starts from a fresh state directory: enrollment, then the
	// first TUN, routes and resolv.conf change; one or two kills.
	phaseEnroll phase = iota
	// phaseStart starts from the saved enrollment (repairing what an
	// earlier kill left) and kills it one to three times in its first
	// milliseconds: TUN, routes and rules, DNS proxy, resolv.conf.
	phaseStart
	// phaseLoad kills a connected agent while curl and dig loops go
	// through it.
	phaseLoad
	// phaseReenroll kills it while `ztdiag -e` enrolls again and the agent
	// restarts itself with the new enrollment.
	phaseReenroll
	// phaseStop kills it while it stops on SIGTERM: resolv.conf, rules and
	// routes being put back.
	phaseStop
	numPhases
)

func (p phase) String() string {
	return [...]string{"enroll", "start", "load", "re-enroll", "stop"}[p]
}

// timing is how long the agent's own steps take on this machine, measured
// before the first round (calibrate): kills are placed at fractions of them,
// so that they fall inside those steps on a fast machine and a slow one alike.
type timing struct {
	enroll time.Duration // exec to "agent running", enrolling first
	start  time.Duration // exec to "agent running", with a saved enrollment
	stop   time.Duration // SIGTERM to exit
}

// window is where after its trigger (the agent's exec, the load, ztdiag -e,
// SIGTERM) a kill may fall: the step itself and a quarter more.
func (p phase) window(tm timing) (lo, hi time.Duration) {
	switch p {
	case phaseEnroll:
		return 0, tm.enroll * 5 / 4
	case phaseStart:
		return 0, tm.start * 5 / 4
	case phaseLoad:
		return 200 * time.Millisecond, 2 * time.Second
	case phaseReenroll:
		// ztdiag's own start, the enrollment, then the agent's restart.
		return 0, 10*time.Millisecond + (tm.enroll+tm.stop)*5/4
	default:
		return 0, tm.stop * 5 / 4
	}
}

// roundPlan is one round, drawn whole before it runs so that a seed replays
// the same schedule whatever the timing of the machine.
type roundPlan struct {
	phase phase
	kills []float64 // where in the phase's window each kill falls, in [0, 1)
	// keep leaves the restarted agent running into the next round (whose
	// kills then follow a kill, with no clean stop between); otherwise it
	// is stopped cleanly and the namespace compared.
	keep bool
}

func drawPlans(rng *rand.Rand, rounds int) []roundPlan {
	plans := make([]roundPlan, rounds)
	for i := range plans {
		p := &plans[i]
		p.phase = phase(rng.IntN(int(numPhases)))
		n := 1
		switch p.phase {
		case phaseEnroll:
			n = 1 + rng.IntN(2)
		case phaseStart:
			n = 1 + rng.IntN(3)
		}
		for range n {
			p.kills = append(p.kills, rng.Float64())
		}
		p.keep = i < rounds-1 && rng.IntN(2) == 0
	}
	return plans
}

func (p roundPlan) String() string {
	var ks []string
	for _, f := range p.kills {
		ks = append(ks, fmt.Sprintf("%.0f%%", 100*f))
	}
	then := "clean stop and compare"
	if p.keep {
		then = "left running"
	}
	return fmt.Sprintf("%s, kill at %s of its window, then %s", p.phase, strings.Join(ks, " / "), then)
}

// TestCampaign: see the comment on campaignSeedEnv.
func TestCampaign(t *testing.T) {
	requireE2E(t)
	rounds := campaignRounds
	if s := os.Getenv(campaignRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of rounds ≥ 1", campaignRoundsEnv, s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(campaignSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", campaignSeedEnv, s)
		}
		seed = n
	}
	t.Logf("campaign: %d rounds, seed %d (replay: %s=%d %s=%d)", rounds, seed,
		campaignSeedEnv, seed, campaignRoundsEnv, rounds)
	plans := drawPlans(rand.New(rand.NewPCG(seed, seed)), rounds)

	l := newLab(t)
	c := &campaign{t: t, l: l, seed: seed, before: l.clientNetState(), lastLines: map[string]int{}}
	t.Cleanup(c.cleanup)
	start := time.Now()
	c.round = -1
	c.calibrate()
	for i, p := range plans {
		c.round = i
		c.plan = p
		// Stop in time for the lab's teardown: a test binary that times
		// out runs no cleanup and leaves the namespaces behind.
		if dl, ok := t.Deadline(); ok && time.Until(dl) < time.Minute {
			c.fatalf("out of time before this round (-timeout); %d rounds ran", i)
		}
		t.Logf("round %d: %s", i, p)
		c.run()
	}
	c.summary(time.Since(start))
}

// campaign is the state of one TestCampaign.
type campaign struct {
	t      *testing.T
	l      *lab
	seed   uint64
	before netState

	round int
	plan  roundPlan
	agent *agentProc // the agent running, nil when none is

	timing    timing
	kills     int
	lastLines map[string]int // the agent's last log line before each kill
}

// calibrate measures the agent's steps (see timing) in a clean enrollment
// and three starts, each followed by a stop checked like the rounds'. It
// keeps the median of the starts and of the stops: one slow moment of a
// busy machine must not widen the windows past the steps.
func (c *campaign) calibrate() {
	at := c.spawn()
	c.waitConnected()
	c.timing.enroll = c.loggedAfter(at, "agent running")
	stops := []time.Duration{c.stopClean()}
	var starts []time.Duration
	for range 3 {
		at = c.spawn()
		c.waitConnected()
		starts = append(starts, c.loggedAfter(at, "agent running"))
		stops = append(stops, c.stopClean())
	}
	c.timing.start, c.timing.stop = median(starts), median(stops)
	c.t.Logf("calibration: enroll and start %s, start %s (of %v), stop %s (of %v)",
		c.timing.enroll, c.timing.start, starts, c.timing.stop, stops)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// delay is where kill i of the round falls after its trigger.
func (c *campaign) delay(i int) time.Duration {
	lo, hi := c.plan.phase.window(c.timing)
	return lo + time.Duration(c.plan.kills[i]*float64(hi-lo))
}

func (c *campaign) run() {
	p := c.plan
	switch p.phase {
	case phaseEnroll:
		c.stopClean()
		if err := os.RemoveAll(filepath.Join(c.l.dir, "agent")); err != nil {
			c.fatalf("fresh state directory: %v", err)
		}
		c.killStarts()
	case phaseStart:
		if c.agent != nil {
			c.killAt(time.Now(), 0, "running, idle")
		}
		c.killStarts()
	case phaseLoad:
		c.ensureRunning()
		stop := c.startLoad()
		c.killAt(time.Now(), c.delay(0), "under load")
		stop()
	case phaseReenroll:
		c.ensureRunning()
		cmd := exec.Command("ip", "netns", "exec", c.l.ns("client"), c.l.bin("ztdiag"), "--socket", c.l.sock(), "-e")
		if err := cmd.Start(); err != nil {
			c.fatalf("ztdiag -e: %v", err)
		}
		c.killAt(time.Now(), c.delay(0), "re-enrolling")
		cmd.Wait() // fails or not, depending on the moment: either is right
	case phaseStop:
		c.ensureRunning()
		if err := c.agent.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			c.fatalf("SIGTERM: %v", err)
		}
		c.killAt(time.Now(), c.delay(0), "stopping")
	}
	c.restart()
	if !p.keep {
		c.stopClean()
	}
}

// killStarts starts the agent and kills it, once per kill of the round,
// each delay measured from the moment it runs ztagent itself.
func (c *campaign) killStarts() {
	for i := range c.plan.kills {
		c.killAt(c.spawn(), c.delay(i), "starting")
	}
}

// killAt sends SIGKILL to the agent at from+d and waits until it is gone.
func (c *campaign) killAt(from time.Time, d time.Duration, what string) {
	a := c.agent
	c.agent = nil
	time.Sleep(time.Until(from.Add(d)))
	a.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		c.fatalf("agent %d still alive 10 s after SIGKILL", a.cmd.Process.Pid)
	}
	c.kills++
	last := c.lastLogLine()
	c.lastLines[last]++
	status := "killed"
	if ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && !ws.Signaled() {
		status = fmt.Sprintf("had exited (%d) before the kill", ws.ExitStatus())
	}
	c.t.Logf("  %s at +%.1fms: %s; its last log line: %s", what, float64(d.Microseconds())/1000, status, last)
}

// restart starts the agent after a kill and checks that it comes back.
func (c *campaign) restart() {
	c.spawn()
	c.waitConnected()
}

// waitConnected waits until the agent says it is connected and checks that
// both a private app and a public name work through it.
func (c *campaign) waitConnected() {
	if out, err := c.l.scriptOut(nil, "agent-wait"); err != nil {
		c.fatalf("the agent did not come back: %v\n%s", err, out)
	}
	var st ctlapi.Status
	out := c.l.must("client", c.l.bin("ztdiag"), "--socket", c.l.sock(), "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.fatalf("status --json: %v\n%s", err, out)
	}
	if st.State != ctlapi.StateRunning || st.Tunnel.State != "connected" {
		c.fatalf("after the restart: state %q, tunnel %q, want running and connected", st.State, st.Tunnel.State)
	}
	if page, code := c.l.run("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/"); code != 0 ||
		!strings.Contains(page, "hello from corp web") {
		c.fatalf("private app after the restart: curl exit %d:\n%s", code, page)
	}
	// The agent forwards public names to the resolver of the original
	// resolv.conf (not to one a kill left behind: itself, or none).
	if got, want := fmt.Sprint(st.DNS.Upstreams), fmt.Sprint(c.originalResolvers()); got != want {
		c.fatalf("after the restart the agent forwards to %s, want the original resolvers %s", got, want)
	}
	if len(st.DNS.Listen) == 0 {
		c.fatalf("after the restart the agent's DNS proxy listens nowhere")
	}
	if out, code := c.l.run("client", "dig", "+short", "+time=3", "+tries=1", "-p", strconv.Itoa(int(st.DNS.Listen[0].Port())),
		"@"+st.DNS.Listen[0].Addr().String(), "www.public.test", "A"); code != 0 || strings.TrimSpace(out) != "10.10.0.1" {
		c.fatalf("public name through the agent after the restart: dig exit %d, answer %q, want 10.10.0.1", code, out)
	}
	// One routing rule per family: none left over beside the new one.
	for _, v := range []string{"-4", "-6"} {
		if rules := c.l.must("client", "ip", v, "rule", "show"); strings.Count(rules, "lookup 122") != 1 {
			c.fatalf("after the restart, ip %s rule shows the agent's rule other than once:\n%s", v, rules)
		}
	}
}

// originalResolvers are the nameservers of resolv.conf before the first
// start, as the agent reports its upstreams.
func (c *campaign) originalResolvers() []netip.AddrPort {
	var out []netip.AddrPort
	for line := range strings.Lines(c.before.resolv) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a, 53))
			}
		}
	}
	return out
}

// ensureRunning starts the agent and waits until it is connected, unless
// one is running.
func (c *campaign) ensureRunning() {
	if c.agent == nil {
		c.restart()
	}
}

// stopClean stops a running agent with SIGTERM, checks that the client
// namespace is exactly as it was before the first start, and returns how
// long the agent took to exit.
func (c *campaign) stopClean() time.Duration {
	if c.agent == nil {
		return 0
	}
	a := c.agent
	c.agent = nil
	start := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		c.fatalf("the agent did not stop within 10 s of SIGTERM")
	}
	if ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signaled() || ws.ExitStatus() != 0 {
		c.fatalf("the agent's clean stop: %v", a.cmd.ProcessState)
	}
	took := time.Since(start)
	if after := c.l.clientNetState(); after != c.before {
		c.fatalf("the client namespace differs from before the first start:\n%s", diffNetState(c.before, after))
	}
	return took
}

// startLoad runs two curl loops (a private app by name, an IP app) and a dig
// loop (private and public names) in the client namespace until the
// returned function is called.
func (c *campaign) startLoad() (stop func()) {
	loops := []string{
		`while :; do curl -s -o /dev/null --max-time 2 http://web.corp.test/; done`,
		`while :; do curl -s -o /dev/null --max-time 2 http://10.20.0.10/; done`,
		`while :; do dig +short +time=1 +tries=1 web.corp.test a.apps.corp.test www.public.test >/dev/null; done`,
	}
	var cmds []*exec.Cmd
	for _, loop := range loops {
		cmd := exec.Command("ip", "netns", "exec", c.l.ns("client"), "bash", "-c", loop)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			c.fatalf("load: %v", err)
		}
		cmds = append(cmds, cmd)
	}
	return func() {
		for _, cmd := range cmds {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
}

func (c *campaign) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("round %d (%s), seed %d (replay: %s=%d %s=%d): %s\nagent log: %s", c.round, c.plan, c.seed,
		campaignSeedEnv, c.seed, campaignRoundsEnv, c.round+1, fmt.Sprintf(format, args...), c.logPath())
}

// cleanup kills an agent the test left (it failed part-way) before the lab
// goes down.
func (c *campaign) cleanup() {
	if c.agent != nil {
		c.agent.cmd.Process.Kill()
		<-c.agent.done
	}
}

func (c *campaign) summary(took time.Duration) {
	var lines []string
	for msg, n := range c.lastLines {
		lines = append(lines, fmt.Sprintf("%4d  %s", n, msg))
	}
	slices.Sort(lines)
	c.t.Logf("campaign: %d rounds, %d kills in %s, seed %d; the agent's last log line before each kill:\n%s",
		c.round+1, c.kills, took.Round(time.Millisecond), c.seed, strings.Join(lines, "\n"))
}

// diffNetState shows the parts of two snapshots that differ, line by line.
func diffNetState(before, after netState) string {
	var b strings.Builder
	for _, part := range []struct{ name, before, after string }{
		{"resolv.conf", before.resolv, after.resolv},
		{"addresses", before.addrs, after.addrs},
		{"routes", before.routes, after.routes},
		{"rules", before.rules, after.rules},
	} {
		if part.before == part.after {
			continue
		}
		fmt.Fprintf(&b, "--- %s before:\n%s--- %s after:\n%s", part.name, part.before, part.name, part.after)
	}
	return b.String()
}
