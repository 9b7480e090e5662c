package platform

import "github.com/vishvananda/netlink"

// setInterfaceMTU sets an interface's MTU over netlink.
func setInterfaceMTU(name string, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetMTU(link, mtu)
}
