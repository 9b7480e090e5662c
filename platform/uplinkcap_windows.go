package platform

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Windows has no kernel packet filter a program can attach without a
// driver, but a raw socket bound to an interface address and put in
// receive-all mode (SIO_RCVALL, what RawCap and Wireshark's raw-socket
// fallbacks use, with no driver installed) receives every IP packet that
// interface sends and receives, from the IP header on. OpenUplinkCapture
// opens one per address of the uplink (the interface of the default route
// of lowest metric, as the agent's bypass binds to it; each family's) and
// filters in user space with the same program the kernels run elsewhere
// (vmCapture). pktmon, the other capture built in, is not used: its session
// and filters are global, so ours would change or stop an administrator's
// own, and it yields a file only after it stops.

// sioRcvall is SIO_RCVALL (_WSAIOW(IOC_VENDOR, 1)); rcvallOn is RCVALL_ON.
const (
	sioRcvall = 0x98000001
	rcvallOn  = 1
)

// rcvallBuffer is the receive buffer of each raw socket: a burst of the
// uplink's packets (the agent's and every other program's) while the
// reader is not scheduled.
const rcvallBuffer = 4 << 20

// OpenUplinkCapture opens the receive-all sockets on the uplink's addresses.
// Needs an administrator.
func OpenUplinkCapture() (UplinkCapture, error) {
	var srcs []packetSource
	var names []string
	for _, v6 := range []bool{false, true} {
		ifc, addrs := uplinkAddrs(v6)
		if ifc == nil {
			continue
		}
		for _, ip := range addrs {
			s, err := openRcvall(ip)
			if err != nil {
				for _, o := range srcs {
					o.Close()
				}
				return nil, fmt.Errorf("uplink capture on %s (%s): %w", ifc.Name, ip, err)
			}
			srcs = append(srcs, s)
		}
		if !slices.Contains(names, ifc.Name) {
			names = append(names, ifc.Name)
		}
	}
	if len(srcs) == 0 {
		return nil, errors.New("uplink capture: no default route with an address: no uplink")
	}
	c := newVMCapture(strings.Join(names, ","), srcs)
	if err := c.SetEndpoints(nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// uplinkAddrs is the family's uplink and its addresses of that family,
// link-local ones left out; a nil interface when there is none.
func uplinkAddrs(v6 bool) (*net.Interface, []netip.Addr) {
	ifc, err := uplinkInterface(v6)
	if err != nil || ifc == nil {
		return nil, nil
	}
	as, err := ifc.Addrs()
	if err != nil {
		return nil, nil
	}
	var addrs []netip.Addr
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		ip = ip.Unmap()
		if ok && ip.Is6() == v6 && !ip.IsLinkLocalUnicast() {
			addrs = append(addrs, ip)
		}
	}
	return ifc, addrs
}

// rcvallSocket is one raw socket in receive-all mode.
type rcvallSocket struct{ fd windows.Handle }

func openRcvall(addr netip.Addr) (*rcvallSocket, error) {
	family, proto := windows.AF_INET, windows.IPPROTO_IP
	var sa windows.Sockaddr = &windows.SockaddrInet4{Addr: addr.As4()}
	if addr.Is6() {
		family, proto = windows.AF_INET6, windows.IPPROTO_IPV6
		sa = &windows.SockaddrInet6{Addr: addr.As16()}
	}
	fd, err := windows.Socket(family, windows.SOCK_RAW, proto)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	fail := func(what string, err error) (*rcvallSocket, error) {
		windows.Closesocket(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := windows.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	_ = windows.SetsockoptInt(fd, windows.SOL_SOCKET, windows.SO_RCVBUF, rcvallBuffer) // a smaller buffer still works
	in := uint32(rcvallOn)
	var ret uint32
	if err := windows.WSAIoctl(fd, sioRcvall, (*byte)(unsafe.Pointer(&in)), uint32(unsafe.Sizeof(in)), nil, 0, &ret, nil, 0); err != nil {
		return fail("SIO_RCVALL", err)
	}
	return &rcvallSocket{fd: fd}, nil
}

// Read blocks its thread in recvfrom until a packet comes or Close closes
// the socket.
func (s *rcvallSocket) Read(buf []byte) (int, error) {
	for {
		n, _, err := windows.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, windows.WSAEMSGSIZE) {
			continue // larger than buf (64 KiB): not an IP packet the agent sent
		}
		return n, err
	}
}

func (s *rcvallSocket) Close() error { return windows.Closesocket(s.fd) }
