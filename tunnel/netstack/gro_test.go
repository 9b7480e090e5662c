package netstack

import (
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// dataSegment builds an IPv4 TCP segment with payload and no PSH, which
// gVisor's GRO holds for merging.
func dataSegment(srcPort, dstPort uint16, seq uint32, payload int) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+payload)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.TCPProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(clientV4.As4()),
		DstAddr:     tcpip.AddrFrom4(stubDst.Addr().As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(b[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{
		SrcPort:    srcPort,
		DstPort:    dstPort,
		SeqNum:     seq,
		AckNum:     1,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlagAck,
		WindowSize: 65535,
	})
	tcp.SetChecksum(^checksum.Checksum(tcp, pseudoHeaderSum(6, b[12:16], b[16:20], len(tcp))))
	return b
}

type countingDispatcher struct{ n int }

func (d *countingDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	d.n++
}
func (d *countingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// TestFlushGRODeliversEverything guards the workaround in flushGRO: gVisor's
// GRO.Flush releases only the first held segment of each bucket, so flows
// that share a bucket would be stalled until the next read.
func TestFlushGRODeliversEverything(t *testing.T) {
	var d countingDispatcher
	var g gro.GRO
	g.Init(true)
	g.Dispatcher = &d
	// Ports with equal sums hash to the same bucket.
	const flows = 8
	for i := range flows {
		p := dataSegment(40000+uint16(i), 80-uint16(i), 1, 100)
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		pkt.RXChecksumValidated = true
		g.Enqueue(pkt)
		pkt.DecRef()
	}
	flushGRO(&g)
	if d.n != flows {
		t.Fatalf("delivered %d of %d segments", d.n, flows)
	}
}
