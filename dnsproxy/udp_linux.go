package dnsproxy

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a reader takes every query waiting on its socket with one
// recvmmsg(2) and sends the fast path's replies with one sendmmsg(2): under
// load, system calls and the scheduler's wake-ups are shared by a batch
// instead of paid per query. A reply goes to the very socket address its query
// came from, as the kernel reported it, so nothing is converted on the way
// back.

// mmsgIO is the batch I/O of one reader goroutine on one socket.
type mmsgIO struct {
	rc    syscall.RawConn
	rhdrs []unix.Mmsghdr // for recvmmsg, one per packet slot
	riovs []unix.Iovec
	names []unix.RawSockaddrAny // the sources, as recvmmsg wrote them
	whdrs []unix.Mmsghdr        // for sendmmsg, the replies packed to the front
	wiovs []unix.Iovec

	// The system calls, as method values made once (a closure per call
	// would allocate), with their arguments and results.
	recvFn, sendFn func(fd uintptr) bool
	vlen, off      int // messages to receive; first reply to send
	done           int // messages received or sent
	errno          syscall.Errno
}

func newBatchIO(conn *net.UDPConn) batchIO {
	rc, err := conn.SyscallConn()
	if err != nil {
		return &singleIO{conn: conn}
	}
	m := &mmsgIO{
		rc:    rc,
		rhdrs: make([]unix.Mmsghdr, udpBatch),
		riovs: make([]unix.Iovec, udpBatch),
		names: make([]unix.RawSockaddrAny, udpBatch),
		whdrs: make([]unix.Mmsghdr, udpBatch),
		wiovs: make([]unix.Iovec, udpBatch),
	}
	m.recvFn, m.sendFn = m.recv, m.send
	return m
}

// recv and send run under the runtime poller: they return false when the
// socket would block, and the poller calls them again once it is ready.
func (m *mmsgIO) recv(fd uintptr) bool {
	return m.mmsg(unix.SYS_RECVMMSG, fd, &m.rhdrs[0], m.vlen)
}

func (m *mmsgIO) send(fd uintptr) bool {
	return m.mmsg(unix.SYS_SENDMMSG, fd, &m.whdrs[m.off], m.vlen-m.off)
}

// mmsg makes the call without telling the scheduler (RawSyscall): the
// socket is non-blocking, so the call never waits, and announcing it would
// wake the runtime's monitor thread on every batch, a cost the profiles
// showed as large as the packet processing.
func (m *mmsgIO) mmsg(trap, fd uintptr, hdrs *unix.Mmsghdr, vlen int) bool {
	for {
		r, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(hdrs)), uintptr(vlen), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.done, m.errno = int(r), e
		return true
	}
}

func (m *mmsgIO) size() int { return udpBatch }

// read blocks until at least one query has arrived, then reads as many as
// are waiting, up to len(pkts).
func (m *mmsgIO) read(pkts []udpPacket) (int, error) {
	pkts = pkts[:min(len(pkts), len(m.rhdrs))]
	for i := range pkts {
		m.riovs[i].Base = &pkts[i].buf[0]
		m.riovs[i].SetLen(len(pkts[i].buf))
		h := &m.rhdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.Namelen = unix.SizeofSockaddrAny
		h.Iov = &m.riovs[i]
		h.SetIovlen(1)
		h.Control, h.Flags = nil, 0
		h.SetControllen(0)
	}
	m.vlen = len(pkts)
	if err := m.rc.Read(m.recvFn); err != nil {
		return 0, err
	}
	if m.errno != 0 {
		return 0, &net.OpError{Op: "recvmmsg", Net: "udp", Err: m.errno}
	}
	n := m.done
	for i := range pkts[:n] {
		pkts[i].n = int(m.rhdrs[i].Len)
		pkts[i].from = sockaddrAddrPort(&m.names[i])
	}
	return n, nil
}

// write sends the reply of every packet that has one, to its source.
func (m *mmsgIO) write(pkts []udpPacket) {
	k := 0
	for i := range pkts {
		p := &pkts[i]
		if len(p.reply) == 0 {
			continue
		}
		m.wiovs[k].Base = &p.reply[0]
		m.wiovs[k].SetLen(len(p.reply))
		h := &m.whdrs[k].Hdr
		h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.Namelen = m.rhdrs[i].Hdr.Namelen
		h.Iov = &m.wiovs[k]
		h.SetIovlen(1)
		h.Control, h.Flags = nil, 0
		h.SetControllen(0)
		k++
	}
	m.vlen = k
	for m.off = 0; m.off < k; {
		if err := m.rc.Write(m.sendFn); err != nil {
			return // the socket is closed
		}
		if m.errno != 0 || m.done == 0 {
			m.off++ // this reply cannot be sent (WriteTo would fail too); the next may
		} else {
			m.off += m.done
		}
	}
}

// sockaddrAddrPort converts a source address written by recvmmsg, as
// ReadFromUDPAddrPort would give it.
func sockaddrAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), netPort(&p.Port))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		a := netip.AddrFrom16(p.Addr)
		if p.Scope_id != 0 {
			a = a.WithZone(zone(p.Scope_id))
		}
		return netip.AddrPortFrom(a, netPort(&p.Port))
	}
	return netip.AddrPort{}
}

// netPort reads a port stored in network byte order.
func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// zone names interface index i as the net package does: by the interface's
// name, or the number if it has none. Only link-local IPv6 clients have a
// zone, rarely enough that the lookup is not cached (a cache would have to
// follow interfaces being renamed and replaced).
func zone(i uint32) string {
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(i), 10)
}
