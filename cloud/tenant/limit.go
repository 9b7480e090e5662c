package tenant

import (
	"net"
	"sync"
	"time"
)

// failLimiter slows down guessing of org keys and tokens: after maxFails failed
// enrollments from one address within a window, further attempts from it are
// refused until the window ends. It is a fixed window reset lazily, so it owns no
// goroutine; its map is bounded, and when full it stops tracking new addresses
// rather than refusing them (a flood must not lock out legitimate devices).
type failLimiter struct {
	mu       sync.Mutex
	window   time.Duration
	maxFails int
	maxAddrs int
	start    time.Time
	fails    map[string]int
}

const (
	enrollFailWindow = time.Minute
	enrollMaxFails   = 10
	enrollMaxAddrs   = 65536
)

func newFailLimiter() *failLimiter {
	return &failLimiter{window: enrollFailWindow, maxFails: enrollMaxFails, maxAddrs: enrollMaxAddrs,
		fails: map[string]int{}}
}

// resetLocked starts a new window when the current one has ended.
func (l *failLimiter) resetLocked(now time.Time) {
	if now.Sub(l.start) >= l.window || now.Before(l.start) {
		l.start = now
		clear(l.fails)
	}
}

// blocked reports whether addr has used up its failures in this window, and
// when the window ends.
func (l *failLimiter) blocked(addr string, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resetLocked(now)
	return l.fails[hostOf(addr)] >= l.maxFails, l.start.Add(l.window)
}

// fail counts one failed attempt from addr.
func (l *failLimiter) fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resetLocked(now)
	h := hostOf(addr)
	if _, ok := l.fails[h]; ok || len(l.fails) < l.maxAddrs {
		l.fails[h]++
	}
}

// hostOf strips the port from a RemoteAddr.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
