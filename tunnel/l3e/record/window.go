package record

// WindowSize is how many records below the highest one received are still
// accepted once (RFC 6347 §4.1.2.6 asks for at least 32; 64 is the default).
const WindowSize = 256

// Window is the replay window of one epoch: the highest sequence number
// authenticated so far and a bitmap of the WindowSize numbers up to it.
type Window struct {
	top  uint64
	bits [WindowSize / 64]uint64 // bit i: top-i was received
	any  bool
}

// Check reports whether seq is new: above the highest, or within the window
// and not seen yet. It changes nothing: Mark does, once the record is
// authenticated.
func (w *Window) Check(seq uint64) bool {
	if !w.any || seq > w.top {
		return true
	}
	d := w.top - seq
	return d < WindowSize && w.bits[d/64]&(1<<(d%64)) == 0
}

// Mark records seq as received.
func (w *Window) Mark(seq uint64) {
	switch {
	case !w.any:
		w.any, w.top, w.bits = true, seq, [WindowSize / 64]uint64{1}
	case seq > w.top:
		w.shift(seq - w.top)
		w.top = seq
		w.bits[0] |= 1
	default:
		d := w.top - seq
		w.bits[d/64] |= 1 << (d % 64)
	}
}

// shift moves the bitmap by d positions (d > 0): bit i becomes bit i+d.
func (w *Window) shift(d uint64) {
	if d >= WindowSize {
		w.bits = [WindowSize / 64]uint64{}
		return
	}
	words, bits := int(d/64), d%64
	for i := len(w.bits) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << bits
			if bits > 0 && j > 0 {
				v |= w.bits[j-1] >> (64 - bits)
			}
		}
		w.bits[i] = v
	}
}
