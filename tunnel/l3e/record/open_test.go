package record

import (
	"bytes"
	"errors"
	"testing"
)

func testPair(t testing.TB) (*Sealer, *Opener) {
	key, iv := bytes.Repeat([]byte{7}, 16), []byte{1, 2, 3, 4}
	s, err := NewSealer(key, iv, 1, SeqBase)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(key, iv, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s, o
}

// Open refuses what is truncated, forged, replayed, too old or of another
// epoch, each with its own error, and the window is unchanged after.
func TestOpenRefuses(t *testing.T) {
	s, o := testPair(t)
	first := sealed(t, s, []byte("first"))
	if _, err := o.Open(append([]byte{}, first...)); err != nil {
		t.Fatal(err)
	}
	old := make([][]byte, WindowSize+1)
	for i := range old {
		old[i] = sealed(t, s, []byte("x"))
	}
	for _, r := range old[1:] {
		if _, err := o.Open(append([]byte{}, r...)); err != nil {
			t.Fatal(err)
		}
	}
	rec := sealed(t, s, []byte("a packet"))
	otherEpoch := append([]byte{}, rec...)
	otherEpoch[4] = 2
	flipped := append([]byte{}, rec...)
	flipped[len(flipped)-1] ^= 1
	badLen := append([]byte{}, rec...)
	badLen[12]++
	handshake := append([]byte{}, rec...)
	handshake[0] = 22
	for _, tc := range []struct {
		name string
		rec  []byte
		want error
	}{
		{"header cut", rec[:10], ErrTruncated},
		{"body cut", rec[:len(rec)-1], ErrTruncated},
		{"length past the end", badLen, ErrTruncated},
		{"two records", append(append([]byte{}, rec...), rec...), ErrNotData},
		{"handshake", handshake, ErrNotData},
		{"epoch 2", otherEpoch, ErrWrongEpoch},
		{"tag flipped", flipped, ErrForged},
		{"replayed", first, ErrReplayed},
		{"outside the window", old[0], ErrReplayed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := o.Open(append([]byte{}, tc.rec...)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if got, err := o.Open(append([]byte{}, rec...)); err != nil || string(got) != "a packet" {
		t.Fatalf("the good record after the bad ones: %q, %v", got, err)
	}
	if _, err := o.Open(rec); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replayed after acceptance: %v", err)
	}
}

// Records out of order within the window pass once each.
func TestWindow(t *testing.T) {
	var w Window
	for _, tc := range []struct {
		seq  uint64
		want bool
	}{
		{100, true}, {100, false}, {99, true}, {99, false}, {300, true},
		{300 - WindowSize + 1, true}, {300 - WindowSize, false}, {100, false},
		{250, true}, {250, false}, {1000, true}, {999, true}, {744, false}, {745, true}, {1000, false},
	} {
		ok := w.Check(tc.seq)
		if ok != tc.want {
			t.Fatalf("seq %d: %v, want %v", tc.seq, ok, tc.want)
		}
		if ok {
			w.Mark(tc.seq)
		}
	}
}

func FuzzOpen(f *testing.F) {
	s, _ := testPair(f)
	f.Add(sealed(f, s, []byte("seed")))
	f.Add(sealed(f, s, nil))
	f.Add([]byte{23, 0xfe, 0xfd, 0, 1})
	f.Fuzz(func(t *testing.T, d []byte) {
		_, o := testPair(t)
		in := append([]byte{}, d...)
		p, err := o.Open(in)
		if err != nil {
			return
		}
		// Only a record sealed with the key opens: then it is one whole
		// record and opens once.
		if len(d) != Overhead+len(p) || !Ours(d) {
			t.Fatalf("opened %d bytes out of a %d-byte datagram", len(p), len(d))
		}
		if _, err := o.Open(append([]byte{}, d...)); !errors.Is(err, ErrReplayed) {
			t.Fatalf("opened twice: %v", err)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	s, _ := testPair(b)
	buf := make([]byte, Prefix+1380, Overhead+1380)
	b.ReportAllocs()
	b.SetBytes(1380)
	for range b.N {
		if _, err := s.Seal(buf, 1380); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s, o := testPair(b)
	recs := make([][]byte, 1024)
	for i := range recs {
		recs[i] = sealed(b, s, make([]byte, 1380))
	}
	b.ReportAllocs()
	b.SetBytes(1380)
	buf := make([]byte, Overhead+1380)
	for i := range b.N {
		if i%len(recs) == 0 && i > 0 {
			b.StopTimer()
			for j := range recs {
				recs[j] = sealed(b, s, make([]byte, 1380))
			}
			b.StartTimer()
		}
		copy(buf, recs[i%len(recs)])
		if _, err := o.Open(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSealOpenAllocs: the data path's sealing and opening allocate nothing
// per record.
func TestSealOpenAllocs(t *testing.T) {
	s, o := testPair(t)
	buf := make([]byte, Prefix+1380, Overhead+1380)
	if a := testing.AllocsPerRun(100, func() {
		if _, err := s.Seal(buf, 1380); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("Seal: %.1f allocations per record, want 0", a)
	}
	recs := make([][]byte, 101)
	for i := range recs {
		recs[i] = sealed(t, s, make([]byte, 1380))
	}
	i := 0
	if a := testing.AllocsPerRun(100, func() {
		if _, err := o.Open(recs[i]); err != nil {
			t.Fatal(err)
		}
		i++
	}); a != 0 {
		t.Errorf("Open: %.1f allocations per record, want 0", a)
	}
}
