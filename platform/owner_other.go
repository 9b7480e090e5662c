//go:build !linux && !windows && !darwin

package platform

import (
	"fmt"
	"net/netip"
	"runtime"

	"go.uber.org/zap"
)

// NewOwnerLookup returns a lookup that finds no owner: this OS has no
// implementation, so flows are steered without process identity.
func NewOwnerLookup(*zap.Logger) OwnerLookup { return noOwners{} }

type noOwners struct{}

func (noOwners) Lookup(proto string, local, remote netip.AddrPort) (Owner, error) {
	if _, err := newSockMatcher(proto, local, remote); err != nil {
		return Owner{}, err
	}
	return Owner{}, fmt.Errorf("%w: socket owners are not looked up on %s", ErrOwnerNotFound, runtime.GOOS)
}
