// Package cmd_test holds the dependency rule of the module as a test: what each
// binary may link, and which way the packages may import one another (DESIGN.md:
// cmd → agent → enroll, steering, dnsproxy, tunnel → platform; steering pure;
// the cloud apart from the agent). It reads the import graph with `go list`, for
// each OS the agent ships on, so a file that only builds on one OS is checked
// too; test imports are not part of the graph.
package cmd_test

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ztagent/ztagent"

// goosList are the systems the binaries are built for.
var goosList = []string{"linux", "darwin", "windows"}

// graph maps an import path to the packages it imports (not in tests).
type graph map[string][]string

// loadGraph lists every package of the module and everything they depend on,
// as built for goos with CGO_ENABLED=0 (as the release builds are).
func loadGraph(t *testing.T, goos string) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}\t{{join .Imports \" \"}}", "./...")
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list (GOOS=%s): %v\n%s", goos, err, stderr.String())
	}
	g := graph{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, "\t")
		g[path] = strings.Fields(imports)
	}
	return g
}

// chain returns the shortest import chain from root to a package that bad
// matches, or nil when root links none.
func (g graph) chain(root string, bad func(string) bool) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if bad(p) {
			var c []string
			for ; p != ""; p = prev[p] {
				c = append(c, short(p))
			}
			slices.Reverse(c)
			return c
		}
		for _, q := range g[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// modulePackages are the packages of this module, sorted.
func (g graph) modulePackages() []string {
	var ps []string
	for p := range g {
		if p == module || strings.HasPrefix(p, module+"/") {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// short drops the module path, for messages.
func short(p string) string { return strings.TrimPrefix(p, module+"/") }

// in reports whether p is dir (module-relative) or a package below it.
func in(p, dir string) bool {
	return p == module+"/"+dir || strings.HasPrefix(p, module+"/"+dir+"/")
}

// under matches the packages in any of dirs.
func under(dirs ...string) func(string) bool {
	return func(p string) bool {
		for _, d := range dirs {
			if in(p, d) {
				return true
			}
		}
		return false
	}
}

// prefixed matches third-party or standard packages by path prefix.
func prefixed(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				return true
			}
		}
		return false
	}
}

func anyOf(fs ...func(string) bool) func(string) bool {
	return func(p string) bool {
		for _, f := range fs {
			if f(p) {
				return true
			}
		}
		return false
	}
}

func except(f func(string) bool, allowed ...string) func(string) bool {
	return func(p string) bool {
		return f(p) && !slices.ContainsFunc(allowed, func(a string) bool { return in(p, a) })
	}
}

// TestBinaryDependencies: what each binary links. The daemon links no server
// code; ztdiag links neither the daemon nor gVisor; ztcloud links none of the
// agent's OS integration (the gateway role opens its one TUN with the TUN
// driver itself; its address and routes are the operator's, as with
// wireguard-go); none links the packaging tools.
func TestBinaryDependencies(t *testing.T) {
	rules := []struct {
		name, binary string
		what         string
		bad          func(string) bool
	}{
		{"ztagent/no cloud", "cmd/ztagent", "a package of cloud/", under("cloud")},
		{"ztagent/no bcrypt", "cmd/ztagent", "bcrypt", prefixed("golang.org/x/crypto/bcrypt")},
		{"ztagent/no html/template", "cmd/ztagent", "html/template", prefixed("html/template")},
		{"ztdiag/no gVisor", "cmd/ztdiag", "gVisor", prefixed("gvisor.dev")},
		{"ztdiag/no daemon", "cmd/ztdiag", "the daemon (agent/ but ctlapi)", except(under("agent"), "agent/ctlapi")},
		{"ztcloud/no netlink", "cmd/ztcloud", "netlink", prefixed("github.com/vishvananda/netlink")},
		{"ztcloud/no D-Bus", "cmd/ztcloud", "D-Bus", prefixed("github.com/godbus/dbus")},
		{"ztcloud/no platform", "cmd/ztcloud", "platform/ (but atomicfile)", except(under("platform"), "platform/atomicfile")},
		{"ztcloud/no agent side", "cmd/ztcloud", "the agent's packages", anyOf(under("agent", "dnsproxy", "tunnel/netstack"),
			except(under("enroll"), "enroll/tenantapi"))},
	}
	// The packaging tools (nfpm, packaging/) build the installers; no
	// shipped binary links them.
	for _, bin := range []string{"ztagent", "ztdiag", "ztcloud"} {
		rules = append(rules, struct {
			name, binary string
			what         string
			bad          func(string) bool
		}{bin + "/no packaging", "cmd/" + bin, "the packaging tools (nfpm, packaging/)",
			anyOf(prefixed("github.com/goreleaser"), under("packaging"))})
	}
	for _, goos := range goosList {
		g := loadGraph(t, goos)
		for _, r := range rules {
			t.Run(goos+"/"+r.name, func(t *testing.T) {
				if _, ok := g[module+"/"+r.binary]; !ok {
					t.Fatalf("go list does not know %s", r.binary)
				}
				if c := g.chain(module+"/"+r.binary, r.bad); c != nil {
					t.Errorf("%s links %s (GOOS=%s): %s", r.binary, r.what, goos, strings.Join(c, " → "))
				}
			})
		}
	}
}

// ioPackage matches the packages through which code reaches files, the
// network, processes or the OS: os, net (but net/netip, plain values), syscall,
// io/fs, io/ioutil, path/filepath, golang.org/x/sys, log. The io package itself
// is interfaces and io.EOF, which a decoder reading a byte slice uses; it is
// allowed.
// net/netip and net/url only parse.
func ioPackage(p string) bool {
	return p != "net/netip" && p != "net/url" && prefixed("os", "net", "syscall", "io/fs", "io/ioutil", "path/filepath",
		"golang.org/x/sys", "log")(p)
}

// TestLayering: which way the module's own packages import one another, by
// direct import (non-test). A failure names the importing package and what
// it imports.
func TestLayering(t *testing.T) {
	rules := []struct {
		name     string
		importer func(string) bool
		bad      func(string) bool
	}{
		{"the agent's side does not import the cloud",
			under("agent", "enroll", "tunnel", "dnsproxy", "steering", "platform"), under("cloud")},
		{"the cloud does not import the agent, enroll (but tenantapi) or platform (but atomicfile)",
			under("cloud"), anyOf(under("agent"), except(under("enroll"), "enroll/tenantapi"),
				except(under("platform"), "platform/atomicfile"))},
		{"only cmd imports agent",
			func(p string) bool { return !under("cmd", "agent")(p) }, under("agent")},
		{"steering imports no other package of the module",
			under("steering"), func(p string) bool { return strings.HasPrefix(p, module+"/") && !in(p, "steering") }},
		{"steering is pure: no I/O packages",
			under("steering"), ioPackage},
		{"dnsproxy and tunnel know no policy: no steering",
			under("dnsproxy", "tunnel"), under("steering")},
		{"platform imports no part above it",
			under("platform"), under("agent", "enroll", "steering", "dnsproxy", "tunnel", "cloud", "cmd")},
		{"tenantapi is a leaf: std lib and steering only",
			under("enroll/tenantapi"), func(p string) bool {
				return strings.Contains(strings.Split(p, "/")[0], ".") && !in(p, "steering")
			}},
		{"atomicfile is a leaf: std lib only",
			under("platform/atomicfile"), func(p string) bool { return strings.Contains(strings.Split(p, "/")[0], ".") }},
	}
	for _, goos := range goosList {
		g := loadGraph(t, goos)
		pkgs := g.modulePackages()
		for _, r := range rules {
			t.Run(goos+"/"+r.name, func(t *testing.T) {
				for _, p := range pkgs {
					if !r.importer(p) {
						continue
					}
					for _, imp := range g[p] {
						if r.bad(imp) {
							t.Errorf("%s imports %s (GOOS=%s)", short(p), short(imp), goos)
						}
					}
				}
			})
		}
	}
}
