package platform

import "golang.org/x/sys/unix"

// setInterfaceMTU sets an interface's MTU with SIOCSIFMTU, as wireguard/tun
// does at creation.
func setInterfaceMTU(name string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr := unix.IfreqMTU{MTU: int32(mtu)}
	copy(ifr.Name[:len(ifr.Name)-1], name)
	return unix.IoctlSetIfreqMTU(fd, &ifr)
}
