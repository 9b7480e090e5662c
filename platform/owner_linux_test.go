package platform

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The hex in these tests is what a little-endian kernel (amd64, arm64)
// prints; see fakeHex for the rule.
func skipBigEndian(t testing.TB) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("hand-written /proc/net hex is little-endian")
	}
}

// fakeProc builds a procfs tree in a temp dir.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	f := &fakeProc{t: t, root: t.TempDir()}
	f.mkdir("net")
	f.mkdir("self/fd") // not numeric: never scanned
	return f
}

func (f *fakeProc) mkdir(rel string) {
	if err := os.MkdirAll(filepath.Join(f.root, rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) write(rel, data string) {
	if err := os.WriteFile(filepath.Join(f.root, rel), []byte(data), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// table writes /proc/net/<name> with rows of "local remote inode".
func (f *fakeProc) table(name string, rows ...string) {
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i, r := range rows {
		var l, rem string
		var inode uint64
		if _, err := fmt.Sscan(r, &l, &rem, &inode); err != nil {
			f.t.Fatalf("row %q: %v", r, err)
		}
		fmt.Fprintf(&b, "%4d: %s %s 01 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1\n", i, l, rem, inode)
	}
	f.write("net/"+name, b.String())
}

// process adds /proc/<pid> holding the socket inodes as fds 3, 4, ...
func (f *fakeProc) process(pid int, comm, exe string, uid int, inodes ...uint64) {
	dir := strconv.Itoa(pid)
	f.mkdir(dir + "/fd")
	f.write(dir+"/comm", comm+"\n")
	f.write(dir+"/status", fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n", comm, uid, uid+1, uid, uid))
	if exe != "" {
		f.symlink(exe, dir+"/exe")
	}
	f.symlink("/dev/null", dir+"/fd/0")
	f.symlink("pipe:[77]", dir+"/fd/1")
	for i, ino := range inodes {
		f.symlink(fmt.Sprintf("socket:[%d]", ino), fmt.Sprintf("%s/fd/%d", dir, i+3))
	}
}

func (f *fakeProc) symlink(target, rel string) {
	if err := os.Symlink(target, filepath.Join(f.root, rel)); err != nil {
		f.t.Fatal(err)
	}
}

// Addresses as a little-endian kernel prints them.
const (
	hexLoop4    = "0100007F"                         // 127.0.0.1
	hexHost4    = "0200000A"                         // 10.0.0.2
	hexAny4     = "00000000"                         // 0.0.0.0
	hexDNS4     = "08080808"                         // 8.8.8.8
	hexAny6     = "00000000000000000000000000000000" // ::
	hexLoop6    = "00000000000000000000000001000000" // ::1
	hexDoc6     = "B80D0120000000000000000005000000" // 2001:db8::5
	hexDoc6Peer = "B80D0120000000000000000009000000" // 2001:db8::9
	hexMapped   = "0000000000000000FFFF00000200000A" // ::ffff:10.0.0.2
	hexLinkLoc  = "000080FE000000000000000001000000" // fe80::1
)

func fakeOwnerTree(t *testing.T) *fakeProc {
	f := newFakeProc(t)
	f.table("tcp",
		hexHost4+":A028 "+hexDNS4+":01BB 1001",  // 10.0.0.2:41000 -> 8.8.8.8:443
		hexHost4+":A029 "+hexDNS4+":01BB 0",     // TIME_WAIT: inode 0
		hexLoop4+":1F90 "+hexAny4+":0000 1002",  // listener 127.0.0.1:8080
		hexHost4+":A02A "+hexDNS4+":01BB 1099",  // socket nobody holds
		hexLoop4+":9C40 "+hexLoop4+":1F90 1003", // 127.0.0.1:40000 -> :8080
	)
	f.table("tcp6",
		hexMapped+":A02B "+"0000000000000000FFFF000008080808"+":0050 2001", // ::ffff:10.0.0.2:41003 -> ::ffff:8.8.8.8:80
		hexDoc6+":A02C "+hexDoc6Peer+":01BB 2002",                          // [2001:db8::5]:41004 -> [2001:db8::9]:443
		hexLinkLoc+":A02D "+hexLoop6+":0016 2003",
	)
	f.table("udp",
		hexLoop4+":14E9 "+hexAny4+":0000 3001", // 127.0.0.1:5353 unconnected
		hexAny4+":1388 "+hexAny4+":0000 3002",  // 0.0.0.0:5000
		hexAny4+":1F40 "+hexAny4+":0000 3003",  // 0.0.0.0:8000
		hexHost4+":1F40 "+hexDNS4+":0035 3004", // 10.0.0.2:8000 -> 8.8.8.8:53
		hexAny4+":1B58 "+hexAny4+":0000 3005",  // 0.0.0.0:7000
	)
	f.table("udp6",
		hexAny6+":1770 "+hexAny6+":0000 4001", // [::]:6000
	)
	f.process(100, "curl", "/usr/bin/curl", 1000, 1001, 1003)
	f.process(200, "sshd", "/usr/sbin/sshd", 0, 1002)
	f.process(300, "a-very-long-pro", "/opt/a-very-long-program (deleted)", 1000, 2001)
	f.process(400, "firefox", "/usr/lib/firefox/firefox", 1000, 2002, 2003)
	f.process(500, "systemd-resolve", "/usr/lib/systemd/systemd-resolved", 991, 3001, 3002, 3003)
	f.process(600, "dig", "/usr/bin/dig", 1000, 3004, 3005)
	f.process(700, "dnsmasq", "", 0, 4001)
	f.mkdir("400/root")
	f.write("400/root/.flatpak-info", "[Application]\nname=org.mozilla.firefox\nruntime=runtime/org.freedesktop.Platform/x86_64/23.08\n\n[Instance]\ninstance-id=123\n")
	return f
}

func TestProcOwnersFake(t *testing.T) {
	skipBigEndian(t)
	f := fakeOwnerTree(t)
	ap := netip.MustParseAddrPort
	var none netip.AddrPort
	tests := []struct {
		name          string
		proto         string
		local, remote netip.AddrPort
		want          Owner
		err           error // nil, ErrOwnerNotFound, or errBad for another error
	}{
		{"tcp4 exact", "tcp", ap("10.0.0.2:41000"), ap("8.8.8.8:443"), Owner{PID: 100, UID: 1000, Process: "curl", Path: "/usr/bin/curl"}, nil},
		{"tcp4 no remote", "tcp", ap("10.0.0.2:41000"), none, Owner{PID: 100, UID: 1000, Process: "curl", Path: "/usr/bin/curl"}, nil},
		{"tcp4 other remote", "tcp", ap("10.0.0.2:41000"), ap("8.8.4.4:443"), Owner{}, ErrOwnerNotFound},
		{"tcp4 loopback client", "tcp", ap("127.0.0.1:40000"), ap("127.0.0.1:8080"), Owner{PID: 100, UID: 1000, Process: "curl", Path: "/usr/bin/curl"}, nil},
		{"tcp4 time-wait", "tcp", ap("10.0.0.2:41001"), ap("8.8.8.8:443"), Owner{}, ErrOwnerNotFound},
		{"tcp4 orphan inode", "tcp", ap("10.0.0.2:41002"), ap("8.8.8.8:443"), Owner{}, ErrOwnerNotFound},
		{"tcp wildcard never", "tcp", ap("10.0.0.2:8080"), none, Owner{}, ErrOwnerNotFound},
		{"tcp4 in tcp6 mapped", "tcp", ap("10.0.0.2:41003"), ap("8.8.8.8:80"), Owner{PID: 300, UID: 1000, Process: "a-very-long-program", Path: "/opt/a-very-long-program"}, nil},
		{"tcp mapped flow", "tcp", ap("[::ffff:10.0.0.2]:41003"), ap("[::ffff:8.8.8.8]:80"), Owner{PID: 300, UID: 1000, Process: "a-very-long-program", Path: "/opt/a-very-long-program"}, nil},
		{"tcp6", "tcp", ap("[2001:db8::5]:41004"), ap("[2001:db8::9]:443"), Owner{PID: 400, UID: 1000, Process: "firefox", Path: "/usr/lib/firefox/firefox", AppID: "org.mozilla.firefox"}, nil},
		{"tcp6 zone", "tcp", ap("[fe80::1%eth0]:41005"), ap("[::1]:22"), Owner{PID: 400, UID: 1000, Process: "firefox", Path: "/usr/lib/firefox/firefox", AppID: "org.mozilla.firefox"}, nil},
		{"tcp6 wrong port", "tcp", ap("[2001:db8::5]:41005"), none, Owner{}, ErrOwnerNotFound},
		{"udp4 unconnected", "udp", ap("127.0.0.1:5353"), ap("127.0.0.1:53"), Owner{PID: 500, UID: 991, Process: "systemd-resolved", Path: "/usr/lib/systemd/systemd-resolved"}, nil},
		{"udp4 wildcard", "udp", ap("10.0.0.2:5000"), ap("8.8.8.8:53"), Owner{PID: 500, UID: 991, Process: "systemd-resolved", Path: "/usr/lib/systemd/systemd-resolved"}, nil},
		{"udp4 connected beats wildcard", "udp", ap("10.0.0.2:8000"), ap("8.8.8.8:53"), Owner{PID: 600, UID: 1000, Process: "dig", Path: "/usr/bin/dig"}, nil},
		{"udp4 other peer falls to wildcard", "udp", ap("10.0.0.2:8000"), ap("1.1.1.1:53"), Owner{PID: 500, UID: 991, Process: "systemd-resolved", Path: "/usr/lib/systemd/systemd-resolved"}, nil},
		{"udp6 wildcard takes v4", "udp", ap("10.0.0.2:6000"), none, Owner{PID: 700, UID: 0, Process: "dnsmasq"}, nil},
		{"udp4 wildcard not v6", "udp", ap("[::1]:7000"), none, Owner{}, ErrOwnerNotFound},
		{"udp unknown port", "udp", ap("10.0.0.2:9999"), none, Owner{}, ErrOwnerNotFound},
		{"bad proto", "sctp", ap("10.0.0.2:41000"), none, Owner{}, errBad},
		{"bad local", "tcp", ap("0.0.0.0:41000"), none, Owner{}, errBad},
		{"no local", "tcp", none, none, Owner{}, errBad},
	}
	p := newProcOwners(f.root, zap.NewNop())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for pass := range 2 { // the second is served by the caches
				got, err := p.Lookup(tt.proto, tt.local, tt.remote)
				checkOwnerErr(t, err, tt.err)
				if got != tt.want {
					t.Errorf("pass %d: got %+v, want %+v", pass, got, tt.want)
				}
			}
		})
	}
}

var errBad = errors.New("any error but ErrOwnerNotFound")

func checkOwnerErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("error %v", err)
	case want == errBad && (err == nil || errors.Is(err, ErrOwnerNotFound)):
		t.Fatalf("error %v, want a non-NotFound error", err)
	case want == ErrOwnerNotFound && !errors.Is(err, ErrOwnerNotFound):
		t.Fatalf("error %v, want ErrOwnerNotFound", err)
	}
}

// A socket passed to another process (or a PID reused) must not be served
// from the caches.
func TestProcOwnersCacheRevalidates(t *testing.T) {
	skipBigEndian(t)
	f := newFakeProc(t)
	f.table("tcp", hexHost4+":A028 "+hexDNS4+":01BB 1001")
	f.process(100, "curl", "/usr/bin/curl", 1000, 1001)
	p := newProcOwners(f.root, zap.NewNop())
	now := time.Unix(1e9, 0)
	p.owners.now = func() time.Time { return now }
	local, remote := netip.MustParseAddrPort("10.0.0.2:41000"), netip.MustParseAddrPort("8.8.8.8:443")

	if o, err := p.Lookup("tcp", local, remote); err != nil || o.PID != 100 {
		t.Fatalf("first lookup: %+v, %v", o, err)
	}
	// The socket moves to PID 200 (SCM_RIGHTS) and PID 100 closes it.
	if err := os.Remove(filepath.Join(f.root, "100/fd/3")); err != nil {
		t.Fatal(err)
	}
	f.process(200, "wget", "/usr/bin/wget", 1001, 1001)
	if o, err := p.Lookup("tcp", local, remote); err != nil || o.PID != 200 || o.Process != "wget" {
		t.Fatalf("after the move: %+v, %v", o, err)
	}
	// PID 200 execs something else: cached until the TTL passes.
	f.write("200/comm", "other\n")
	if o, _ := p.Lookup("tcp", local, remote); o.Process != "wget" {
		t.Fatalf("within TTL: %+v", o)
	}
	now = now.Add(ownerTTL)
	if o, _ := p.Lookup("tcp", local, remote); o.Process != "other" {
		t.Fatalf("after TTL: %+v", o)
	}
}

func TestParseProcNetLine(t *testing.T) {
	skipBigEndian(t)
	ap := netip.MustParseAddrPort
	tests := []struct {
		name          string
		line          string
		local, remote netip.AddrPort
		inode         uint64
		uid           int
		ok            bool
	}{
		{"ipv4", "   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 23456 1 0000000000000000 100 0 0 10 5",
			ap("127.0.0.1:53"), ap("0.0.0.0:0"), 23456, 101, true},
		{"ipv4 lower hex", "1: 0200000a:a028 08080808:01bb 01 0:0 0:0 0 1000 0 42",
			ap("10.0.0.2:41000"), ap("8.8.8.8:443"), 42, 1000, true},
		{"ipv6", "  2: B80D0120000000000000000005000000:01BB B80D0120000000000000000009000000:C350 01 00000000:00000000 00:00000000 00000000  1000        0 777 1",
			ap("[2001:db8::5]:443"), ap("[2001:db8::9]:50000"), 777, 1000, true},
		{"mapped", "3: 0000000000000000FFFF00000200000A:0050 0000000000000000FFFF000008080808:0050 01 0 0 0 0 0 9",
			ap("[::ffff:10.0.0.2]:80"), ap("[::ffff:8.8.8.8]:80"), 9, 0, true},
		{"header", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
		{"short", "0: 0100007F:0035 00000000:0000 0A", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
		{"odd address", "0: 0100007:0035 00000000:0000 0A 0 0 0 0 0 1", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
		{"long port", "0: 0100007F:00035 00000000:0000 0A 0 0 0 0 0 1", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
		{"bad hex", "0: 0100007G:0035 00000000:0000 0A 0 0 0 0 0 1", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
		{"bad inode", "0: 0100007F:0035 00000000:0000 0A 0 0 0 0 0 -1", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
		{"empty", "", netip.AddrPort{}, netip.AddrPort{}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row, err := parseProcNetLine([]byte(tt.line))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if row.Local != tt.local || row.Remote != tt.remote || row.Inode != tt.inode || row.UID != tt.uid {
				t.Errorf("got %+v, want %v %v inode %d uid %d", row, tt.local, tt.remote, tt.inode, tt.uid)
			}
		})
	}
}

// fakeHex prints ap as the kernel does: each 32-bit word of the address in
// host byte order, then the port.
func fakeHex(ap netip.AddrPort) string {
	b := ap.Addr().AsSlice()
	var s strings.Builder
	for i := 0; i < len(b); i += 4 {
		fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[i:]))
	}
	fmt.Fprintf(&s, ":%04X", ap.Port())
	return s.String()
}

func FuzzParseProcNetLine(f *testing.F) {
	f.Add("   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 23456 1 0000000000000000 100 0 0 10 5")
	f.Add("  2: B80D0120000000000000000005000000:01BB B80D0120000000000000000009000000:C350 01 0 0 0 1000 0 777 1")
	f.Add("3: 0000000000000000FFFF00000200000A:0050 0000000000000000FFFF000008080808:0050 01 0 0 0 0 0 9")
	f.Add("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
	f.Fuzz(func(t *testing.T, line string) {
		row, err := parseProcNetLine([]byte(line))
		if err != nil {
			return
		}
		// What parsed must print back to the same fields.
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if got := fakeHex(row.Local); !strings.EqualFold(got, fields[1]) {
			t.Errorf("local %v prints %s, line has %s", row.Local, got, fields[1])
		}
		if got := fakeHex(row.Remote); !strings.EqualFold(got, fields[2]) {
			t.Errorf("remote %v prints %s, line has %s", row.Remote, got, fields[2])
		}
		if strconv.FormatUint(row.Inode, 10) != strings.TrimLeft(fields[9], "0") && row.Inode != 0 {
			t.Errorf("inode %d, line has %s", row.Inode, fields[9])
		}
	})
}

// diagMsg builds a kernel answer: a netlink header of type typ, then body.
func diagMsg(typ uint16, body []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(nlHeaderLen+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, make([]byte, 10)...) // flags, seq, pid
	return append(b, body...)
}

// inetDiagMsg builds a struct inet_diag_msg.
func inetDiagMsg(family byte, local, remote netip.AddrPort, uid, inode uint32) []byte {
	m := make([]byte, diagMsgLen)
	m[0], m[1] = family, 1
	binary.BigEndian.PutUint16(m[4:], local.Port())
	binary.BigEndian.PutUint16(m[6:], remote.Port())
	putDiagAddr(m[8:24], local.Addr(), family == unix.AF_INET)
	putDiagAddr(m[24:40], remote.Addr(), family == unix.AF_INET)
	binary.NativeEndian.PutUint32(m[64:], uid)
	binary.NativeEndian.PutUint32(m[68:], inode)
	return m
}

func TestParseDiagReply(t *testing.T) {
	ap := netip.MustParseAddrPort
	errno := func(e unix.Errno) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(-int32(e))) }
	tests := []struct {
		name    string
		b       []byte
		want    sockRow
		found   bool
		wantErr bool
	}{
		{"ipv4", diagMsg(unix.SOCK_DIAG_BY_FAMILY, inetDiagMsg(unix.AF_INET, ap("10.0.0.2:41000"), ap("8.8.8.8:443"), 1000, 4242)),
			sockRow{Local: ap("10.0.0.2:41000"), Remote: ap("8.8.8.8:443"), UID: 1000, Inode: 4242}, true, false},
		{"mapped", diagMsg(unix.SOCK_DIAG_BY_FAMILY, inetDiagMsg(unix.AF_INET6, ap("[::ffff:10.0.0.2]:41000"), ap("[::ffff:8.8.8.8]:443"), 0, 7)),
			sockRow{Local: ap("[::ffff:10.0.0.2]:41000"), Remote: ap("[::ffff:8.8.8.8]:443"), Inode: 7}, true, false},
		{"ENOENT", diagMsg(unix.NLMSG_ERROR, errno(unix.ENOENT)), sockRow{}, false, false},
		{"EINVAL", diagMsg(unix.NLMSG_ERROR, errno(unix.EINVAL)), sockRow{}, false, true},
		{"short message", diagMsg(unix.SOCK_DIAG_BY_FAMILY, make([]byte, 40)), sockRow{}, false, true},
		{"other type", diagMsg(unix.NLMSG_DONE, make([]byte, 4)), sockRow{}, false, true},
		{"short header", []byte{1, 2, 3}, sockRow{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := parseDiagReply(tt.b)
			if (err != nil) != tt.wantErr || found != tt.found || got != tt.want {
				t.Errorf("got %+v, %v, %v; want %+v, %v, err %v", got, found, err, tt.want, tt.found, tt.wantErr)
			}
		})
	}
}

func FuzzParseDiagReply(f *testing.F) {
	f.Add(diagMsg(unix.SOCK_DIAG_BY_FAMILY, inetDiagMsg(unix.AF_INET6, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2"), 5, 6)))
	f.Add(diagMsg(unix.NLMSG_ERROR, []byte{0xfe, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, b []byte) {
		row, found, err := parseDiagReply(b)
		if err != nil && found {
			t.Fatal("found with an error")
		}
		if found && (!row.Local.IsValid() || !row.Remote.IsValid()) {
			t.Fatalf("found an invalid row %+v", row)
		}
	})
}

func TestFlatpakAppID(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"app", "[Application]\nname=org.mozilla.firefox\nruntime=x\n", "org.mozilla.firefox"},
		{"spaces and comments", "# flatpak\n[Instance]\nname=decoy\n\n[Application]\n  name = com.slack.Slack \n", "com.slack.Slack"},
		{"runtime only", "[Runtime]\nname=org.gnome.Platform\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		if got := flatpakAppID([]byte(tt.data)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestProcessName(t *testing.T) {
	tests := []struct{ comm, exe, want string }{
		{"chrome", "/opt/google/chrome/chrome", "chrome"},
		{"a-very-long-pro", "/opt/a-very-long-program", "a-very-long-program"},
		{"a-very-long-pro", "/opt/unrelated", "a-very-long-pro"},
		{"a-very-long-pro", "", "a-very-long-pro"},
		{"renamed", "/usr/bin/python3", "renamed"}, // prctl(PR_SET_NAME) wins
	}
	for _, tt := range tests {
		if got := processName(tt.comm, tt.exe); got != tt.want {
			t.Errorf("processName(%q, %q) = %q, want %q", tt.comm, tt.exe, got, tt.want)
		}
	}
}

// TestProcOwnersReal looks up this test's own sockets in the real /proc.
func TestProcOwnersReal(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := Owner{PID: os.Getpid(), UID: os.Getuid(), Process: filepath.Base(exe), Path: exe}
	type flow struct {
		name          string
		proto         string
		local, remote netip.AddrPort
	}
	var tests []flow
	addTCP := func(name string, c net.Conn) {
		tests = append(tests, flow{name, "tcp", c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()})
	}
	c, srv := tcpPair(t, "tcp4", "127.0.0.1:0", "127.0.0.1")
	addTCP("tcp client", c)
	addTCP("tcp accepted", srv)
	// The accepted side of a dual-stack listener is an IPv6 socket listed in
	// tcp6 with IPv4-mapped addresses.
	_, dual := tcpPair(t, "tcp", ":0", "127.0.0.1")
	addTCP("tcp dual-stack accepted", dual)
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil { // IPv6 loopback may be absent
		l6.Close()
		c6, _ := tcpPair(t, "tcp6", "[::1]:0", "::1")
		addTCP("tcp6 client", c6)
	}
	u, err := net.ListenUDP("udp", &net.UDPAddr{}) // [::]:port where IPv6 exists
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	uport := uint16(u.LocalAddr().(*net.UDPAddr).Port)
	tests = append(tests, flow{"udp wildcard", "udp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uport), netip.MustParseAddrPort("127.0.0.1:53")})

	for _, diag := range []bool{false, true} {
		p := newProcOwners("/proc", zap.NewNop())
		p.diag.enabled = diag
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/diag=%v", tt.name, diag), func(t *testing.T) {
				got, err := p.Lookup(tt.proto, tt.local, tt.remote)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("got %+v, want %+v", got, want)
				}
			})
		}
	}
	// The kernel answers for these itself; the tables are not read.
	for _, tt := range tests {
		m, err := newSockMatcher(tt.proto, tt.local, tt.remote)
		if err != nil {
			t.Fatal(err)
		}
		if row, ok, err := diagLookup(m); err != nil || !ok || row.Inode == 0 {
			t.Errorf("diagLookup %s: %+v, %v, %v", tt.name, row, ok, err)
		}
	}
}

// tcpPair connects to a listener on listen through host and returns both
// ends, closed when the test ends.
func tcpPair(tb testing.TB, network, listen, host string) (client, accepted net.Conn) {
	ln, err := net.Listen(network, listen)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	client, err = net.Dial(network, net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	if accepted, err = ln.Accept(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { accepted.Close() })
	return client, accepted
}

// BenchmarkProcOwnersLookup measures a lookup of a live TCP connection in the
// real /proc, as for a further flow from a known process (the socket is new,
// the inode→PID cache and owner cache are warm): "diag" finds the socket with
// sock_diag, "tables" reads /proc/net/tcp; "cold" adds a full walk of
// /proc/*/fd with empty caches.
func BenchmarkProcOwnersLookup(b *testing.B) {
	c, _ := tcpPair(b, "tcp4", "127.0.0.1:0", "127.0.0.1")
	local, remote := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	b.Run("diag", func(b *testing.B) {
		p := NewOwnerLookup(zap.NewNop())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Lookup("tcp", local, remote); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tables", func(b *testing.B) {
		p := newProcOwners("/proc", zap.NewNop())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Lookup("tcp", local, remote); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewOwnerLookup(zap.NewNop()).Lookup("tcp", local, remote); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLsofReal runs the lsof arguments the macOS lookup uses against this
// test's sockets where an lsof is installed: Linux lsof prints the same -F
// fields, so lsofArgs and parseLsof are checked against a real one.
func TestLsofReal(t *testing.T) {
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		t.Skip("no lsof")
	}
	c, _ := tcpPair(t, "tcp4", "127.0.0.1:0", "127.0.0.1")
	u, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	tests := []struct {
		name          string
		proto         string
		local, remote netip.AddrPort
	}{
		{"tcp", "tcp", c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()},
		{"udp wildcard", "udp", netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(u.LocalAddr().(*net.UDPAddr).Port)), netip.MustParseAddrPort("8.8.8.8:53")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newSockMatcher(tt.proto, tt.local, tt.remote)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, lsof, lsofArgs(m)...).Output()
			if err != nil {
				t.Fatalf("lsof: %v", err)
			}
			rows, err := parseLsof(out)
			if err != nil {
				t.Fatalf("parsing %q: %v", out, err)
			}
			row, ok := m.bestRow(rows)
			if !ok || row.PID != os.Getpid() || row.UID != os.Getuid() || row.Process == "" {
				t.Errorf("best of %+v: %+v, %v", rows, row, ok)
			}
		})
	}
}

// TestOwnerLookupRecoversFromEMFILE: while the agent is out of descriptors,
// sock_diag's socket is refused (EMFILE) and lookups fail; once descriptors
// are free again, lookups work and sock_diag is used again after a backoff,
// never switched off for the life of the process.
func TestOwnerLookupRecoversFromEMFILE(t *testing.T) {
	c, _ := tcpPair(t, "tcp4", "127.0.0.1:0", "127.0.0.1")
	local, remote := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	p := NewOwnerLookup(zap.NewNop()).(*procOwners)
	now := time.Now()
	p.diag.now = func() time.Time { return now }
	if _, err := p.Lookup("tcp", local, remote); err != nil {
		t.Fatal(err)
	}
	if err := withoutFreeDescriptors(func() error { _, err := p.Lookup("tcp", local, remote); return err }); !errors.Is(err, unix.EMFILE) {
		t.Fatalf("lookup out of descriptors: %v, want EMFILE", err)
	}
	if p.diag.usable() {
		t.Fatal("sock_diag was refused, yet it would be tried again at once")
	}
	if _, err := p.Lookup("tcp", local, remote); err != nil {
		t.Fatalf("lookup from the tables once descriptors are free: %v", err)
	}
	now = now.Add(diagMinBackoff)
	if !p.diag.usable() {
		t.Fatal("sock_diag is still off after its backoff")
	}
	if _, err := p.Lookup("tcp", local, remote); err != nil {
		t.Fatal(err)
	}
	if p.diag.offUntil.Load() != 0 || p.diag.backoff != 0 {
		t.Fatalf("sock_diag worked, but its backoff is still %v", p.diag.backoff)
	}
}

// TestDiagBackoff: while sock_diag stays refused, the wait between tries
// doubles up to diagMaxBackoff; one success resets it.
func TestDiagBackoff(t *testing.T) {
	now := time.Unix(1e9, 0)
	d := &diagState{enabled: true, now: func() time.Time { return now }}
	want := diagMinBackoff
	for range 10 {
		d.failed(unix.EMFILE, zap.NewNop())
		if d.backoff != want || d.usable() {
			t.Fatalf("backoff %v (usable %v), want %v", d.backoff, d.usable(), want)
		}
		now = now.Add(want)
		if !d.usable() {
			t.Fatalf("not usable after its backoff of %v", want)
		}
		want = min(2*want, diagMaxBackoff)
	}
	d.worked(zap.NewNop())
	d.failed(unix.EMFILE, zap.NewNop())
	if d.backoff != diagMinBackoff {
		t.Fatalf("after a success the backoff starts again at %v, not %v", diagMinBackoff, d.backoff)
	}
	if (&diagState{}).usable() {
		t.Fatal("a lookup without sock_diag would use it")
	}
}

// withoutFreeDescriptors runs fn with the soft descriptor limit lowered to
// the lowest free descriptor, so that whatever fn opens fails with EMFILE.
func withoutFreeDescriptors(fn func() error) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	fd, err := unix.Dup(0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	low := unix.Rlimit{Cur: uint64(fd), Max: lim.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		return err
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	return fn()
}
