package netstack

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// recordTUN is a tun.Device that records the batches written to it.
type recordTUN struct {
	batches [][][]byte
}

func (d *recordTUN) Write(bufs [][]byte, offset int) (int, error) {
	var batch [][]byte
	for _, b := range bufs {
		batch = append(batch, bytes.Clone(b[offset:]))
	}
	d.batches = append(d.batches, batch)
	return len(bufs), nil
}

func (d *recordTUN) Read([][]byte, []int, int) (int, error) { return 0, os.ErrClosed }
func (d *recordTUN) File() *os.File                         { return nil }
func (d *recordTUN) MTU() (int, error)                      { return testMTU, nil }
func (d *recordTUN) Name() (string, error)                  { return "rec0", nil }
func (d *recordTUN) Events() <-chan tun.Event               { return nil }
func (d *recordTUN) BatchSize() int                         { return 3 }
func (d *recordTUN) Close() error                           { return nil }

// gsoSegment builds what gVisor hands a host-GSO link: one TCP segment with
// a payload larger than the MSS.
func gsoSegment(v6 bool, payload []byte, flags header.TCPFlags) *stack.PacketBuffer {
	iphLen := header.IPv4MinimumSize
	if v6 {
		iphLen = header.IPv6MinimumSize
	}
	b := make([]byte, iphLen+header.TCPMinimumSize+len(payload))
	gso := stack.GSO{Type: stack.GSOTCPv4, MSS: 1000, L3HdrLen: uint16(iphLen), NeedsCsum: true}
	if v6 {
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(len(b) - iphLen),
			TransportProtocol: header.TCPProtocolNumber,
			HopLimit:          64,
			SrcAddr:           tcpip.AddrFrom16(realDst.Addr().As16()),
			DstAddr:           tcpip.AddrFrom16(clientV6.As16()),
		})
		gso.Type = stack.GSOTCPv6
	} else {
		header.IPv4(b).Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)),
			ID:          0xfffe, // wraps during the split
			TTL:         64,
			Protocol:    uint8(header.TCPProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(stubDst.Addr().As4()),
			DstAddr:     tcpip.AddrFrom4(clientV4.As4()),
		})
	}
	header.TCP(b[iphLen:]).Encode(&header.TCPFields{
		SrcPort: 80, DstPort: 40000, SeqNum: 0xffffff00, AckNum: 7,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 1000,
	})
	copy(b[iphLen+header.TCPMinimumSize:], payload)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.GSOOptions = gso
	return pkt
}

// TestGSOSplit checks segmentation directly: sizes, sequence numbers (across
// wrap-around), IPv4 IDs, flags only on the last segment, valid checksums,
// and batches flushed when the device's batch fills mid-split.
func TestGSOSplit(t *testing.T) {
	payload := make([]byte, 3500)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for _, v6 := range []bool{false, true} {
		dev := &recordTUN{}
		st := &Stack{dev: dev, log: zap.NewNop(), mtu: testMTU}
		w := &batchWriter{s: st, bufs: make([][]byte, dev.BatchSize()), size: tunOffset + testMTU}
		for i := range w.bufs {
			w.bufs[i] = make([]byte, tunOffset+testMTU)
		}
		pkt := gsoSegment(v6, payload, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin)
		w.add(pkt)
		pkt.DecRef()
		w.flush()

		if len(dev.batches) != 2 || len(dev.batches[0]) != 3 || len(dev.batches[1]) != 1 {
			t.Fatalf("v6=%v: batches of %v packets; want [3 1]", v6, batchSizes(dev.batches))
		}
		var got []byte
		var segs [][]byte
		for _, b := range dev.batches {
			segs = append(segs, b...)
		}
		for i, seg := range segs {
			if !checksumsValid(seg) {
				t.Errorf("v6=%v seg %d: bad checksum", v6, i)
			}
			iphLen := header.IPv4MinimumSize
			if v6 {
				iphLen = header.IPv6MinimumSize
			} else if id := header.IPv4(seg).ID(); id != uint16(0xfffe+i) {
				t.Errorf("seg %d: IPv4 ID %#x", i, id)
			}
			tcp := header.TCP(seg[iphLen:])
			if want := uint32(0xffffff00) + uint32(i*1000); tcp.SequenceNumber() != want {
				t.Errorf("v6=%v seg %d: seq %#x, want %#x", v6, i, tcp.SequenceNumber(), want)
			}
			wantFlags := header.TCPFlagAck
			if i == len(segs)-1 {
				wantFlags |= header.TCPFlagPsh | header.TCPFlagFin
			}
			if tcp.Flags() != wantFlags {
				t.Errorf("v6=%v seg %d: flags %v, want %v", v6, i, tcp.Flags(), wantFlags)
			}
			if l := binary.BigEndian.Uint16(seg[2:]); !v6 && int(l) != len(seg) {
				t.Errorf("seg %d: IPv4 total length %d, packet %d", i, l, len(seg))
			}
			got = append(got, tcp.Payload()...)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("v6=%v: reassembled payload differs", v6)
		}
	}
}

// TestGSOWithoutMSS: gVisor marks the packets of a handshake for GSO before
// it knows the MSS; they go out whole, with their checksum completed, rather
// than being dropped (which made every connect wait for a retransmission).
func TestGSOWithoutMSS(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte("hello")} {
		dev := &recordTUN{}
		st := &Stack{dev: dev, log: zap.NewNop(), mtu: testMTU}
		w := &batchWriter{s: st, bufs: [][]byte{make([]byte, tunOffset+testMTU)}, size: tunOffset + testMTU}
		pkt := gsoSegment(false, payload, header.TCPFlagAck)
		pkt.GSOOptions.MSS = 0
		w.add(pkt)
		pkt.DecRef()
		w.flush()
		if len(dev.batches) != 1 || len(dev.batches[0]) != 1 {
			t.Fatalf("%d-byte payload: batches of %v packets, want [1]", len(payload), batchSizes(dev.batches))
		}
		seg := dev.batches[0][0]
		if !checksumsValid(seg) || !bytes.Equal(header.TCP(seg[header.IPv4MinimumSize:]).Payload(), payload) {
			t.Errorf("%d-byte payload: sent %x", len(payload), seg)
		}
		if n := st.stats.droppedOut.Load(); n != 0 {
			t.Errorf("%d packets dropped", n)
		}
	}
}

func batchSizes(b [][][]byte) []int {
	var n []int
	for _, x := range b {
		n = append(n, len(x))
	}
	return n
}
