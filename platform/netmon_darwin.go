package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// routeSocket is the macOS netNotifier: a routing socket (PF_ROUTE), on
// which the kernel writes a message for every route, address and interface
// change. Only the message's type is read; the monitor reads the state
// itself after the burst.
type routeSocket struct {
	f      *os.File
	events notifyChan
	exited chan struct{}
}

func subscribeNet() (netNotifier, error) {
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("open a routing socket: %w", err)
	}
	// Non-blocking, so that the file is read through the runtime's poller
	// and Close wakes a pending read.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("routing socket: %w", err)
	}
	s := &routeSocket{f: os.NewFile(uintptr(fd), "route"), events: newNotifyChan(), exited: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *routeSocket) Events() <-chan struct{} { return s.events }

func (s *routeSocket) Close() {
	s.f.Close()
	<-s.exited
}

// read notifies for each message that may change a path: routes added,
// deleted or changed, addresses added or deleted, interfaces going up or
// down. It closes Events when the socket fails or is closed.
func (s *routeSocket) read() {
	defer close(s.exited)
	defer close(s.events)
	buf := make([]byte, 2048)
	for {
		n, err := s.f.Read(buf)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) { // messages were lost: the monitor reads the state anyway
				s.events.notify()
				continue
			}
			return
		}
		if routeMessageMatters(buf[:n]) {
			s.events.notify()
		}
	}
}
