package platform

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/bpf"
)

// vmCapture is an uplink capture that filters in user space, for an OS
// that hands the agent every packet of the uplink with no kernel filter
// (Windows' raw sockets in receive-all mode): the program the kernels run
// elsewhere (ownTrafficFilter, on raw IP packets) runs in x/net/bpf's
// virtual machine on each packet, and only those it passes are copied out.
// One goroutine reads each source.
type vmCapture struct {
	ifname  string
	srcs    []packetSource
	vm      atomic.Pointer[bpf.VM] // nil: pass nothing
	packets chan []byte            // closed when every reader has exited
	done    chan struct{}          // closed by Close
	once    sync.Once
}

var errFilterDisassemble = errors.New("the capture filter does not disassemble")

// packetSource is one OS handle that yields raw IP packets.
type packetSource interface {
	// Read reads one packet, from its IP header on, into buf. After Close
	// it returns an error.
	Read(buf []byte) (int, error)
	Close() error
}

// vmQueue is how many passed packets wait for ReadPacket; a reader blocks
// beyond it, and the OS's socket buffer then holds (or drops) the rest, as
// a kernel capture's would.
const vmQueue = 256

func newVMCapture(ifname string, srcs []packetSource) *vmCapture {
	c := &vmCapture{ifname: ifname, srcs: srcs, packets: make(chan []byte, vmQueue), done: make(chan struct{})}
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.read(s)
		}()
	}
	go func() {
		wg.Wait()
		close(c.packets)
	}()
	return c
}

func (c *vmCapture) read(s packetSource) {
	buf := make([]byte, 1<<16)
	for {
		n, err := s.Read(buf)
		if err != nil {
			return
		}
		vm := c.vm.Load()
		if vm == nil {
			continue
		}
		keep, err := vm.Run(buf[:n])
		if err != nil || keep == 0 {
			continue
		}
		c.packets <- append([]byte(nil), buf[:min(n, keep)]...)
	}
}

func (c *vmCapture) SetEndpoints(eps []Endpoint) error {
	raw, err := ownTrafficFilter(eps, linkHeader{})
	if err != nil {
		return err
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		return errFilterDisassemble
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return err
	}
	c.vm.Store(vm)
	return nil
}

func (c *vmCapture) ReadPacket(buf []byte) (n, origLen int, err error) {
	select {
	case <-c.done:
		return 0, 0, net.ErrClosed
	case p, ok := <-c.packets:
		select {
		case <-c.done:
			ok = false
		default:
		}
		if !ok {
			return 0, 0, net.ErrClosed
		}
		return copy(buf, p), len(p), nil
	}
}

func (c *vmCapture) Interface() string { return c.ifname }

// Close closes the sources, which ends their readers; packets already
// passed are dropped.
func (c *vmCapture) Close() error {
	var first error
	c.once.Do(func() {
		close(c.done)
		for _, s := range c.srcs {
			if err := s.Close(); err != nil && first == nil {
				first = err
			}
		}
		go func() { // unblock readers waiting on a full queue
			for range c.packets {
			}
		}()
	})
	return first
}
