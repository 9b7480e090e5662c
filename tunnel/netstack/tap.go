package netstack

// Tap sees every packet the stack reads from and writes to the TUN device,
// as the device carries it (ztdiag -c). out is true for a packet written to
// the TUN (towards the applications). p is valid only during the call: a
// Tap that keeps it copies it. A Tap is called from the reader and the
// writer goroutines at once, on the data path, and must not block.
//
// How segmentation offloads look to a Tap: a large TCP segment the kernel
// hands over whole (TSO, Linux with virtio-net headers) is one packet
// larger than the MTU, with its IP lengths set to its whole size; a large
// segment written whole (writeGSO) is one packet too. Where the kernel
// completes the checksum (CHECKSUM_PARTIAL: packets from local sockets,
// segments written whole), the packet holds the partial one, which readers
// call incorrect, as on any interface with checksum offload.
// Segments the writer cuts (addGSO) are seen one by one, before the device
// may merge them again on their way into the kernel.
type Tap func(out bool, p []byte)

// SetTap makes t see the TUN's packets from now on; nil removes it. With no
// Tap the data path pays one atomic load per batch of packets.
func (s *Stack) SetTap(t Tap) {
	if t == nil {
		s.tap.Store(nil)
		return
	}
	s.tap.Store(&t)
}

// tapped returns the Tap in force, or nil.
func (s *Stack) tapped() Tap {
	if t := s.tap.Load(); t != nil {
		return *t
	}
	return nil
}
