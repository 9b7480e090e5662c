package platform

import (
	"fmt"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// createTUN creates a TUN device as wireguard/tun's CreateTUN does, with the
// same flags (IFF_VNET_HDR, which its segmentation offloads need), but does
// not start the device's monitors: CreateTUN's device writes to itself every
// second to learn whether it is up (its "hack listener", for namespaces) and
// reads every link event of the system, both only to feed Events(), which
// the agent never reads; it learns of network changes from its own monitor.
// An idle or offline agent woke once a second for nothing (issue 15).
func createTUN(name string, mtu int) (tun.Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		// Before the file is made, so that netpoll takes it (and so that
		// the one failure that would leave fd unowned comes here).
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// On failure here the os.File made from fd owns it, and closes it when
	// it is collected; closing fd too could close a number reused since.
	dev, ifname, err := tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		return nil, err
	}
	if err := setInterfaceMTU(ifname, mtu); err != nil {
		dev.Close()
		return nil, fmt.Errorf("set the MTU to %d: %w", mtu, err)
	}
	return dev, nil
}
