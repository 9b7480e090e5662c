package steering

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// benchConfig builds 10,000 apps with 50,000 host patterns: per app two exact
// names, one wildcard, one CIDR (IPv6 for one app in ten) and one range, plus a
// /16 enclosing a hundred apps' prefixes for every 100th app, with port sets
// drawn from what real tenants use.
func benchConfig() *Config {
	rng := rand.New(rand.NewPCG(1, 2))
	tcpSets := []string{"443", "80,443", "22", "3389", "443,8443,8000-8099", "1-65535", "1433,1521,3306,5432", "25,465,587"}
	udpSets := []string{"", "", "", "53", "5060-5061,10000-20000", "500,4500"}
	c := &Config{Apps: make([]App, 10000)}
	for i := range c.Apps {
		a, b := i/256, i%256
		dept := i % 97
		hosts := []string{
			fmt.Sprintf("svc%d.dept%d.corp.example", i, dept),
			fmt.Sprintf("api-%d.internal.example", i),
			fmt.Sprintf("*.app%d.dept%d.corp.example", i, dept),
		}
		if i%10 == 0 {
			hosts = append(hosts, fmt.Sprintf("fd00:%x:%x::/48", a, b))
		} else {
			hosts = append(hosts, fmt.Sprintf("10.%d.%d.0/25", a, b))
		}
		hosts = append(hosts, fmt.Sprintf("10.%d.%d.130-10.%d.%d.200", a, b, a, b))
		if i%100 == 0 {
			hosts[1] = fmt.Sprintf("10.%d.0.0/16", a) // nest a /16 over its neighbours
		}
		c.Apps[i] = App{
			ID:    fmt.Sprintf("app-%05d", i),
			Hosts: hosts,
			TCP:   tcpSets[rng.IntN(len(tcpSets))],
			UDP:   udpSets[rng.IntN(len(udpSets))],
		}
	}
	c.Exceptions.Domains = []string{"*.public.corp.example", "login.corp.example"}
	c.Exceptions.Addresses = []string{"10.200.0.0/16"}
	return c
}

type benchData struct {
	cfg   *Config
	snap  *Snapshot
	flows []Flow
	names []string
	// stubFlows are what the data path sees for names: a stub address and the
	// name the stub pool maps it to.
	stubFlows []Flow
}

var benchCache *benchData

func loadBench(b *testing.B) *benchData {
	if benchCache != nil {
		return benchCache
	}
	cfg := benchConfig()
	s, err := Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	d := &benchData{cfg: cfg, snap: s}
	for range 4096 {
		i := rng.IntN(12000) // some beyond the apps: misses
		a, x := i/256, i%256
		var addr netip.Addr
		switch rng.IntN(4) {
		case 0:
			addr = netip.MustParseAddr(fmt.Sprintf("10.%d.%d.%d", a, x, rng.IntN(256)))
		case 1:
			addr = netip.MustParseAddr(fmt.Sprintf("fd00:%x:%x::%x", a, x, rng.IntN(65536)))
		case 2:
			addr = netip.MustParseAddr(fmt.Sprintf("10.%d.%d.%d", a, rng.IntN(256), 130+rng.IntN(80)))
		default:
			addr = netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", rng.IntN(256)))
		}
		proto, port := TCP, []uint16{443, 80, 22, 8443, 3389, 5432, 8080}[rng.IntN(7)]
		if rng.IntN(5) == 0 {
			proto, port = UDP, []uint16{53, 5060, 12000, 4500}[rng.IntN(4)]
		}
		d.flows = append(d.flows, Flow{Addr: addr, Proto: proto, Port: port})
		dept := i % 97
		var n string
		switch rng.IntN(5) {
		case 0:
			n = fmt.Sprintf("svc%d.dept%d.corp.example", i, dept)
		case 1:
			n = fmt.Sprintf("API-%d.internal.example.", i)
		case 2:
			n = fmt.Sprintf("host%d.web.app%d.dept%d.corp.example", rng.IntN(100), i, dept)
		case 3:
			n = fmt.Sprintf("www%d.example.com", i)
		default:
			n = fmt.Sprintf("x.public.corp.example")
		}
		d.names = append(d.names, n)
		stub := netip.AddrFrom4([4]byte{100, 64, byte(len(d.names) >> 8), byte(len(d.names))})
		d.stubFlows = append(d.stubFlows, Flow{Addr: stub, FQDN: n, Proto: proto, Port: port})
	}
	benchCache = d
	return d
}

// BenchmarkMatch10k measures the matcher at 10,000 apps / 50,000 hosts against
// a naive linear scan over the same parsed data.
func BenchmarkMatch10k(b *testing.B) {
	d := loadBench(b)
	b.Run("flow-addr", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		i := 0
		for b.Loop() {
			d.snap.MatchFlow(d.flows[i&4095])
			i++
		}
	})
	b.Run("flow-fqdn", func(b *testing.B) {
		defer reportCPU(b)()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.snap.MatchFlow(d.stubFlows[i&4095])
			i++
		}
	})
	b.Run("name", func(b *testing.B) {
		defer reportCPU(b)()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.snap.MatchName(d.names[i&4095])
			i++
		}
	})
	b.Run("compile", func(b *testing.B) {
		defer reportCPU(b)()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Compile(d.cfg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(snapshotHeapMB(b, d.cfg), "heap-MB")
	})
	nv := newNaive(b, d.cfg)
	b.Run("naive-flow-addr", func(b *testing.B) {
		defer reportCPU(b)()
		i := 0
		for b.Loop() {
			nv.matchAddr(d.flows[i&4095])
			i++
		}
	})
	b.Run("naive-name", func(b *testing.B) {
		defer reportCPU(b)()
		i := 0
		for b.Loop() {
			nv.matchName(d.names[i&4095])
			i++
		}
	})
}

// naive is the baseline: every rule checked in turn, most specific kept.
type naive struct {
	apps  []checkedApp
	exDom []Host
	exAdr []Host
}

func newNaive(b testing.TB, c *Config) *naive {
	ck, err := check(c)
	if err != nil {
		b.Fatal(err)
	}
	return &naive{apps: ck.apps, exDom: ck.exDomains, exAdr: ck.exAddrs}
}

func (n *naive) matchAddr(f Flow) (app int) {
	for _, s := range n.exAdr {
		for _, p := range s.Prefixes {
			if p.Contains(f.Addr) {
				return -1
			}
		}
	}
	best, bestBits := -1, -1
	for i := range n.apps {
		a := &n.apps[i]
		ports := a.tcp
		if f.Proto == UDP {
			ports = a.udp
		}
		if !ports.contains(f.Port) {
			continue
		}
		for _, s := range a.hosts {
			for _, p := range s.Prefixes {
				if p.Bits() > bestBits && p.Contains(f.Addr) {
					best, bestBits = i, p.Bits()
				}
			}
		}
	}
	return best
}

func (n *naive) matchName(name string) (app int) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	match := func(s Host) int { // specificity, -1 for no match
		switch {
		case s.Kind == HostName && s.Name == name:
			return 1 << 10
		case s.Kind == HostWildcard && strings.HasSuffix(name, "."+s.Name):
			return len(s.Name)
		}
		return -1
	}
	for _, s := range n.exDom {
		if match(s) >= 0 {
			return -1
		}
	}
	best, bestScore := -1, -1
	for i := range n.apps {
		for _, s := range n.apps[i].hosts {
			if sc := match(s); sc > bestScore {
				best, bestScore = i, sc
			}
		}
	}
	return best
}

// reportCPU reports process CPU time per operation when the returned func runs.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// snapshotHeapMB measures the live heap one compiled snapshot holds.
func snapshotHeapMB(b *testing.B, c *Config) float64 {
	var m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	s, err := Compile(c)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m2)
	runtime.KeepAlive(s)
	return float64(m2.HeapAlloc-m1.HeapAlloc) / (1 << 20)
}
