package platform

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// bpfRecord encodes one /dev/bpf record as macOS lays it out (20-byte
// header, data, padding to 4 bytes).
func bpfRecord(order binary.ByteOrder, data []byte, datalen int) []byte {
	h := make([]byte, 20)
	order.PutUint32(h[0:], 1700000000)
	order.PutUint32(h[4:], 123456)
	order.PutUint32(h[8:], uint32(len(data)))
	order.PutUint32(h[12:], uint32(datalen))
	order.PutUint16(h[16:], 20)
	r := append(h, data...)
	for len(r)%4 != 0 {
		r = append(r, 0xee)
	}
	return r
}

// TestNextBPFRecord reads a buffer of records back, cut and whole, in both
// byte orders, and refuses headers that point past the buffer.
func TestNextBPFRecord(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		pkts := [][]byte{bytes.Repeat([]byte{1}, 61), bytes.Repeat([]byte{2}, 64), {3}}
		lens := []int{61, 1500, 1}
		var buf []byte
		for i, p := range pkts {
			buf = append(buf, bpfRecord(order, p, lens[i])...)
		}
		rest := buf
		for i := range pkts {
			var data []byte
			var n int
			var err error
			data, n, rest, err = nextBPFRecord(rest, order)
			if err != nil || !bytes.Equal(data, pkts[i]) || n != lens[i] {
				t.Fatalf("%v record %d: %x %d %v", order, i, data, n, err)
			}
		}
		if data, _, _, err := nextBPFRecord(rest, order); data != nil || err != nil {
			t.Fatalf("after the last record: %x %v", data, err)
		}
	}
	bad := bpfRecord(binary.LittleEndian, []byte{1, 2, 3, 4}, 4)
	for name, b := range map[string][]byte{
		"short header":     bad[:10],
		"caplen past end":  bad[:22],
		"caplen > datalen": bpfRecord(binary.LittleEndian, []byte{1, 2, 3, 4}, 2),
		"hdrlen too small": append(append([]byte{}, bad[:16]...), 4, 0, 0, 0),
	} {
		if _, _, _, err := nextBPFRecord(b, binary.LittleEndian); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
