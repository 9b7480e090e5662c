//go:build !unix

package flowio

import "io"

// socketWaiter has no way to wait for a socket here without a buffer.
func socketWaiter(io.Reader) func() error { return nil }
