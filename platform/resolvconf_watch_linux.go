package platform

import (
	"sync"
	"time"
)

// resolvConfWatchInterval is how often the agent checks that resolv.conf
// still points at it. Polling, rather than inotify, also sees a file
// bind-mounted over /etc/resolv.conf (ip netns exec, containers) being
// rewritten, whose events reach only watchers of the mount's source
// directory; reading a small file every few seconds costs nothing.
const resolvConfWatchInterval = 2 * time.Second

// poller calls fn every interval on a goroutine it owns, until stop.
type poller struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func startPoller(interval time.Duration, fn func()) *poller {
	p := &poller{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return p
}

// stop ends the goroutine and waits for it; fn is not running once it
// returns.
func (p *poller) stop() {
	close(p.done)
	p.wg.Wait()
}
