package platform

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The control socket is open to every local user (read-only calls need no
// privilege), so nothing a user does through it may cost the agent more than
// a bounded share of its descriptors: LimitControl caps the connections per
// user and in total, keeps a share for administrators, and takes none when the
// process is close to its descriptor limit, which the data path (DNS, flows,
// the tunnel) needs more.

// ControlLimits bound the control socket's connections. Zero fields take the
// defaults.
type ControlLimits struct {
	// PerUser is the most connections one unprivileged user may hold (16).
	PerUser int
	// Total is the most connections in all (64), of which Reserved (16) only
	// root/administrators may take: an administrator can always run
	// `ztdiag status`, whatever unprivileged users hold.
	Total, Reserved int
	// FDReserve is how many descriptors are kept for the data path: an
	// unprivileged connection is refused when fewer are free, an
	// administrator's when fewer than half are. Default: a tenth of the
	// process's limit, within [64, 2048]. Negative turns the check off.
	FDReserve int
}

// Defaults of ControlLimits.
const (
	DefaultControlPerUser  = 16
	DefaultControlTotal    = 64
	DefaultControlReserved = 16
)

func (l ControlLimits) withDefaults(fileLimit int) ControlLimits {
	if l.PerUser <= 0 {
		l.PerUser = DefaultControlPerUser
	}
	if l.Total <= 0 {
		l.Total = DefaultControlTotal
	}
	if l.Reserved <= 0 {
		l.Reserved = min(DefaultControlReserved, l.Total/2)
	}
	l.Reserved = min(l.Reserved, l.Total-1) // unprivileged users get at least one
	if l.FDReserve == 0 {
		l.FDReserve = min(max(fileLimit/10, 64), 2048)
	}
	return l
}

// ErrControlBusy is why LimitControl refused a connection (wrapped, with the
// limit that was reached).
var ErrControlBusy = errors.New("control socket busy")

// connCounter is the accounting of LimitControl: who holds how many
// connections. It knows nothing of sockets, so it is tested with made-up
// credentials.
type connCounter struct {
	lim    ControlLimits
	mu     sync.Mutex
	users  map[int]int // unprivileged connections per UID (-1: unknown)
	unpriv int         // the sum of users
	all    int         // every connection, administrators' included
}

func newConnCounter(lim ControlLimits) *connCounter {
	return &connCounter{lim: lim, users: make(map[int]int)}
}

// admit takes a slot for a peer with credentials c, whose process has open
// of limit descriptors (limit 0: unknown), or says which limit refuses it.
// A taken slot is given back with release.
func (k *connCounter) admit(c Cred, open, limit int) error {
	if limit > 0 && k.lim.FDReserve > 0 {
		reserve := k.lim.FDReserve
		if c.Admin {
			reserve /= 2
		}
		if open > limit-reserve {
			return fmt.Errorf("%w: %d of %d descriptors in use, %d kept for the data path", ErrControlBusy, open, limit, reserve)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case c.Admin:
		if k.all >= k.lim.Total {
			return fmt.Errorf("%w: %d connections open, the most there may be", ErrControlBusy, k.all)
		}
	case k.users[c.UID] >= k.lim.PerUser:
		return fmt.Errorf("%w: user %d holds %d connections, the most one user may", ErrControlBusy, c.UID, k.users[c.UID])
	case k.unpriv >= k.lim.Total-k.lim.Reserved || k.all >= k.lim.Total:
		return fmt.Errorf("%w: %d connections open, the rest kept for administrators", ErrControlBusy, k.all)
	default:
		k.users[c.UID]++
		k.unpriv++
	}
	k.all++
	return nil
}

// release gives back the slot that admit took for c.
func (k *connCounter) release(c Cred) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.all--
	if c.Admin {
		return
	}
	k.unpriv--
	if k.users[c.UID]--; k.users[c.UID] <= 0 {
		delete(k.users, c.UID)
	}
}

// ControlConn is a connection accepted by LimitControl: Cred is its peer's
// (UID -1 and not Admin when the OS would not say). Close gives its slot back.
type ControlConn struct {
	net.Conn
	Cred Cred
	once sync.Once
	k    *connCounter
}

// Close closes the connection and, the first time, gives back its slot.
func (c *ControlConn) Close() error {
	c.once.Do(func() { c.k.release(c.Cred) })
	return c.Conn.Close()
}

// LimitControl wraps the control socket's listener. Accept reads each new
// connection's peer credentials and returns it as a *ControlConn. A
// connection that a limit of lim refuses is not returned: refuse, when not
// nil, may tell the client why (it runs on a goroutine of its own, at most
// refusers at once, with refuseTimeout to read and write, and the connection
// is closed after it; beyond that many it is closed at once). Refusals are
// logged at most once a minute, with their count. Close closes the listener
// and waits for the refusals in progress.
func LimitControl(ln net.Listener, lim ControlLimits, refuse func(net.Conn, error), log *zap.Logger) net.Listener {
	if log == nil {
		log = zap.NewNop()
	}
	limit := fileLimit()
	return &controlListener{
		Listener: ln,
		k:        newConnCounter(lim.withDefaults(limit)),
		fds:      &fdGauge{limit: limit, count: countOpenFiles},
		cred:     PeerCred,
		refuse:   refuse,
		refusing: make(chan struct{}, refusers),
		log:      log,
	}
}

// A refused client is told why by at most refusers goroutines at once, each
// given refuseTimeout: enough for a local client's request to arrive, so the
// answer follows it.
const (
	refusers      = 4
	refuseTimeout = 100 * time.Millisecond
)

type controlListener struct {
	net.Listener
	k        *connCounter
	fds      *fdGauge
	cred     func(net.Conn) (Cred, error)
	refuse   func(net.Conn, error)
	refusing chan struct{} // a slot per refusal in progress
	wg       sync.WaitGroup
	log      *zap.Logger

	// refusals since the last log line; only Accept's goroutine uses them.
	refused  int
	loggedAt time.Time
}

// Accept implements net.Listener. Its errors are the listener's: net/http
// retries temporary ones (EMFILE) with a backoff.
func (l *controlListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := l.cred(c)
		if err != nil {
			cred = Cred{UID: -1, PID: -1}
		}
		open, limit := l.fds.usage(connFD(c))
		if err := l.k.admit(cred, open, limit); err != nil {
			l.refusedConn(c, cred, err)
			continue
		}
		return &ControlConn{Conn: c, Cred: cred, k: l.k}, nil
	}
}

// Close implements net.Listener.
func (l *controlListener) Close() error {
	err := l.Listener.Close()
	l.wg.Wait()
	return err
}

func (l *controlListener) refusedConn(c net.Conn, cred Cred, err error) {
	l.refused++
	if now := time.Now(); now.Sub(l.loggedAt) >= time.Minute {
		l.log.Warn("control connections refused", zap.Int("count", l.refused), zap.Int("uid", cred.UID),
			zap.Int("pid", cred.PID), zap.Error(err))
		l.refused, l.loggedAt = 0, now
	}
	if l.refuse == nil {
		c.Close()
		return
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close() // enough clients are being told already
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-l.refusing }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseTimeout))
		l.refuse(c, err)
	}()
}

// fdGauge tells how many descriptors the process has open. The accepted
// socket's number is a free lower bound (the kernel gives the lowest free
// number, so every one below it is open); counting them all costs about
// 15 ms at 20,000 descriptors, so it is done only when that bound passes half
// the limit, and then at most every fdCountEvery.
type fdGauge struct {
	limit int                 // 0: unknown, no reserve is kept
	count func() (int, error) // an exact count

	counted   int
	countedAt time.Time
}

const fdCountEvery = 250 * time.Millisecond

// usage returns the descriptors open and the limit, given the number of the
// one just accepted (-1 if unknown). Only Accept's goroutine calls it.
func (g *fdGauge) usage(fd int) (open, limit int) {
	if g.limit <= 0 {
		return 0, 0
	}
	open = fd + 1
	if open <= g.limit/2 {
		return open, g.limit
	}
	if now := time.Now(); now.Sub(g.countedAt) >= fdCountEvery {
		n, err := g.count()
		switch {
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			n = g.limit // too short of descriptors to count them
		case err != nil:
			n = 0 // the lower bound will do
		}
		g.counted, g.countedAt = n, now
	}
	return max(open, g.counted), g.limit
}
