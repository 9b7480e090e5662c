package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// bpfBufLen is the /dev/bpf buffer: one read returns at most this much.
const bpfBufLen = 1 << 20

// OpenUplinkCapture opens a /dev/bpf device on the interface of the primary
// default route (the uplink when the capture starts: it stays on it if the
// default route moves), with a filter that passes nothing until
// SetEndpoints. Packets are read from their IP header on (the link header
// is cut off, so the file is LINKTYPE_RAW as on Linux). Needs root.
func OpenUplinkCapture() (UplinkCapture, error) {
	ifname, err := primaryInterfaceName()
	if err != nil {
		return nil, fmt.Errorf("uplink capture: %w", err)
	}
	fd, err := openBPF()
	if err != nil {
		return nil, fmt.Errorf("uplink capture: %w", err)
	}
	lh, err := setupBPF(fd, ifname)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uplink capture on %s: %w", ifname, err)
	}
	// From here the os.File owns fd: closing it is f.Close's (a unix.Close
	// as well would close whatever took the number next).
	f := os.NewFile(uintptr(fd), "bpf")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uplink capture: %w", err)
	}
	c := &bpfCapture{f: f, rc: rc, ifname: ifname, lh: lh, buf: make([]byte, bpfBufLen)}
	if err := c.SetEndpoints(nil); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

func primaryInterfaceName() (string, error) {
	ifc, err := uplinkInterface(false)
	if err == nil && ifc == nil {
		ifc, err = uplinkInterface(true)
	}
	switch {
	case err != nil:
		return "", err
	case ifc == nil:
		return "", errors.New("no default route: no uplink")
	}
	return ifc.Name, nil
}

// openBPF opens the first /dev/bpfN that is free.
func openBPF() (int, error) {
	for i := range 256 {
		fd, err := unix.Open(fmt.Sprintf("/dev/bpf%d", i), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("open /dev/bpf%d: %w", i, err)
		}
		return fd, nil
	}
	return -1, errors.New("every /dev/bpf device is busy")
}

func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p)); e != 0 {
		return e
	}
	return nil
}

// setupBPF sizes the buffer, binds fd to ifname, makes reads return at once
// (or after a 250 ms timeout, so that Close is seen) and reads the link type.
func setupBPF(fd int, ifname string) (linkHeader, error) {
	blen := int32(bpfBufLen)
	if err := ioctlPtr(fd, unix.BIOCSBLEN, unsafe.Pointer(&blen)); err != nil {
		return linkHeader{}, fmt.Errorf("BIOCSBLEN: %w", err)
	}
	var ifr [32]byte // struct ifreq: the name, then a union
	copy(ifr[:unix.IFNAMSIZ-1], ifname)
	if err := ioctlPtr(fd, unix.BIOCSETIF, unsafe.Pointer(&ifr)); err != nil {
		return linkHeader{}, fmt.Errorf("BIOCSETIF: %w", err)
	}
	one := int32(1)
	if err := ioctlPtr(fd, unix.BIOCIMMEDIATE, unsafe.Pointer(&one)); err != nil {
		return linkHeader{}, fmt.Errorf("BIOCIMMEDIATE: %w", err)
	}
	if err := ioctlPtr(fd, unix.BIOCSSEESENT, unsafe.Pointer(&one)); err != nil {
		return linkHeader{}, fmt.Errorf("BIOCSSEESENT: %w", err)
	}
	tv := unix.Timeval{Usec: 250000}
	if err := ioctlPtr(fd, unix.BIOCSRTIMEOUT, unsafe.Pointer(&tv)); err != nil {
		return linkHeader{}, fmt.Errorf("BIOCSRTIMEOUT: %w", err)
	}
	var dlt int32
	if err := ioctlPtr(fd, unix.BIOCGDLT, unsafe.Pointer(&dlt)); err != nil {
		return linkHeader{}, fmt.Errorf("BIOCGDLT: %w", err)
	}
	var lh linkHeader
	switch dlt {
	case unix.DLT_EN10MB:
		lh = linkHeader{Offset: 14, EtherType: true}
	case unix.DLT_NULL, unix.DLT_LOOP:
		lh = linkHeader{Offset: 4}
	case unix.DLT_RAW:
	default:
		return linkHeader{}, fmt.Errorf("link type %d: not supported", dlt)
	}
	return lh, nil
}

type bpfCapture struct {
	f      *os.File
	rc     syscall.RawConn // f's
	ifname string
	lh     linkHeader

	mu   sync.Mutex // guards buf and rest: one reader at a time
	buf  []byte
	rest []byte // records read and not yet returned
}

func (c *bpfCapture) Interface() string { return c.ifname }

// SetEndpoints replaces the filter (BIOCSETF, which also flushes what the
// device holds).
func (c *bpfCapture) SetEndpoints(eps []Endpoint) error {
	return setKernelFilter(c.rc, eps, c.lh, "BIOCSETF", func(fd int, raw []bpf.RawInstruction) error {
		prog := unix.BpfProgram{Len: uint32(len(raw)), Insns: (*unix.BpfInsn)(unsafe.Pointer(&raw[0]))}
		return ioctlPtr(fd, unix.BIOCSETF, unsafe.Pointer(&prog))
	})
}

func (c *bpfCapture) ReadPacket(buf []byte) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.rest) > 0 {
			data, origLen, rest, err := nextBPFRecord(c.rest, binary.NativeEndian)
			if err != nil {
				c.rest = nil
				return 0, 0, fmt.Errorf("uplink capture: %w", err)
			}
			c.rest = rest
			off := int(c.lh.Offset)
			if len(data) < off {
				continue
			}
			return copy(buf, data[off:]), origLen - off, nil
		}
		n, err := c.f.Read(c.buf)
		switch {
		case errors.Is(err, io.EOF): // the read timeout: nothing came
			continue
		case errors.Is(err, os.ErrClosed):
			return 0, 0, net.ErrClosed
		case err != nil:
			return 0, 0, fmt.Errorf("uplink capture: read: %w", err)
		}
		c.rest = c.buf[:n]
	}
}

func (c *bpfCapture) Close() error { return c.f.Close() }
