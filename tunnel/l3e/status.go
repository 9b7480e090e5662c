package l3e

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Why the client dropped a packet.
const (
	dropPolicy    = iota // outside the routes, or not from/to the device's address
	dropNoTunnel         // no association (or no template yet)
	dropMalformed        // not an IP packet, or an unknown message
	dropSend             // the DTLS write failed
	dropTUN              // the TUN refused the write
	numDrops
)

var dropNames = [numDrops]string{"policy", "no_tunnel", "malformed", "send", "tun_write"}

type clientCounters struct {
	drops                 [numDrops]atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
	bytesIn, bytesOut     atomic.Uint64
	rekeys, losses        atomic.Uint64
	templatesRefused      atomic.Uint64
	records               RecordStats
}

func (c *clientCounters) add(reason int) { c.drops[reason].Add(1) }

// Status is the client's state, template and counters, for `ztdiag status`.
type Status struct {
	State     string    `json:"state"`
	Gateway   string    `json:"gateway"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// From the template in force (zero before the first).
	Address netip.Prefix `json:"address,omitzero"`
	MTU     int          `json:"mtu,omitempty"`
	DNS     []netip.Addr `json:"dns,omitempty"`
	Suffix  string       `json:"suffix,omitempty"`
	Routes  []Route      `json:"routes,omitempty"`

	PacketsIn        uint64            `json:"packets_in"`
	PacketsOut       uint64            `json:"packets_out"`
	BytesIn          uint64            `json:"bytes_in"`
	BytesOut         uint64            `json:"bytes_out"`
	Rekeys           uint64            `json:"rekeys"`
	Losses           uint64            `json:"losses"`
	TemplatesRefused uint64            `json:"templates_refused"`
	Drops            map[string]uint64 `json:"drops"`
	Truncated        uint64            `json:"truncated"`
	Replayed         uint64            `json:"replayed"`
	Forged           uint64            `json:"forged"`
	WrongEpoch       uint64            `json:"wrong_epoch"`
}

// Status returns the client's state now.
func (c *Client) Status() Status {
	c.mu.Lock()
	st := Status{State: c.state, Gateway: c.cfg.Gateway, Since: c.since, LastError: c.lastErr}
	if t := c.tmpl; t != nil {
		st.Address, st.MTU, st.DNS, st.Suffix, st.Routes = t.Address, t.MTU, t.DNS, t.Suffix, t.Routes
	}
	c.mu.Unlock()
	k := &c.stats
	st.PacketsIn, st.PacketsOut = k.packetsIn.Load(), k.packetsOut.Load()
	st.BytesIn, st.BytesOut = k.bytesIn.Load(), k.bytesOut.Load()
	st.Rekeys, st.Losses, st.TemplatesRefused = k.rekeys.Load(), k.losses.Load(), k.templatesRefused.Load()
	st.Truncated, st.Replayed, st.Forged = k.records.Truncated.Load(), k.records.Replayed.Load(), k.records.Forged.Load()
	st.WrongEpoch = k.records.WrongEpoch.Load()
	st.Drops = map[string]uint64{}
	for i := range k.drops {
		st.Drops[dropNames[i]] = k.drops[i].Load()
	}
	return st
}
