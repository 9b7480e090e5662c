package platform

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// NewOwnerLookup returns the Linux lookup: the socket's inode from
// /proc/net/{tcp,tcp6,udp,udp6}, then the process holding socket:[inode] among
// /proc/*/fd. Seeing other users' descriptors needs root (or CAP_SYS_PTRACE);
// without it only the agent's own user's processes are found. The tables are
// those of the agent's network namespace.
//
// Where the kernel answers sock_diag, the socket is looked up by address
// first (diagLookup), which is far cheaper than reading the tables.
func NewOwnerLookup(log *zap.Logger) OwnerLookup {
	p := newProcOwners("/proc", log)
	p.diag.enabled = true
	return p
}

// procOwners reads a procfs mounted at root (a fake tree in tests).
type procOwners struct {
	root string
	log  *zap.Logger
	diag diagState // whether to try diagLookup before the tables
	// inodes remembers where a socket was found, checked with one readlink
	// before use; owners remembers a PID's identity for ownerTTL.
	inodes *ttlCache[uint64, procFD]
	owners *ttlCache[int, Owner]
}

type procFD struct {
	pid int
	fd  string
}

func newProcOwners(root string, log *zap.Logger) *procOwners {
	return &procOwners{
		root:   root,
		log:    log.Named("owner"),
		inodes: newTTLCache[uint64, procFD](ownerTTL, ownerCacheSize),
		owners: newTTLCache[int, Owner](ownerTTL, ownerCacheSize),
	}
}

// Lookup implements OwnerLookup.
func (p *procOwners) Lookup(proto string, local, remote netip.AddrPort) (Owner, error) {
	m, err := newSockMatcher(proto, local, remote)
	if err != nil {
		return Owner{}, err
	}
	row, ok, err := p.findSocket(proto, m)
	if err != nil {
		return Owner{}, err
	}
	if !ok {
		return Owner{}, fmt.Errorf("%w: no %s socket at %v", ErrOwnerNotFound, proto, local)
	}
	pid, ok := p.findPID(row.Inode)
	if !ok {
		return Owner{}, fmt.Errorf("%w: no process holds %s socket %v (inode %d)", ErrOwnerNotFound, proto, local, row.Inode)
	}
	return p.owner(pid)
}

// findSocket scans the tables that can hold the flow's socket: an IPv4 flow
// may belong to an IPv6 socket (IPv4-mapped, or bound to ::).
func (p *procOwners) findSocket(proto string, m sockMatcher) (sockRow, bool, error) {
	if p.diag.usable() {
		row, ok, err := diagLookup(m)
		var se *diagSocketError
		switch {
		case errors.As(err, &se):
			p.diag.failed(err, p.log)
		case err != nil:
			p.log.Debug("sock_diag lookup failed; reading the tables", zap.Error(err))
		default:
			p.diag.worked(p.log)
			if ok {
				return row, true, nil
			}
		}
	}
	files := []string{proto + "6"}
	if m.local.Addr().Is4() {
		files = []string{proto, proto + "6"}
	}
	var best sockRow
	bestRank := rankNone
	for _, f := range files {
		err := p.scanTable(filepath.Join(p.root, "net", f), m, &best, &bestRank)
		if errors.Is(err, fs.ErrNotExist) { // no IPv6 in this kernel
			continue
		}
		if err != nil {
			return sockRow{}, false, fmt.Errorf("socket owner: %w", err)
		}
		if bestRank == m.best() {
			break
		}
	}
	return best, bestRank != rankNone, nil
}

var procLineBufPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// scanTable updates best with the first row of a higher rank in one table,
// stopping at a row of the best possible rank.
func (p *procOwners) scanTable(path string, m sockMatcher, best *sockRow, bestRank *int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := procLineBufPool.Get().(*[]byte)
	defer procLineBufPool.Put(buf)
	sc := bufio.NewScanner(f)
	sc.Buffer(*buf, len(*buf))
	for first := true; sc.Scan(); first = false {
		if first { // the header
			continue
		}
		row, err := parseProcNetLine(sc.Bytes())
		if err != nil {
			p.log.Debug("skipping unparsable line", zap.String("file", path), zap.Error(err))
			continue
		}
		if row.Inode == 0 { // TIME_WAIT and the like: no process holds it
			continue
		}
		if k := m.rank(row.Local, row.Remote); k > *bestRank {
			*best, *bestRank = row, k
			if k == m.best() {
				return nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// parseProcNetLine parses one row of /proc/net/{tcp,tcp6,udp,udp6}:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
func parseProcNetLine(line []byte) (sockRow, error) {
	var row sockRow
	var err error
	rest := line
	for i := 0; i <= 9; i++ {
		var f []byte
		f, rest = procField(rest)
		if len(f) == 0 {
			return row, fmt.Errorf("short line: %d fields", i)
		}
		switch i {
		case 1:
			row.Local, err = parseProcAddrPort(f)
		case 2:
			row.Remote, err = parseProcAddrPort(f)
		case 7:
			row.UID, err = procAtoi(f)
		case 9:
			var n int
			n, err = procAtoi(f)
			row.Inode = uint64(n)
		}
		if err != nil {
			return row, fmt.Errorf("field %d: %w", i, err)
		}
	}
	return row, nil
}

// procField splits off the next space-separated field.
func procField(b []byte) (field, rest []byte) {
	b = bytes.TrimLeft(b, " \t")
	i := bytes.IndexAny(b, " \t")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}

// parseProcAddrPort parses "0100007F:0035". The kernel prints the address as
// 32-bit words in host byte order (%08X of each s6_addr32 word for IPv6), so
// each word is decoded and stored back natively; the port is plain hex.
func parseProcAddrPort(f []byte) (netip.AddrPort, error) {
	i := bytes.IndexByte(f, ':')
	if i < 0 || len(f)-i-1 != 4 {
		return netip.AddrPort{}, errors.New("bad address:port")
	}
	port, ok := hexUint32(f[i+1:])
	if !ok {
		return netip.AddrPort{}, errors.New("bad port")
	}
	hex := f[:i]
	var addr netip.Addr
	switch len(hex) {
	case 8:
		var b [4]byte
		w, ok := hexUint32(hex)
		if !ok {
			return netip.AddrPort{}, errors.New("bad IPv4 address")
		}
		binary.NativeEndian.PutUint32(b[:], w)
		addr = netip.AddrFrom4(b)
	case 32:
		var b [16]byte
		for j := 0; j < 4; j++ {
			w, ok := hexUint32(hex[8*j : 8*j+8])
			if !ok {
				return netip.AddrPort{}, errors.New("bad IPv6 address")
			}
			binary.NativeEndian.PutUint32(b[4*j:], w)
		}
		addr = netip.AddrFrom16(b)
	default:
		return netip.AddrPort{}, errors.New("bad address length")
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// hexUint32 parses up to 8 hex digits.
func hexUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}

// procAtoi parses a non-negative decimal that fits in 63 bits.
func procAtoi(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 18 {
		return 0, errors.New("bad number")
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("bad number")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// findPID finds the process holding socket:[inode]: where it was last seen,
// then among processes that owned recent flows (a browser opens many), then
// every process, stopping at the first.
func (p *procOwners) findPID(inode uint64) (int, bool) {
	target := []byte("socket:[" + strconv.FormatUint(inode, 10) + "]")
	buf := make([]byte, 64)
	if e, ok := p.inodes.get(inode); ok {
		if p.fdIs(e.pid, e.fd, target, buf) {
			return e.pid, true
		}
		p.inodes.remove(inode)
	}
	recent := p.owners.keys()
	for _, pid := range recent {
		if fd, ok := p.scanPID(pid, target, buf); ok {
			p.inodes.put(inode, procFD{pid: pid, fd: fd})
			return pid, true
		}
	}
	pid, fd, ok := p.scanAll(target, buf, recent)
	if ok {
		p.inodes.put(inode, procFD{pid: pid, fd: fd})
	}
	return pid, ok
}

// scanAll walks the numeric entries of the proc root, skipping PIDs already
// searched.
func (p *procOwners) scanAll(target, buf []byte, skip []int) (pid int, fd string, ok bool) {
	d, err := os.Open(p.root)
	if err != nil {
		p.log.Warn("cannot list processes", zap.Error(err))
		return 0, "", false
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			pid, err := strconv.Atoi(name)
			if err != nil || pid <= 0 || slices.Contains(skip, pid) {
				continue
			}
			if fd, ok := p.scanPID(pid, target, buf); ok {
				return pid, fd, true
			}
		}
		if err != nil {
			if err != io.EOF {
				p.log.Debug("listing processes", zap.Error(err))
			}
			return 0, "", false
		}
	}
}

// scanPID returns the name of pid's descriptor that links to target. Processes
// that exit or deny access meanwhile are simply not matches.
func (p *procOwners) scanPID(pid int, target, buf []byte) (string, bool) {
	d, err := os.Open(filepath.Join(p.root, strconv.Itoa(pid), "fd"))
	if err != nil {
		return "", false
	}
	defer d.Close()
	dfd := int(d.Fd())
	for {
		names, err := d.Readdirnames(128)
		for _, name := range names {
			if n, err := unix.Readlinkat(dfd, name, buf); err == nil && bytes.Equal(buf[:n], target) {
				return name, true
			}
		}
		if err != nil {
			return "", false
		}
	}
}

// fdIs reports whether /proc/pid/fd/fd still links to target.
func (p *procOwners) fdIs(pid int, fd string, target, buf []byte) bool {
	n, err := unix.Readlinkat(unix.AT_FDCWD, filepath.Join(p.root, strconv.Itoa(pid), "fd", fd), buf)
	return err == nil && bytes.Equal(buf[:n], target)
}

// owner reads pid's identity: comm, the exe link, the real UID and, inside a
// Flatpak sandbox, the application ID.
func (p *procOwners) owner(pid int) (Owner, error) {
	if o, ok := p.owners.get(pid); ok {
		return o, nil
	}
	dir := filepath.Join(p.root, strconv.Itoa(pid))
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return Owner{}, fmt.Errorf("%w: process %d: %v", ErrOwnerNotFound, pid, err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Owner{}, fmt.Errorf("%w: process %d: %v", ErrOwnerNotFound, pid, err)
	}
	uid, ok := statusUID(status)
	if !ok {
		return Owner{}, fmt.Errorf("socket owner: process %d: no Uid line in status", pid)
	}
	// Without privilege, another user's exe link is unreadable: keep the name.
	exe, _ := os.Readlink(filepath.Join(dir, "exe"))
	exe = strings.TrimSuffix(exe, " (deleted)") // replaced by an upgrade
	o := Owner{PID: pid, UID: uid, Process: processName(strings.TrimSuffix(string(comm), "\n"), exe), Path: exe, AppID: p.flatpakApp(dir)}
	p.owners.put(pid, o)
	return o, nil
}

// maxFlatpakInfo bounds the read of a sandbox's .flatpak-info (a few hundred
// bytes in practice).
const maxFlatpakInfo = 64 << 10

// flatpakApp returns the Flatpak application ID of the process at dir, from
// the .flatpak-info file that flatpak puts at the root of every sandbox (what
// xdg-desktop-portal trusts too), or "" outside one. Like a process name it
// is the process's claim, not proof: a process able to make its own mount
// namespace can fake it.
func (p *procOwners) flatpakApp(dir string) string {
	f, err := os.Open(filepath.Join(dir, "root", ".flatpak-info"))
	if err != nil {
		return ""
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFlatpakInfo))
	if err != nil {
		return ""
	}
	return flatpakAppID(data)
}

// flatpakAppID reads "name" from the [Application] group of a keyfile.
func flatpakAppID(data []byte) string {
	inApp := false
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0 || line[0] == '#':
		case line[0] == '[':
			inApp = string(line) == "[Application]"
		case inApp:
			if k, v, ok := bytes.Cut(line, []byte("=")); ok && string(bytes.TrimSpace(k)) == "name" {
				return string(bytes.TrimSpace(v))
			}
		}
	}
	return ""
}

// taskCommLen is the kernel's TASK_COMM_LEN less the NUL: longer names are cut.
const taskCommLen = 15

// processName prefers the executable's base name when comm is its truncation.
func processName(comm, exe string) string {
	if base := filepath.Base(exe); exe != "" && len(comm) == taskCommLen && strings.HasPrefix(base, comm) {
		return base
	}
	return comm
}

// statusUID returns the real UID from /proc/PID/status ("Uid:\treal\teff...").
func statusUID(status []byte) (int, bool) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			f, _ := procField(rest)
			n, err := procAtoi(f)
			return n, err == nil
		}
	}
	return 0, false
}

// sock_diag messages (linux/inet_diag.h): a 16-byte netlink header, then
// struct inet_diag_req_v2 (56 bytes) out and struct inet_diag_msg (72) back.
const (
	nlHeaderLen     = 16
	diagReqLen      = 56
	diagMsgLen      = 72
	diagNoCookie    = 0xffffffff
	diagRecvTimeout = time.Second
)

// diagLookup asks the kernel for the one socket with m's addresses: a
// SOCK_DIAG_BY_FAMILY request without NLM_F_DUMP is the stack's own hash
// lookup, where reading /proc/net/tcp walks every bucket of the table
// (milliseconds per read however few sockets there are). A TCP flow needs its
// remote address for that. The kernel's answer is checked against m, so a
// listener or another socket on the port is not taken for the flow's; when it
// finds nothing usable the caller scans the tables, which stay authoritative.
func diagLookup(m sockMatcher) (sockRow, bool, error) {
	if !m.udp && !m.remote.IsValid() {
		return sockRow{}, false, nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return sockRow{}, false, &diagSocketError{err}
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(diagRecvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return sockRow{}, false, fmt.Errorf("sock_diag socket: %w", err)
	}
	// The TCP lookup takes the request's source as the socket's local end.
	// The UDP one is packet delivery's: the source is the sender (the flow's
	// remote end, zero when unknown) and the destination the receiving
	// socket's address, which finds unconnected and wildcard sockets too.
	src, dst := m.local, m.remote
	if m.udp {
		src, dst = m.remote, m.local
	}
	var buf [512]byte
	row, ok, err := diagQuery(fd, m.udp, m.local.Addr().Is4(), src, dst, buf[:])
	if err != nil || !ok || row.Inode == 0 || m.rank(row.Local, row.Remote) == rankNone {
		return sockRow{}, false, err
	}
	return row, true, nil
}

// diagSocketError means the netlink socket itself was refused: no
// NETLINK_SOCK_DIAG or a seccomp filter, which last, or a shortage of
// descriptors (EMFILE, ENFILE, ENOBUFS), which passes.
type diagSocketError struct{ err error }

func (e *diagSocketError) Error() string { return "sock_diag socket: " + e.err.Error() }
func (e *diagSocketError) Unwrap() error { return e.err }

// diagState says whether to try sock_diag. When its socket is refused the
// tables are read instead, for a backoff that doubles from diagMinBackoff to
// diagMaxBackoff while it stays refused: EMFILE passes, while a seccomp filter
// or a kernel without NETLINK_SOCK_DIAG does not, but a retry costs one
// socket(2) a minute, and nothing is given up for the life of the process.
type diagState struct {
	enabled  bool         // false: never (a fake procfs)
	offUntil atomic.Int64 // unix nanoseconds; 0 when sock_diag works
	mu       sync.Mutex   // orders failed and worked
	backoff  time.Duration
	now      func() time.Time // nil: time.Now
}

const (
	diagMinBackoff = time.Second
	diagMaxBackoff = time.Minute
)

func (d *diagState) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

// usable reports whether to try sock_diag now. It is on the lookup's path:
// one atomic load while sock_diag works.
func (d *diagState) usable() bool {
	if !d.enabled {
		return false
	}
	off := d.offUntil.Load()
	return off == 0 || d.clock().UnixNano() >= off
}

// failed switches sock_diag off for the next backoff.
func (d *diagState) failed(err error, log *zap.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.backoff == 0 {
		d.backoff = diagMinBackoff
		log.Info("sock_diag unavailable; reading /proc/net tables until it is back", zap.Error(err))
	} else {
		d.backoff = min(2*d.backoff, diagMaxBackoff)
		log.Debug("sock_diag still unavailable", zap.Duration("retry_in", d.backoff), zap.Error(err))
	}
	d.offUntil.Store(d.clock().Add(d.backoff).UnixNano())
}

// worked switches sock_diag back on after a failure.
func (d *diagState) worked(log *zap.Logger) {
	if d.offUntil.Load() == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.backoff != 0 {
		log.Info("sock_diag available again")
	}
	d.backoff = 0
	d.offUntil.Store(0)
}

// diagQuery sends one request and reads its answer; no socket is ok=false.
func diagQuery(fd int, udp, v4 bool, src, dst netip.AddrPort, buf []byte) (sockRow, bool, error) {
	req := make([]byte, nlHeaderLen+diagReqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	r := req[nlHeaderLen:]
	r[0], r[1] = unix.AF_INET6, unix.IPPROTO_TCP
	if v4 {
		r[0] = unix.AF_INET
	}
	if udp {
		r[1] = unix.IPPROTO_UDP
	}
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // every state
	binary.BigEndian.PutUint16(r[8:], src.Port())
	binary.BigEndian.PutUint16(r[10:], dst.Port())
	putDiagAddr(r[12:28], src.Addr(), v4)
	putDiagAddr(r[28:44], dst.Addr(), v4)
	binary.NativeEndian.PutUint32(r[48:], diagNoCookie)
	binary.NativeEndian.PutUint32(r[52:], diagNoCookie)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return sockRow{}, false, fmt.Errorf("sock_diag send: %w", err)
	}
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return sockRow{}, false, fmt.Errorf("sock_diag receive: %w", err)
	}
	return parseDiagReply(buf[:n])
}

// putDiagAddr writes a as the kernel's __be32[4]: an IPv4 address in the
// first word, IPv6 (an IPv4 one mapped) in all four; the zero Addr as zeros.
func putDiagAddr(dst []byte, a netip.Addr, v4 bool) {
	switch {
	case !a.IsValid():
	case v4:
		b := a.As4()
		copy(dst, b[:])
	default:
		b := a.As16()
		copy(dst, b[:])
	}
}

// parseDiagReply parses the kernel's answer: an inet_diag_msg, or an error
// message whose ENOENT means no such socket.
func parseDiagReply(b []byte) (sockRow, bool, error) {
	if len(b) < nlHeaderLen+4 {
		return sockRow{}, false, errors.New("sock_diag: short reply")
	}
	switch typ := binary.NativeEndian.Uint16(b[4:]); typ {
	case unix.NLMSG_ERROR:
		errno := unix.Errno(-int32(binary.NativeEndian.Uint32(b[nlHeaderLen:])))
		if errno == unix.ENOENT {
			return sockRow{}, false, nil
		}
		return sockRow{}, false, fmt.Errorf("sock_diag: %w", errno)
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return sockRow{}, false, fmt.Errorf("sock_diag: unexpected message type %d", typ)
	}
	m := b[nlHeaderLen:]
	if len(m) < diagMsgLen {
		return sockRow{}, false, errors.New("sock_diag: short inet_diag_msg")
	}
	addr := func(w []byte) netip.Addr {
		if m[0] == unix.AF_INET {
			return netip.AddrFrom4([4]byte(w[:4]))
		}
		return netip.AddrFrom16([16]byte(w[:16]))
	}
	row := sockRow{
		Local:  netip.AddrPortFrom(addr(m[8:24]), binary.BigEndian.Uint16(m[4:])),
		Remote: netip.AddrPortFrom(addr(m[24:40]), binary.BigEndian.Uint16(m[6:])),
		UID:    int(binary.NativeEndian.Uint32(m[64:])),
		Inode:  uint64(binary.NativeEndian.Uint32(m[68:])),
	}
	return row, true, nil
}
