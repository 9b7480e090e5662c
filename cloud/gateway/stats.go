package gateway

import (
	"sync/atomic"

	"github.com/ztagent/ztagent/tunnel/l3e"
)

// Why a packet or a peer was dropped.
const (
	dropPolicy    = iota // the user's routes do not allow it (either end)
	dropSpoofed          // a device sent from an address not its own
	dropNoRoute          // no device owns the destination, or no TUN
	dropMalformed        // not an IP packet, or an unknown message
	dropTUN              // the TUN refused the write
	dropSend             // the DTLS write to the device failed
	dropHandshake        // a handshake failed (no or bad certificate, timeout)
	dropRefused          // Admit refused the device (unknown, revoked, pool full)
	dropBusy             // too many handshakes in progress
	numDrops
)

var dropNames = [numDrops]string{"policy", "spoofed", "no_route", "malformed", "tun_write",
	"send", "handshake", "refused", "busy"}

type counters struct {
	drops       [numDrops]atomic.Uint64
	handshakes  atomic.Uint64
	fromDevices atomic.Uint64
	fromCorp    atomic.Uint64
	toDevices   atomic.Uint64
	records     l3e.RecordStats
}

func (c *counters) add(reason int) { c.drops[reason].Add(1) }

// Stats is a snapshot of the gateway's counters, for its log and status.
type Stats struct {
	Associations int    `json:"associations"`
	Handshakes   uint64 `json:"handshakes"`
	// FromDevices counts packets devices sent that passed; FromCorp those
	// from the TUN; ToDevices those written to devices.
	FromDevices uint64 `json:"from_devices"`
	FromCorp    uint64 `json:"from_corp"`
	ToDevices   uint64 `json:"to_devices"`
	// Drops by reason: policy, spoofed, no_route, malformed, tun_write, send,
	// handshake, refused, busy.
	Drops map[string]uint64 `json:"drops"`
	// Datagrams received; truncated, replayed, forged and wrong-epoch
	// records dropped (by the record layer or by pion).
	Datagrams  uint64 `json:"datagrams"`
	Truncated  uint64 `json:"truncated"`
	Replayed   uint64 `json:"replayed"`
	Forged     uint64 `json:"forged"`
	WrongEpoch uint64 `json:"wrong_epoch"`
}

// Stats returns the counters now.
func (g *Gateway) Stats() Stats {
	c := &g.stats
	s := Stats{
		Associations: len(*g.assocs.Load()),
		Handshakes:   c.handshakes.Load(),
		FromDevices:  c.fromDevices.Load(), FromCorp: c.fromCorp.Load(), ToDevices: c.toDevices.Load(),
		Drops:     map[string]uint64{},
		Datagrams: c.records.Datagrams.Load(), Truncated: c.records.Truncated.Load(),
		Replayed: c.records.Replayed.Load(), Forged: c.records.Forged.Load(),
		WrongEpoch: c.records.WrongEpoch.Load(),
	}
	for i := range c.drops {
		s.Drops[dropNames[i]] = c.drops[i].Load()
	}
	return s
}
