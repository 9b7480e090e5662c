package platform

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Owner identifies the process owning a local socket: what the steering
// engine's certificate-pinned-app exceptions match a flow on.
type Owner struct {
	PID int
	// UID is the process's real user ID; -1 where the OS has none (Windows).
	UID int
	// Process is the process name, e.g. "chrome": the executable's base name
	// (without ".exe" on Windows), or the kernel's name for it where the
	// executable is unreadable.
	Process string
	// Path is the executable's absolute path; "" when the OS would not say.
	Path string
	// AppID is the bundle or package ID where the OS has one: a macOS
	// CFBundleIdentifier, a Linux Flatpak application ID; "" otherwise.
	AppID string
}

// OwnerLookup finds the process that owns a socket of this machine. local is
// the socket's own address (the client side of a flow leaving the machine);
// remote is its peer, or the zero AddrPort when unknown. For "udp", an
// unconnected socket bound to local's port on the wildcard address also
// matches. Implementations are safe for concurrent use.
type OwnerLookup interface {
	Lookup(proto string, local, remote netip.AddrPort) (Owner, error)
}

// ErrOwnerNotFound is returned (wrapped) when no process of this machine holds
// a matching socket: the socket closed, belongs to another network namespace,
// or the OS does not expose it to the agent.
var ErrOwnerNotFound = errors.New("socket owner not found")

// Match ranks, best last. A TCP socket only matches its exact local address;
// a UDP one may be unconnected or bound to the wildcard address.
const (
	rankNone     = iota
	rankWildcard // UDP bound to 0.0.0.0 or :: on the port
	rankLocal    // exact local address, any (or unknown) peer
	rankExact    // exact local and remote
)

// sockMatcher ranks the rows of an OS socket table against one flow.
type sockMatcher struct {
	udp           bool
	local, remote netip.AddrPort // unmapped and unzoned; remote may be zero
}

func newSockMatcher(proto string, local, remote netip.AddrPort) (sockMatcher, error) {
	var m sockMatcher
	switch proto {
	case "tcp":
	case "udp":
		m.udp = true
	default:
		return m, fmt.Errorf("socket owner: unknown protocol %q", proto)
	}
	if !local.IsValid() || local.Port() == 0 || local.Addr().IsUnspecified() {
		return m, fmt.Errorf("socket owner: bad local address %v", local)
	}
	m.local = plainAddrPort(local)
	if remote.IsValid() && remote.Port() != 0 && !remote.Addr().IsUnspecified() {
		m.remote = plainAddrPort(remote)
	}
	return m, nil
}

// plainAddrPort drops the IPv6 zone and the IPv4-mapped form, so that a socket
// listed as ::ffff:10.0.0.1 compares equal to the flow's 10.0.0.1.
func plainAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// best is the highest rank a row can reach for m: finding it ends a scan.
func (m sockMatcher) best() int {
	if m.remote.IsValid() {
		return rankExact
	}
	return rankLocal
}

// rank scores one socket-table row. rowRemote is the zero or unspecified
// AddrPort for a listening or unconnected socket.
func (m sockMatcher) rank(rowLocal, rowRemote netip.AddrPort) int {
	if rowLocal.Port() != m.local.Port() {
		return rankNone
	}
	la := rowLocal.Addr().Unmap().WithZone("")
	unconnected := !rowRemote.IsValid() || rowRemote.Port() == 0
	if la != m.local.Addr() {
		// A wildcard IPv6 socket takes IPv4 too unless IPV6_V6ONLY is set,
		// which the tables do not show; accepting it can only name the one
		// process bound to the port.
		if m.udp && unconnected && la.IsUnspecified() && (la.Is6() || m.local.Addr().Is4()) {
			return rankWildcard
		}
		return rankNone
	}
	switch {
	case !m.remote.IsValid():
		return rankLocal
	case !unconnected && plainAddrPort(rowRemote) == m.remote:
		return rankExact
	case m.udp && unconnected:
		return rankLocal
	}
	return rankNone
}

// sockRow is one parsed OS socket-table row. Linux tables name the socket's
// inode; Windows and lsof name the owning process.
type sockRow struct {
	Local, Remote netip.AddrPort
	Inode         uint64
	PID           int
	UID           int
	Process       string // lsof's command name
}

// bestRow returns the first row of the highest rank, or false.
func (m sockMatcher) bestRow(rows []sockRow) (sockRow, bool) {
	var best sockRow
	bestRank := rankNone
	for _, r := range rows {
		if k := m.rank(r.Local, r.Remote); k > bestRank {
			best, bestRank = r, k
			if k == m.best() {
				break
			}
		}
	}
	return best, bestRank != rankNone
}

// ttlCache is a small map whose entries expire. When full it drops expired
// entries and then, if still full, everything: the caches it serves are
// refilled cheaply compared with running unbounded.
type ttlCache[K comparable, V any] struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	now func() time.Time
	m   map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: max, now: time.Now, m: make(map[K]ttlEntry[V])}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}

func (c *ttlCache[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// keys returns the live keys, in no order.
func (c *ttlCache[K, V]) keys() []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]K, 0, len(c.m))
	for k, e := range c.m {
		if now.Before(e.expires) {
			out = append(out, k)
		}
	}
	return out
}

// How long the process behind a PID is trusted to stay the same: PIDs are
// reused, but not within seconds on any real system.
const (
	ownerTTL       = 3 * time.Second
	ownerCacheSize = 1024
)

// Windows IP helper tables, as GetExtendedTcpTable (TCP_TABLE_OWNER_PID_ALL)
// and GetExtendedUdpTable (UDP_TABLE_OWNER_PID) fill them: a little-endian
// DWORD count, then fixed-size rows (MIB_TCPROW_OWNER_PID and kin) whose
// addresses are in network byte order and whose port DWORDs hold the port in
// network byte order in their first two bytes. Parsed here so that it is
// tested on every OS.
const (
	winTCP4Row = 24 // state, laddr, lport, raddr, rport, pid
	winTCP6Row = 56 // laddr[16], lscope, lport, raddr[16], rscope, rport, state, pid
	winUDP4Row = 12 // laddr, lport, pid
	winUDP6Row = 28 // laddr[16], lscope, lport, pid
)

// parseWinTable parses one table of the given protocol and family.
func parseWinTable(b []byte, udp, v6 bool) ([]sockRow, error) {
	size := winTCP4Row
	switch {
	case udp && v6:
		size = winUDP6Row
	case udp:
		size = winUDP4Row
	case v6:
		size = winTCP6Row
	}
	if len(b) < 4 {
		return nil, errors.New("socket table: short header")
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4)/uint64(size) {
		return nil, fmt.Errorf("socket table: %d rows of %d bytes do not fit in %d bytes", n, size, len(b))
	}
	rows := make([]sockRow, 0, n)
	for i := range int(n) {
		r := b[4+i*size : 4+(i+1)*size]
		var row sockRow
		switch {
		case udp && v6:
			row.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(r[0:16])), winPort(r[20:]))
			row.PID = int(binary.LittleEndian.Uint32(r[24:]))
		case udp:
			row.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[0:4])), winPort(r[4:]))
			row.PID = int(binary.LittleEndian.Uint32(r[8:]))
		case v6:
			row.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(r[0:16])), winPort(r[20:]))
			row.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(r[24:40])), winPort(r[44:]))
			row.PID = int(binary.LittleEndian.Uint32(r[52:]))
		default:
			row.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[4:8])), winPort(r[8:]))
			row.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[12:16])), winPort(r[16:]))
			row.PID = int(binary.LittleEndian.Uint32(r[20:]))
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func winPort(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// windowsProcessName is an image path's base name without ".exe", for paths
// such as `C:\Program Files\Google\Chrome\Application\chrome.exe`.
func windowsProcessName(path string) string {
	base := path[strings.LastIndexAny(path, `\/`)+1:]
	if len(base) > 4 && strings.EqualFold(base[len(base)-4:], ".exe") {
		base = base[:len(base)-4]
	}
	return base
}

// lsofArgs selects a flow's sockets with lsof: TCP ones by the local address
// (lsof matches either end, so the peer's socket may come too), UDP ones by
// port alone, since an unconnected socket is listed as *:port. -F asks for
// the PID, full command name, UID and each file's name ("local->remote").
func lsofArgs(m sockMatcher) []string {
	spec := "UDP:" + strconv.Itoa(int(m.local.Port()))
	if !m.udp {
		host := m.local.Addr().String()
		if m.local.Addr().Is6() {
			host = "[" + host + "]"
		}
		spec = "TCP@" + host + ":" + strconv.Itoa(int(m.local.Port()))
	}
	return []string{"-nP", "-w", "+c", "0", "-Fpcun", "-i" + spec}
}

// parseLsof parses lsof -Fpcun output: a "p<pid>" line starts a process, "c"
// and "u" describe it, and each "n<name>" line is one of its sockets, named
// "127.0.0.1:5353", "*:53", "[::1]:50000->[::1]:443" and the like. Lines of
// other fields (lsof always adds "f<fd>") are ignored, as are names that are
// not addresses.
func parseLsof(out []byte) ([]sockRow, error) {
	var rows []sockRow
	var cur sockRow
	for line := range bytes.SplitSeq(out, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		val := string(line[1:])
		switch line[0] {
		case 'p':
			pid, err := strconv.Atoi(val)
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("lsof: bad pid %q", clip(val))
			}
			cur = sockRow{PID: pid, UID: -1}
		case 'c':
			cur.Process = val
		case 'u':
			uid, err := strconv.Atoi(val)
			if err != nil {
				return nil, fmt.Errorf("lsof: bad uid %q", clip(val))
			}
			cur.UID = uid
		case 'n':
			if cur.PID == 0 {
				return nil, errors.New("lsof: file before any process")
			}
			l, r, ok := parseLsofName(val)
			if !ok {
				continue
			}
			row := cur
			row.Local, row.Remote = l, r
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// parseLsofName splits "local->remote"; a missing remote is the zero AddrPort
// and a "*" address the IPv6 wildcard, which the matcher takes for any family.
func parseLsofName(s string) (local, remote netip.AddrPort, ok bool) {
	l, r, connected := strings.Cut(s, "->")
	if local, ok = parseLsofAddr(l); !ok {
		return
	}
	if connected {
		remote, ok = parseLsofAddr(r)
	}
	return
}

func parseLsofAddr(s string) (netip.AddrPort, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	host, portStr := s[:i], s[i+1:]
	var port uint64
	if portStr != "*" {
		var err error
		if port, err = strconv.ParseUint(portStr, 10, 16); err != nil {
			return netip.AddrPort{}, false
		}
	}
	if host == "*" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port)), true
	}
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return netip.AddrPort{}, false // IPv6 outside brackets
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(port)), true
}

// parseProcArgs2 returns the executable path from a macOS kern.procargs2
// buffer: a native int32 argc, then the NUL-terminated exec path.
func parseProcArgs2(b []byte) (string, error) {
	if len(b) < 4 {
		return "", errors.New("procargs2: short buffer")
	}
	rest := b[4:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		i = len(rest)
	}
	path := string(rest[:i])
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("procargs2: exec path %q is not absolute", clip(path))
	}
	return path, nil
}

// appBundle returns the innermost .app directory enclosing exe, or "": a
// helper app nested in another is its own bundle with its own identifier.
func appBundle(exe string) string {
	dir := exe
	for {
		i := strings.LastIndexByte(dir, '/')
		if i <= 0 {
			return ""
		}
		dir = dir[:i]
		if strings.HasSuffix(dir, ".app") {
			return dir
		}
	}
}

// errNoBundleID means an Info.plist without a CFBundleIdentifier.
var errNoBundleID = errors.New("no CFBundleIdentifier")

// bundleIDFromPlist reads CFBundleIdentifier from an XML Info.plist: the
// string that follows that key in the top-level dict. Other values, however
// nested, are skipped unread.
func bundleIDFromPlist(data []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for _, want := range []string{"plist", "dict"} {
		if t, err := nextStart(dec); err != nil || t.Name.Local != want {
			return "", fmt.Errorf("Info.plist: expected <%s>", want)
		}
	}
	for {
		t, err := nextStart(dec)
		if err != nil {
			if errors.Is(err, errEndElement) {
				return "", errNoBundleID
			}
			return "", fmt.Errorf("Info.plist: %w", err)
		}
		if t.Name.Local != "key" {
			if err := dec.Skip(); err != nil {
				return "", fmt.Errorf("Info.plist: %w", err)
			}
			continue
		}
		var key string
		if err := dec.DecodeElement(&key, &t); err != nil {
			return "", fmt.Errorf("Info.plist: %w", err)
		}
		if key != "CFBundleIdentifier" {
			continue
		}
		v, err := nextStart(dec)
		if err != nil || v.Name.Local != "string" {
			return "", errors.New("Info.plist: CFBundleIdentifier is not a <string>")
		}
		var id string
		if err := dec.DecodeElement(&id, &v); err != nil {
			return "", fmt.Errorf("Info.plist: %w", err)
		}
		if id = strings.TrimSpace(id); id == "" {
			return "", errNoBundleID
		}
		return id, nil
	}
}

var errEndElement = errors.New("end of element")

// nextStart returns the next start element, skipping the prolog, comments and
// text; an end element first is errEndElement.
func nextStart(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, errEndElement
		}
	}
}
