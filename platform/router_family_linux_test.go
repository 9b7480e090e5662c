package platform

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The journal records Linux's address family numbers; netlink hands the
// router the same ones.
func TestJournalFamiliesAreLinux(t *testing.T) {
	if afInet != unix.AF_INET || afInet6 != unix.AF_INET6 {
		t.Fatalf("afInet %d, afInet6 %d; unix has %d, %d", afInet, afInet6, unix.AF_INET, unix.AF_INET6)
	}
}
