package platform

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSockMatcherRank(t *testing.T) {
	ap := netip.MustParseAddrPort
	var none netip.AddrPort
	tests := []struct {
		name               string
		proto              string
		local, remote      netip.AddrPort
		rowLocal, rowRemot netip.AddrPort
		want               int
	}{
		{"tcp exact", "tcp", ap("10.0.0.2:4000"), ap("1.1.1.1:443"), ap("10.0.0.2:4000"), ap("1.1.1.1:443"), rankExact},
		{"tcp other peer", "tcp", ap("10.0.0.2:4000"), ap("1.1.1.1:443"), ap("10.0.0.2:4000"), ap("1.1.1.1:80"), rankNone},
		{"tcp no peer given", "tcp", ap("10.0.0.2:4000"), none, ap("10.0.0.2:4000"), ap("1.1.1.1:80"), rankLocal},
		{"tcp listener is not the flow", "tcp", ap("10.0.0.2:4000"), ap("1.1.1.1:443"), ap("10.0.0.2:4000"), ap("0.0.0.0:0"), rankNone},
		{"tcp wildcard never", "tcp", ap("10.0.0.2:4000"), none, ap("0.0.0.0:4000"), ap("0.0.0.0:0"), rankNone},
		{"tcp other port", "tcp", ap("10.0.0.2:4000"), none, ap("10.0.0.2:4001"), none, rankNone},
		{"mapped row", "tcp", ap("10.0.0.2:4000"), ap("1.1.1.1:443"), ap("[::ffff:10.0.0.2]:4000"), ap("[::ffff:1.1.1.1]:443"), rankExact},
		{"mapped flow", "tcp", ap("[::ffff:10.0.0.2]:4000"), ap("[::ffff:1.1.1.1]:443"), ap("10.0.0.2:4000"), ap("1.1.1.1:443"), rankExact},
		{"zoned flow", "tcp", ap("[fe80::1%en0]:4000"), none, ap("[fe80::1]:4000"), none, rankLocal},
		{"udp connected", "udp", ap("10.0.0.2:5000"), ap("8.8.8.8:53"), ap("10.0.0.2:5000"), ap("8.8.8.8:53"), rankExact},
		{"udp connected elsewhere", "udp", ap("10.0.0.2:5000"), ap("8.8.8.8:53"), ap("10.0.0.2:5000"), ap("9.9.9.9:53"), rankNone},
		{"udp unconnected", "udp", ap("10.0.0.2:5000"), ap("8.8.8.8:53"), ap("10.0.0.2:5000"), ap("0.0.0.0:0"), rankLocal},
		{"udp unconnected no remote field", "udp", ap("10.0.0.2:5000"), ap("8.8.8.8:53"), ap("10.0.0.2:5000"), none, rankLocal},
		{"udp wildcard4", "udp", ap("10.0.0.2:5000"), none, ap("0.0.0.0:5000"), none, rankWildcard},
		{"udp wildcard6 takes v4", "udp", ap("10.0.0.2:5000"), none, ap("[::]:5000"), ap("[::]:0"), rankWildcard},
		{"udp wildcard4 not v6", "udp", ap("[2001:db8::1]:5000"), none, ap("0.0.0.0:5000"), none, rankNone},
		{"udp other address", "udp", ap("10.0.0.2:5000"), none, ap("10.0.0.3:5000"), none, rankNone},
		{"udp connected wildcard", "udp", ap("10.0.0.2:5000"), none, ap("0.0.0.0:5000"), ap("8.8.8.8:53"), rankNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newSockMatcher(tt.proto, tt.local, tt.remote)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.rank(tt.rowLocal, tt.rowRemot); got != tt.want {
				t.Errorf("rank = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestNewSockMatcherRejects(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name  string
		proto string
		local netip.AddrPort
	}{
		{"proto", "icmp", ap("10.0.0.2:1")},
		{"zero", "tcp", netip.AddrPort{}},
		{"port 0", "udp", ap("10.0.0.2:0")},
		{"unspecified", "udp", ap("[::]:53")},
	} {
		if _, err := newSockMatcher(tc.proto, tc.local, netip.AddrPort{}); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestBestRow(t *testing.T) {
	ap := netip.MustParseAddrPort
	rows := []sockRow{
		{Local: ap("0.0.0.0:5000"), PID: 1},
		{Local: ap("10.0.0.2:5000"), PID: 2},
		{Local: ap("10.0.0.2:5000"), Remote: ap("8.8.8.8:53"), PID: 3},
		{Local: ap("10.0.0.2:5000"), Remote: ap("8.8.8.8:53"), PID: 4},
	}
	m, _ := newSockMatcher("udp", ap("10.0.0.2:5000"), ap("8.8.8.8:53"))
	if r, ok := m.bestRow(rows); !ok || r.PID != 3 {
		t.Errorf("exact: %+v %v, want PID 3", r, ok)
	}
	m, _ = newSockMatcher("udp", ap("10.0.0.2:5000"), ap("1.1.1.1:53"))
	if r, ok := m.bestRow(rows); !ok || r.PID != 2 {
		t.Errorf("unconnected: %+v %v, want PID 2", r, ok)
	}
	m, _ = newSockMatcher("udp", ap("10.0.0.9:5000"), netip.AddrPort{})
	if r, ok := m.bestRow(rows); !ok || r.PID != 1 {
		t.Errorf("wildcard: %+v %v, want PID 1", r, ok)
	}
	m, _ = newSockMatcher("tcp", ap("10.0.0.9:5000"), netip.AddrPort{})
	if r, ok := m.bestRow(rows); ok {
		t.Errorf("tcp: matched %+v", r)
	}
}

// winTable builds a GetExtended*Table buffer: count, then rows.
func winTable(rows ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(rows)))
	for _, r := range rows {
		b = append(b, r...)
	}
	return b
}

// winRow concatenates fields: addresses as bytes, DWORDs little-endian,
// ports as a port DWORD (network order in its first two bytes).
func winRow(fields ...any) []byte {
	var b []byte
	for _, f := range fields {
		switch v := f.(type) {
		case netip.Addr:
			b = append(b, v.AsSlice()...)
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case uint16:
			b = append(b, byte(v>>8), byte(v), 0, 0)
		}
	}
	return b
}

func TestParseWinTable(t *testing.T) {
	a := netip.MustParseAddr
	ap := netip.MustParseAddrPort
	const established, listen = uint32(5), uint32(2)
	tests := []struct {
		name    string
		udp, v6 bool
		buf     []byte
		want    []sockRow
		wantErr bool
	}{
		{"tcp4", false, false, winTable(
			winRow(established, a("10.0.0.2"), uint16(41000), a("8.8.8.8"), uint16(443), uint32(1234)),
			winRow(listen, a("0.0.0.0"), uint16(135), a("0.0.0.0"), uint16(0), uint32(4)),
		), []sockRow{
			{Local: ap("10.0.0.2:41000"), Remote: ap("8.8.8.8:443"), PID: 1234},
			{Local: ap("0.0.0.0:135"), Remote: ap("0.0.0.0:0"), PID: 4},
		}, false},
		{"tcp6", false, true, winTable(
			winRow(a("2001:db8::5"), uint32(0), uint16(50000), a("2001:db8::9"), uint32(0), uint16(443), established, uint32(777)),
		), []sockRow{{Local: ap("[2001:db8::5]:50000"), Remote: ap("[2001:db8::9]:443"), PID: 777}}, false},
		{"udp4", true, false, winTable(
			winRow(a("127.0.0.1"), uint16(53), uint32(42)),
			winRow(a("0.0.0.0"), uint16(5353), uint32(43)),
		), []sockRow{
			{Local: ap("127.0.0.1:53"), PID: 42},
			{Local: ap("0.0.0.0:5353"), PID: 43},
		}, false},
		{"udp6 with scope", true, true, winTable(
			winRow(a("fe80::1"), uint32(12), uint16(546), uint32(99)),
		), []sockRow{{Local: ap("[fe80::1]:546"), PID: 99}}, false},
		{"empty", false, false, winTable(), []sockRow{}, false},
		{"trailing slack", true, false, append(winTable(winRow(a("127.0.0.1"), uint16(53), uint32(42))), 0, 0, 0, 0),
			[]sockRow{{Local: ap("127.0.0.1:53"), PID: 42}}, false},
		{"short header", false, false, []byte{1, 0}, nil, true},
		{"truncated row", false, false, winTable(winRow(established, a("10.0.0.2"), uint16(1), a("8.8.8.8"), uint16(2), uint32(3)))[:20], nil, true},
		{"huge count", false, true, []byte{0xff, 0xff, 0xff, 0xff, 0, 0}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWinTable(tt.buf, tt.udp, tt.v6)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseWinTable(f *testing.F) {
	f.Add(winTable(winRow(uint32(5), netip.MustParseAddr("10.0.0.2"), uint16(41000), netip.MustParseAddr("8.8.8.8"), uint16(443), uint32(1234))), false, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0x0f}, true, true)
	f.Fuzz(func(t *testing.T, b []byte, udp, v6 bool) {
		rows, err := parseWinTable(b, udp, v6)
		if err != nil {
			return
		}
		if n := binary.LittleEndian.Uint32(b); uint32(len(rows)) != n {
			t.Fatalf("%d rows, header says %d", len(rows), n)
		}
		for _, r := range rows {
			if r.Local.Addr().Is6() != v6 || (r.Remote.IsValid() && r.Remote.Addr().Is6() != v6) {
				t.Fatalf("row %+v in a v6=%v table", r, v6)
			}
		}
	})
}

func TestWindowsProcessName(t *testing.T) {
	for path, want := range map[string]string{
		`C:\Program Files\Google\Chrome\Application\chrome.exe`: "chrome",
		`C:\Windows\System32\svchost.EXE`:                       "svchost",
		`\Device\HarddiskVolume3\tools\zoom`:                    "zoom",
		`.exe`:                                                  ".exe",
		`C:/odd/slashes/app.exe`:                                "app",
		``:                                                      "",
	} {
		if got := windowsProcessName(path); got != want {
			t.Errorf("windowsProcessName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestLsofArgs(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		proto string
		local netip.AddrPort
		want  string
	}{
		{"tcp", ap("10.0.0.2:41000"), "-iTCP@10.0.0.2:41000"},
		{"tcp", ap("[2001:db8::5]:41000"), "-iTCP@[2001:db8::5]:41000"},
		{"tcp", ap("[::ffff:10.0.0.2]:41000"), "-iTCP@10.0.0.2:41000"},
		{"tcp", ap("[fe80::1%en0]:41000"), "-iTCP@[fe80::1]:41000"},
		{"udp", ap("10.0.0.2:5353"), "-iUDP:5353"},
	} {
		m, err := newSockMatcher(tc.proto, tc.local, netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		args := lsofArgs(m)
		if got := args[len(args)-1]; got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.proto, tc.local, got, tc.want)
		}
	}
}

// lsofTCPOut is lsof -nP -w +c 0 -Fpcun -iTCP@127.0.0.1:50000 on macOS when
// both ends are local: the client (curl) and the server (Python) sockets.
const lsofTCPOut = `p812
cGoogle Chrome Helper
u501
f31
n127.0.0.1:50000->127.0.0.1:8080
p901
cPython
u501
f4
n127.0.0.1:8080->127.0.0.1:50000
`

// lsofUDPOut is lsof -nP -w +c 0 -Fpcun -iUDP:5353.
const lsofUDPOut = `p330
cmDNSResponder
u65
f6
n*:5353
f7
n*:5353
p4410
cdig
u501
f9
n[2001:db8::5]:5353->[2001:db8::53]:53
`

func TestParseLsof(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name    string
		out     string
		want    []sockRow
		wantErr bool
	}{
		{"tcp both ends", lsofTCPOut, []sockRow{
			{Local: ap("127.0.0.1:50000"), Remote: ap("127.0.0.1:8080"), PID: 812, UID: 501, Process: "Google Chrome Helper"},
			{Local: ap("127.0.0.1:8080"), Remote: ap("127.0.0.1:50000"), PID: 901, UID: 501, Process: "Python"},
		}, false},
		{"udp wildcard and v6", lsofUDPOut, []sockRow{
			{Local: ap("[::]:5353"), PID: 330, UID: 65, Process: "mDNSResponder"},
			{Local: ap("[::]:5353"), PID: 330, UID: 65, Process: "mDNSResponder"},
			{Local: ap("[2001:db8::5]:5353"), Remote: ap("[2001:db8::53]:53"), PID: 4410, UID: 501, Process: "dig"},
		}, false},
		{"empty", "", nil, false},
		{"non-address names skipped", "p1\ncx\nu0\nf3\nn/dev/null\nf4\nnlocalhost:http\nf5\nn::1:5\n", nil, false},
		{"no uid field", "p7\ncx\nn10.0.0.1:1->10.0.0.2:2\n", []sockRow{
			{Local: ap("10.0.0.1:1"), Remote: ap("10.0.0.2:2"), PID: 7, UID: -1, Process: "x"},
		}, false},
		{"bad pid", "pabc\n", nil, true},
		{"bad uid", "p1\nuroot\n", nil, true},
		{"name before process", "n10.0.0.1:1\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLsof([]byte(tt.out))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	// The matcher picks the flow's own end out of lsof's two.
	rows, _ := parseLsof([]byte(lsofTCPOut))
	m, _ := newSockMatcher("tcp", ap("127.0.0.1:50000"), ap("127.0.0.1:8080"))
	if r, ok := m.bestRow(rows); !ok || r.PID != 812 {
		t.Errorf("client end: %+v %v", r, ok)
	}
	rows, _ = parseLsof([]byte(lsofUDPOut))
	m, _ = newSockMatcher("udp", ap("10.0.0.2:5353"), ap("224.0.0.251:5353"))
	if r, ok := m.bestRow(rows); !ok || r.PID != 330 {
		t.Errorf("udp wildcard: %+v %v", r, ok)
	}
}

func FuzzParseLsof(f *testing.F) {
	f.Add([]byte(lsofTCPOut))
	f.Add([]byte(lsofUDPOut))
	f.Fuzz(func(t *testing.T, out []byte) {
		rows, err := parseLsof(out)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.PID <= 0 || !r.Local.IsValid() {
				t.Fatalf("bad row %+v", r)
			}
		}
	})
}

func TestParseProcArgs2(t *testing.T) {
	args := func(argc uint32, s string) []byte {
		return append(binary.NativeEndian.AppendUint32(nil, argc), s...)
	}
	tests := []struct {
		name string
		buf  []byte
		want string
		ok   bool
	}{
		{"app", args(2, "/Applications/Safari.app/Contents/MacOS/Safari\x00\x00\x00Safari\x00-x\x00HOME=/\x00"), "/Applications/Safari.app/Contents/MacOS/Safari", true},
		{"no NUL", args(0, "/usr/bin/true"), "/usr/bin/true", true},
		{"relative", args(1, "./a.out\x00"), "", false},
		{"empty path", args(1, "\x00"), "", false},
		{"short", []byte{1, 0}, "", false},
	}
	for _, tt := range tests {
		got, err := parseProcArgs2(tt.buf)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: %q, %v; want %q ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseProcArgs2(f *testing.F) {
	f.Add([]byte("\x02\x00\x00\x00/usr/bin/true\x00\x00true\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path, err := parseProcArgs2(b)
		if err == nil && (!strings.HasPrefix(path, "/") || strings.IndexByte(path, 0) >= 0) {
			t.Fatalf("accepted path %q", path)
		}
	})
}

func TestAppBundle(t *testing.T) {
	for exe, want := range map[string]string{
		"/Applications/Safari.app/Contents/MacOS/Safari": "/Applications/Safari.app",
		"/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/1/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper": "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/1/Helpers/Google Chrome Helper.app",
		"/usr/bin/curl":  "",
		"/opt/x.app":     "", // the executable itself, not a directory holding it
		"relative/a.app": "",
		"":               "",
	} {
		if got := appBundle(exe); got != want {
			t.Errorf("appBundle(%q) = %q, want %q", exe, got, want)
		}
	}
}

const infoPlist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDocumentTypes</key>
	<array>
		<dict>
			<key>CFBundleIdentifier</key>
			<string>com.example.nested.decoy</string>
		</dict>
	</array>
	<key>LSMinimumSystemVersion</key>
	<string>12.0</string>
	<key>NSAppTransportSecurity</key>
	<dict><key>NSAllowsArbitraryLoads</key><true/></dict>
	<!-- the real one -->
	<key>CFBundleIdentifier</key>
	<string> com.google.Chrome </string>
	<key>CFBundleName</key>
	<string>Chrome</string>
</dict>
</plist>
`

func TestBundleIDFromPlist(t *testing.T) {
	tests := []struct {
		name, data, want string
		ok               bool
	}{
		{"chrome", infoPlist, "com.google.Chrome", true},
		{"missing", `<plist><dict><key>CFBundleName</key><string>x</string></dict></plist>`, "", false},
		{"empty", `<plist><dict><key>CFBundleIdentifier</key><string></string></dict></plist>`, "", false},
		{"not a string", `<plist><dict><key>CFBundleIdentifier</key><integer>1</integer></dict></plist>`, "", false},
		{"not a dict", `<plist><array/></plist>`, "", false},
		{"binary", "bplist00\xd1\x01\x02", "", false},
		{"truncated", infoPlist[:300], "", false},
	}
	for _, tt := range tests {
		got, err := bundleIDFromPlist([]byte(tt.data))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: %q, %v; want %q ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzBundleIDFromPlist(f *testing.F) {
	f.Add([]byte(infoPlist))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := bundleIDFromPlist(data)
		if err == nil && (id == "" || strings.TrimSpace(id) != id) {
			t.Fatalf("accepted identifier %q", id)
		}
	})
}

func TestTTLCache(t *testing.T) {
	now := time.Unix(1e9, 0)
	c := newTTLCache[int, string](time.Second, 2)
	c.now = func() time.Time { return now }
	c.put(1, "a")
	c.put(2, "b")
	if v, ok := c.get(1); !ok || v != "a" {
		t.Fatalf("get(1) = %q, %v", v, ok)
	}
	c.put(2, "B") // replacing needs no room
	if v, _ := c.get(2); v != "B" {
		t.Fatalf("get(2) = %q", v)
	}
	c.put(3, "c") // full of live entries: starts over
	if _, ok := c.get(1); ok {
		t.Error("1 survived a full cache")
	}
	if v, ok := c.get(3); !ok || v != "c" {
		t.Fatalf("get(3) = %q, %v", v, ok)
	}
	now = now.Add(time.Second)
	if _, ok := c.get(3); ok {
		t.Error("3 outlived its TTL")
	}
	if k := c.keys(); len(k) != 0 {
		t.Errorf("keys after expiry: %v", k)
	}
	c.put(4, "d")
	c.remove(4)
	if _, ok := c.get(4); ok {
		t.Error("4 survived remove")
	}
}
