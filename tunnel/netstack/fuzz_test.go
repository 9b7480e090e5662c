package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// synPacket builds a valid IPv4 TCP SYN from the client to stubDst.
func synPacket() []byte { return synFrom(clientV4) }

func synFrom(src netip.Addr) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.TCPProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(src.As4()),
		DstAddr:     tcpip.AddrFrom4(stubDst.Addr().As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(b[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{
		SrcPort:    40000,
		DstPort:    stubDst.Port(),
		SeqNum:     1,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlagSyn,
		WindowSize: 65535,
	})
	tcp.SetChecksum(^checksum.Checksum(tcp, pseudoHeaderSum(6, b[12:16], b[16:20], len(tcp))))
	return b
}

func TestChecksumsValid(t *testing.T) {
	good := synPacket()
	if !checksumsValid(good) {
		t.Fatal("valid SYN rejected")
	}
	for name, mutate := range map[string]func([]byte) []byte{
		"ip header bit flip": func(b []byte) []byte { b[8]--; return b },
		"tcp payload flip":   func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"truncated":          func(b []byte) []byte { return b[:30] },
		"bad version":        func(b []byte) []byte { b[0] = 0x55; return b },
	} {
		if checksumsValid(mutate(append([]byte(nil), good...))) {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzInbound feeds arbitrary packets through the TUN into a running Stack:
// nothing may panic, and whatever the stack answers must carry valid
// checksums (checked by the peer).
func FuzzInbound(f *testing.F) {
	f.Add(synPacket())
	f.Add([]byte{0x45})
	f.Add(make([]byte, 60))
	h := newHarness(f, Config{
		Log: zap.NewNop(),
		TCP: func(context.Context, Flow) (net.Conn, error) { return nil, errors.New("refused") },
	})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		checksumsValid(pkt)
		if len(pkt) > 1<<16 {
			return
		}
		h.inject(pkt)
	})
}
