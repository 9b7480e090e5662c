package l3e

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestTUNWriter: every packet queued reaches the TUN, in order, and Close
// writes what is still queued.
func TestTUNWriter(t *testing.T) {
	ct := tuntest.NewChannelTUN()
	w := NewTUNWriter(ct.TUN(), func(n int) { t.Errorf("%d packets failed", n) })
	const n = 1000
	got := make(chan [][]byte)
	go func() {
		var all [][]byte
		for range n {
			all = append(all, <-ct.Inbound)
		}
		got <- all
	}()
	for i := range n {
		w.Write(fmt.Appendf(nil, "packet %d", i))
	}
	w.Close()
	for i, p := range <-got {
		if want := fmt.Appendf(nil, "packet %d", i); !bytes.Equal(p, want) {
			t.Fatalf("packet %d is %q, want %q", i, p, want)
		}
	}
	ct.TUN().Close()
}

// failTUN refuses every write.
type failTUN struct{ tun.Device }

func (failTUN) Write([][]byte, int) (int, error) { return 0, errors.New("refused") }

// TestTUNWriterFailure: the packets of a refused write are reported.
func TestTUNWriterFailure(t *testing.T) {
	failed := 0
	w := NewTUNWriter(failTUN{}, func(n int) { failed += n })
	for range 5 {
		w.Write([]byte{0x45})
	}
	w.Close() // the writer has exited: failed is final
	if failed != 5 {
		t.Fatalf("%d packets reported failed, want 5", failed)
	}
}
