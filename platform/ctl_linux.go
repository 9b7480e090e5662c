package platform

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

func sockPeerCred(fd int) (Cred, error) {
	u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Cred{}, err
	}
	return Cred{UID: int(u.Uid), PID: int(u.Pid), Admin: u.Uid == 0}, nil
}

// maxFileLimit is the most the soft descriptor limit may be raised to.
func maxFileLimit(hard uint64) uint64 { return hard }

// countOpenFiles counts the process's open descriptors: the entries of
// /proc/self/fd, read with getdents and counted in place (no names are made),
// less the one reading them.
func countOpenFiles() (int, error) {
	fd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("count open descriptors: %w", err)
	}
	defer unix.Close(fd)
	buf := fdCountBufs.Get().(*[]byte)
	defer fdCountBufs.Put(buf)
	n := 0
	for {
		m, err := unix.Getdents(fd, *buf)
		if err != nil {
			return 0, fmt.Errorf("count open descriptors: %w", err)
		}
		if m == 0 {
			return n - 1, nil
		}
		// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
		for off := 0; off+19 < m; off += int(binary.NativeEndian.Uint16((*buf)[off+16:])) {
			if (*buf)[off+19] != '.' { // "." and ".."; descriptors are numbers
				n++
			}
		}
	}
}

var fdCountBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
