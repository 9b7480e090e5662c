package netstacktest

import (
	"context"
	"net/netip"
	"testing"

	"go.uber.org/goleak"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDialEmitsSYN: a dial from the peer comes out of Device().Read as an
// IPv4 SYN to the dialled address.
func TestDialEmitsSYN(t *testing.T) {
	p, err := NewPeer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.DialTCP(ctx, netip.MustParseAddrPort("100.64.0.5:80"))
	}()
	bufs := [][]byte{make([]byte, 2000)}
	sizes := make([]int, 1)
	if _, err := p.Device().Read(bufs, sizes, 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	pkt := header.IPv4(bufs[0][:sizes[0]])
	tcp := header.TCP(pkt.Payload())
	if pkt.DestinationAddress() != tcpip.AddrFrom4([4]byte{100, 64, 0, 5}) || tcp.DestinationPort() != 80 || tcp.Flags() != header.TCPFlagSyn {
		t.Fatalf("read %v -> %v port %d flags %v; want a SYN to 100.64.0.5:80", pkt.SourceAddress(), pkt.DestinationAddress(), tcp.DestinationPort(), tcp.Flags())
	}
}

// TestMalformedCounted: packets with a bad checksum written to the device
// are counted, so a bridge under test cannot hide checksum bugs.
func TestMalformedCounted(t *testing.T) {
	for name, corrupt := range map[string]func([]byte){
		"tcp checksum": func(b []byte) { b[len(b)-1]++ },
		"ip checksum":  func(b []byte) { b[10]++ },
	} {
		t.Run(name, func(t *testing.T) {
			p, err := NewPeer(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			b := segment()
			corrupt(b)
			if _, err := p.Device().Write([][]byte{b}, 0); err != nil {
				t.Fatal(err)
			}
			if p.Malformed() != 1 {
				t.Fatalf("Malformed() = %d, want 1", p.Malformed())
			}
		})
	}
}

// segment is a valid TCP segment with 4 payload bytes for the peer.
func segment() []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+4)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4([4]byte{100, 64, 0, 5}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(b[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 80, DstPort: 4000, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck, WindowSize: 100})
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
	tcp.SetChecksum(^checksum.Checksum(tcp, sum))
	return b
}
