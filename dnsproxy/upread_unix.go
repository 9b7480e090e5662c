//go:build unix

package dnsproxy

import (
	"net"
	"os"
	"syscall"
)

// An upstream socket's reader holds a read buffer only while a packet is
// there to be read: it waits for the socket to be readable through the
// runtime poller, then takes a buffer from readBufs, reads, and gives the
// buffer back once the answer is delivered. A socket retired after
// sockMaxUses queries stays open until its last query is answered or
// expires (2 s when the upstream dropped it), and there are as many of them
// as the upstream drops queries: they then cost a parked goroutine each, not
// also a 64 kB buffer (which had doubled the agent's memory in the DNS soak
// with a dropping upstream).

// upReader reads the answers of one upstream socket.
type upReader struct {
	rc  syscall.RawConn // nil when the socket had none: read returns err
	bp  *[]byte         // the buffer holding the last packet read, from readBufs
	n   int
	err error
	fn  func(fd uintptr) bool // r.recv, made once: a method value allocates
}

func newUpReader(conn *net.UDPConn) *upReader {
	r := &upReader{}
	// SyscallConn fails only for a connection that is not one; the
	// socket then fails at its first read.
	r.rc, r.err = conn.SyscallConn()
	r.fn = r.recv
	return r
}

// read returns the next packet, valid until release.
func (r *upReader) read() ([]byte, error) {
	if r.rc == nil {
		return nil, r.err
	}
	// r.fn has run, and set r.err, whenever Read returns nil.
	if err := r.rc.Read(r.fn); err != nil {
		r.release()
		return nil, err
	}
	if r.err != nil {
		r.release()
		return nil, os.NewSyscallError("read", r.err)
	}
	return (*r.bp)[:r.n], nil
}

// recv runs under the runtime poller: it returns false when the socket
// would block, and the poller calls it again once the socket is readable.
func (r *upReader) recv(fd uintptr) bool {
	r.bp = readBufs.Get().(*[]byte)
	for {
		r.n, r.err = syscall.Read(int(fd), *r.bp)
		if r.err != syscall.EINTR {
			break
		}
	}
	if r.err == syscall.EAGAIN {
		r.release()
		return false
	}
	return true
}

// release gives the buffer of the last packet back.
func (r *upReader) release() {
	if r.bp != nil {
		readBufs.Put(r.bp)
		r.bp = nil
	}
}
