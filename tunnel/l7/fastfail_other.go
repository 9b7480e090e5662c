//go:build !unix && !windows

package l7

// refused cannot tell a refused dial here: every failure takes the backoff.
func refused(error) bool { return false }
