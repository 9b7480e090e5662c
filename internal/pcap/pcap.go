// Package pcap writes the classic libpcap capture file format
// (https://www.tcpdump.org/manpages/pcap-savefile.5.html) with link type
// LINKTYPE_RAW: each record is an IPv4 or IPv6 packet with no link-layer
// header, as a TUN device carries it. `tcpdump -r`, Wireshark and every
// pcap library read it. The format is a 24-byte file header and a 16-byte
// header before each packet, in the writer's byte order (the magic number
// tells readers which).
package pcap

import (
	"encoding/binary"
	"errors"
	"io"
	"time"
)

const (
	// LinkTypeRaw is LINKTYPE_RAW: raw IPv4 or IPv6, told apart by the
	// version nibble.
	LinkTypeRaw = 101
	// MaxSnaplen is the largest snapshot length readers accept (libpcap's
	// MAXIMUM_SNAPLEN).
	MaxSnaplen = 262144
	// FileHeaderLen and RecordHeaderLen are the sizes of the headers.
	FileHeaderLen, RecordHeaderLen = 24, 16

	magicMicros = 0xa1b2c3d4 // timestamps in microseconds
)

// ErrSnaplen is returned by NewWriter for a snapshot length out of range.
var ErrSnaplen = errors.New("pcap: snapshot length out of range (1 to 262144)")

// Writer writes packets to a pcap file. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	snaplen int
	rec     [RecordHeaderLen]byte
}

// NewWriter writes the file header to w and returns the writer of its
// packets; a packet longer than snaplen is cut to it (its record keeps the
// original length).
func NewWriter(w io.Writer, snaplen int) (*Writer, error) {
	if snaplen < 1 || snaplen > MaxSnaplen {
		return nil, ErrSnaplen
	}
	var h [FileHeaderLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], magicMicros)
	le.PutUint16(h[4:], 2) // version 2.4
	le.PutUint16(h[6:], 4)
	// h[8:16]: time zone offset and timestamp accuracy, always zero.
	le.PutUint32(h[16:], uint32(snaplen))
	le.PutUint32(h[20:], LinkTypeRaw)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w, snaplen: snaplen}, nil
}

// WritePacket writes one packet captured at ts and returns the bytes it
// added to the file.
func (w *Writer) WritePacket(ts time.Time, p []byte) (int, error) {
	return w.WriteCut(ts, p, len(p))
}

// WriteCut writes the first bytes p of a packet that was origLen bytes long
// (a capturer that cut it to the snapshot length already).
func (w *Writer) WriteCut(ts time.Time, p []byte, origLen int) (int, error) {
	caplen := min(len(p), w.snaplen)
	le := binary.LittleEndian
	us := ts.UnixMicro()
	le.PutUint32(w.rec[0:], uint32(us/1e6))
	le.PutUint32(w.rec[4:], uint32(us%1e6))
	le.PutUint32(w.rec[8:], uint32(caplen))
	le.PutUint32(w.rec[12:], uint32(max(origLen, caplen)))
	if _, err := w.w.Write(w.rec[:]); err != nil {
		return 0, err
	}
	if _, err := w.w.Write(p[:caplen]); err != nil {
		return RecordHeaderLen, err
	}
	return RecordHeaderLen + caplen, nil
}
