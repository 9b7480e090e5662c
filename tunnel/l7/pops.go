package l7

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"
)

// PoP is one PoP the Client may dial.
type PoP struct {
	Addr string // "host:port"
	// ServerName is the name the PoP's certificate carries; empty means
	// ClientConfig.TLS's ServerName, else Addr's host.
	ServerName string
}

// PoPStatus is what the Client knows of one PoP, for diagnostics.
type PoPStatus struct {
	Addr string `json:"addr"`
	// Connect is how long the last TCP connect and TLS handshake to it took
	// (about two round trips); 0 if it failed or was never tried.
	Connect   time.Duration `json:"connect_ns"`
	LastError string        `json:"last_error,omitempty"`
	Measured  time.Time     `json:"measured"`
	InUse     bool          `json:"in_use"`
}

// pops is the Client's list of PoPs, in the order configured. With several,
// each connection attempt races a TCP connect and TLS handshake to every one
// of them: the first to complete (the PoP with the lowest RTT) is used, and
// the others are measured to the end and closed. When the PoP in use goes
// away, the next attempt races the others, so the client fails over to the
// nearest one left. A connection is never moved while it works.
type pops struct {
	list []popEntry

	mu    sync.Mutex
	stats []PoPStatus
	inUse int           // index in list; the last one dialed
	up    chan struct{} // closed and replaced at each connection
}

type popEntry struct {
	addr string
	tls  *tls.Config
}

func newPoPs(cfg ClientConfig) *pops {
	list := cfg.PoPs
	if len(list) == 0 {
		list = []PoP{{Addr: cfg.Addr}}
	}
	ps := &pops{stats: make([]PoPStatus, len(list)), up: make(chan struct{})}
	for i, p := range list {
		conf := cfg.TLS
		if p.ServerName != "" {
			conf = conf.Clone()
			if conf == nil {
				conf = &tls.Config{}
			}
			conf.ServerName = p.ServerName
		}
		ps.list = append(ps.list, popEntry{addr: p.Addr, tls: ClientTLS(conf, p.Addr, ALPNClient)})
		ps.stats[i].Addr = p.Addr
	}
	return ps
}

// current returns the address of the PoP in use (or last tried).
func (ps *pops) current() string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.list[ps.inUse].addr
}

func (ps *pops) record(i int, took time.Duration, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st := &ps.stats[i]
	st.Measured = time.Now()
	st.Connect, st.LastError = took, ""
	if err != nil {
		st.Connect, st.LastError = 0, err.Error()
	}
}

func (ps *pops) use(i int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.inUse = i
}

// connected wakes WaitConnected; the client is connected.
func (ps *pops) connected() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	close(ps.up)
	ps.up = make(chan struct{})
}

// WaitConnected returns when the client is connected to a PoP, or ctx's
// error.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.popList.mu.Lock()
		up := c.popList.up
		c.popList.mu.Unlock()
		// Checked after taking the channel: a connection made since closes it.
		if c.Connected() {
			return nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// PoPs returns what the client knows of each PoP it may dial.
func (c *Client) PoPs() []PoPStatus {
	ps := c.popList
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]PoPStatus, len(ps.stats))
	copy(out, ps.stats)
	if c.Connected() {
		out[ps.inUse].InUse = true
	}
	return out
}

type dialResult struct {
	i    int
	conn *TLSConn
	took time.Duration
	err  error
}

// dialPoP connects to the nearest PoP that answers (see pops) within
// DialTimeout and returns the connection and the PoP's address; errors name
// the PoPs.
func (c *Client) dialPoP() (*TLSConn, string, error) {
	ps := c.popList
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	results := make(chan dialResult, len(ps.list))
	for i, e := range ps.list {
		go func() {
			start := time.Now()
			conn, err := DialTLS(ctx, c.cfg.Dial, e.addr, e.tls)
			results <- dialResult{i: i, conn: conn, took: time.Since(start), err: err}
		}()
	}
	var errs []error
	for left := len(ps.list); left > 0; left-- {
		r := <-results
		ps.record(r.i, r.took, r.err)
		if r.err != nil {
			errs = append(errs, fmt.Errorf("dial PoP %s: %w", ps.list[r.i].addr, r.err))
			continue
		}
		ps.use(r.i)
		// The others are measured to the end (for status) and closed by a
		// goroutine Close waits for; ctx bounds them.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer cancel()
			for ; left > 1; left-- {
				r := <-results
				ps.record(r.i, r.took, r.err)
				if r.conn != nil {
					r.conn.Close()
				}
			}
		}()
		return r.conn, ps.list[r.i].addr, nil
	}
	cancel()
	if len(errs) == 1 {
		return nil, ps.list[0].addr, errs[0]
	}
	return nil, ps.current(), errors.Join(errs...)
}
