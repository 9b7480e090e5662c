package platform

import (
	"encoding/binary"
	"fmt"
)

// A read from a BSD /dev/bpf device returns whole records, each a struct
// bpf_hdr (macOS: a 32-bit timeval, caplen, datalen, hdrlen; 20 bytes with
// its padding), the captured bytes from hdrlen on, and padding up to the
// next 4-byte boundary (BPF_WORDALIGN). The fields are in the host's byte
// order. This half is pure, so that it is tested on every OS.

const (
	bpfHdrMin   = 18 // the fields, without the struct's tail padding
	bpfWordAlig = 4
)

// nextBPFRecord splits the first record off b: its captured bytes, the
// packet's length on the wire, and what follows the record. An empty b is
// no record (data nil, rest empty).
func nextBPFRecord(b []byte, order binary.ByteOrder) (data []byte, origLen int, rest []byte, err error) {
	if len(b) == 0 {
		return nil, 0, nil, nil
	}
	if len(b) < bpfHdrMin {
		return nil, 0, nil, fmt.Errorf("bpf record: %d bytes, shorter than its header", len(b))
	}
	caplen := int(order.Uint32(b[8:]))
	datalen := int(order.Uint32(b[12:]))
	hdrlen := int(order.Uint16(b[16:]))
	end := hdrlen + caplen
	if hdrlen < bpfHdrMin || caplen > datalen || end > len(b) {
		return nil, 0, nil, fmt.Errorf("bpf record: header %d, caplen %d, datalen %d in %d bytes", hdrlen, caplen, datalen, len(b))
	}
	next := min((end+bpfWordAlig-1)&^(bpfWordAlig-1), len(b))
	return b[hdrlen:end], datalen, b[next:], nil
}
