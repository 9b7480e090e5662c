package platform

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

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

// maxFileLimit is the most the soft descriptor limit may be raised to: macOS
// refuses more than kern.maxfilesperproc.
func maxFileLimit(hard uint64) uint64 {
	if n, err := unix.SysctlUint32("kern.maxfilesperproc"); err == nil && uint64(n) < hard {
		return uint64(n)
	}
	return hard
}

// countOpenFiles counts the process's open descriptors: the entries of
// /dev/fd, less the one reading them.
func countOpenFiles() (int, error) {
	f, err := os.Open("/dev/fd")
	if err != nil {
		return 0, fmt.Errorf("count open descriptors: %w", err)
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if errors.Is(err, io.EOF) {
			return n - 1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("count open descriptors: %w", err)
		}
	}
}
