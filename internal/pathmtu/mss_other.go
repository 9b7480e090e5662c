//go:build !linux

package pathmtu

// Clamped reports whether this OS clamps the MSS of the sockets given to
// Control. Elsewhere the connections rely on the OS's own path MTU discovery
// until TCP_MAXSEG is wired and tested there (macOS detects black holes by
// default; Windows only with EnablePMTUBHDetect).
const Clamped = false

func setMSS(fd uintptr, mss int) error { return nil }
