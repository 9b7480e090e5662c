package l7

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestVarint(t *testing.T) {
	for _, tt := range []struct {
		v    uint64
		size int
	}{{0, 1}, {63, 1}, {64, 2}, {16383, 2}, {16384, 4}, {1<<30 - 1, 4}, {1 << 30, 8}, {maxVarint, 8}} {
		b := appendVarint(nil, tt.v)
		cr := capsuleReader{r: bytes.NewReader(b)}
		got, err := cr.readVarint(true)
		if err != nil || got != tt.v || len(b) != tt.size {
			t.Errorf("varint %d: %d bytes, read %d, %v; want %d bytes", tt.v, len(b), got, err, tt.size)
		}
	}
}

func TestAppendDatagram(t *testing.T) {
	b, err := AppendDatagram(nil, []byte("hi"))
	if err != nil || !bytes.Equal(b, []byte{0x00, 0x03, 0x00, 'h', 'i'}) {
		t.Fatalf("capsule % x, %v", b, err)
	}
	big := make([]byte, MaxDatagram)
	if b, err = AppendDatagram(nil, big); err != nil || len(b) != maxCapsuleHeader+MaxDatagram {
		t.Fatalf("largest datagram: %d bytes, %v", len(b), err)
	}
	if _, err := AppendDatagram(nil, make([]byte, MaxDatagram+1)); !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("too large: %v", err)
	}
}

// capsule builds a capsule of any type and value, with a length as given
// (or the value's when -1).
func capsule(typ uint64, length int, value ...byte) []byte {
	if length < 0 {
		length = len(value)
	}
	b := appendVarint(appendVarint(nil, typ), uint64(length))
	return append(b, value...)
}

func TestReadDatagram(t *testing.T) {
	dg := func(p string) []byte { b, _ := AppendDatagram(nil, []byte(p)); return b }
	join := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name    string
		in      []byte
		bufLen  int
		want    []string
		dropped uint64
		err     error // after the datagrams
	}{
		{"two datagrams", join(dg("one"), dg("two")), 100, []string{"one", "two"}, 0, io.EOF},
		{"empty payload", dg(""), 100, []string{""}, 0, io.EOF},
		{"truncated to the buffer", dg("abcdef"), 3, []string{"abc"}, 0, io.EOF},
		{"unknown capsule type skipped", join(capsule(0x2a, -1, 1, 2, 3), dg("x")), 100, []string{"x"}, 0, io.EOF},
		{"unknown context ID skipped", join(capsule(0, -1, 7, 'n', 'o'), dg("x")), 100, []string{"x"}, 0, io.EOF},
		{"two-byte context ID skipped", join(capsule(0, -1, 0x40, 0x01, 'n'), dg("x")), 100, []string{"x"}, 0, io.EOF},
		{"too large dropped, counted", join(capsule(0, MaxDatagram+2, make([]byte, MaxDatagram+2)...), dg("x")), 100, []string{"x"}, 1, io.EOF},
		{"long varint for a small length", join([]byte{0x00, 0x80, 0, 0, 3, 0, 'o', 'k'}), 100, []string{"ok"}, 0, io.EOF},
		{"empty DATAGRAM capsule", capsule(0, 0), 100, nil, 0, ErrMalformedCapsule},
		{"context ID past its capsule", capsule(0, 1, 0x40, 0x01), 100, nil, 0, ErrMalformedCapsule},
		{"cut in the type", []byte{0x40}, 100, nil, 0, io.ErrUnexpectedEOF},
		{"cut in the length", []byte{0x00, 0x80, 0}, 100, nil, 0, io.ErrUnexpectedEOF},
		{"cut in the payload", dg("abcdef")[:5], 100, nil, 0, io.ErrUnexpectedEOF},
		{"cut in a skipped capsule", capsule(9, 10, 1, 2), 100, nil, 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := capsuleReader{r: bytes.NewReader(tt.in)}
			var dropped uint64
			buf := make([]byte, tt.bufLen)
			for _, w := range tt.want {
				n, err := cr.readDatagram(buf, &dropped)
				if err != nil || string(buf[:n]) != w {
					t.Fatalf("read %q, %v; want %q", buf[:n], err, w)
				}
			}
			if _, err := cr.readDatagram(buf, &dropped); !errors.Is(err, tt.err) {
				t.Fatalf("at the end: %v, want %v", err, tt.err)
			}
			if dropped != tt.dropped {
				t.Errorf("dropped %d, want %d", dropped, tt.dropped)
			}
		})
	}
}

// FuzzReadDatagram: any byte stream reads as datagrams, a clean end or an
// error, never a panic; every datagram read fits the limit, and writing
// them again reads back the same.
func FuzzReadDatagram(f *testing.F) {
	b, _ := AppendDatagram(nil, []byte("seed"))
	f.Add(b)
	f.Add(capsule(0x2a, -1, 1, 2))
	f.Add([]byte{0x00, 0x40, 0x01, 0x00})
	f.Add([]byte{0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		cr := capsuleReader{r: bytes.NewReader(in)}
		var dropped uint64
		buf := make([]byte, MaxDatagram)
		var again []byte
		var got [][]byte
		for {
			n, err := cr.readDatagram(buf, &dropped)
			if err != nil {
				break
			}
			got = append(got, bytes.Clone(buf[:n]))
			again, _ = AppendDatagram(again, buf[:n])
		}
		cr = capsuleReader{r: bytes.NewReader(again)}
		for i, want := range got {
			n, err := cr.readDatagram(buf, &dropped)
			if err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("datagram %d read back as %q, %v; want %q", i, buf[:n], err, want)
			}
		}
	})
}
