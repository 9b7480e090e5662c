package platform

import "golang.org/x/sys/unix"

func sockPeerCred(fd int) (Cred, error) {
	x, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return Cred{}, err
	}
	pid, err := unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	if err != nil {
		pid = -1
	}
	return Cred{UID: int(x.Uid), PID: pid, Admin: x.Uid == 0}, nil
}
