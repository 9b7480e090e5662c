package platform

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// netIface is one interface as ifaceState sees it.
type netIface struct {
	Name  string
	Up    bool
	Addrs []netip.Prefix
}

// ifaceState is the network state of the OSes whose monitor reads the
// interfaces with the standard library (Windows and macOS), what of the
// network matters to the agent: the addresses of the interfaces that are up,
// except those in ignore (the agent's own TUN), and the interface index of
// the default route of each family (0: none). Equal states are equal
// strings.
func ifaceState(ifs []netIface, ignore []string, def4, def6 int) string {
	var parts []string
	for _, i := range ifs {
		if !i.Up || slices.Contains(ignore, i.Name) {
			continue
		}
		for _, a := range i.Addrs {
			if !a.Addr().IsLinkLocalUnicast() {
				parts = append(parts, i.Name+"="+a.String())
			}
		}
	}
	slices.Sort(parts)
	return fmt.Sprintf("default4=%d default6=%d %s", def4, def6, strings.Join(parts, " "))
}
