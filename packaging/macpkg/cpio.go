package macpkg

import (
	"fmt"
	"io"
)

// cpio writes the portable ASCII ("odc", POSIX.1 magic 070707) cpio format
// that macOS's Installer reads in a component package's Payload and Scripts:
// for each entry a 76-byte header of octal fields, the NUL-terminated name
// and the data, with no padding; a last entry named TRAILER!!! ends it.

// entry is one file or directory of a Payload or Scripts archive (and of
// the BOM that lists the Payload).
type entry struct {
	name  string // "." or "./usr/local/bin/ztagent"
	mode  uint32 // type and permission bits, as st_mode
	uid   uint32
	gid   uint32
	mtime int64
	data  []byte // nil for a directory
}

// File type bits of st_mode.
const (
	modeDir  = 0o040000
	modeFile = 0o100000
)

func (e entry) isDir() bool { return e.mode&0o170000 == modeDir }

// odc field widths are octal digits; values that do not fit are refused.
const (
	odcMaxSix    = 0o777777
	odcMaxEleven = 0o77777777777
)

// writeCPIO writes entries in order, numbering their inodes from 1.
func writeCPIO(w io.Writer, entries []entry) error {
	for i, e := range entries {
		nlink := 1
		if e.isDir() {
			nlink = 2
		}
		if err := writeODC(w, uint64(i+1), e.mode, e.uid, e.gid, nlink, e.mtime, e.name, e.data); err != nil {
			return err
		}
	}
	return writeODC(w, 0, 0, 0, 0, 1, 0, "TRAILER!!!", nil)
}

func writeODC(w io.Writer, ino uint64, mode, uid, gid uint32, nlink int, mtime int64, name string, data []byte) error {
	namesize := len(name) + 1
	if ino > odcMaxSix || uid > odcMaxSix || gid > odcMaxSix || namesize > odcMaxSix ||
		mtime < 0 || mtime > odcMaxEleven || int64(len(data)) > odcMaxEleven {
		return fmt.Errorf("cpio: %s does not fit the odc format", name)
	}
	// magic dev ino mode uid gid nlink rdev mtime namesize filesize
	if _, err := fmt.Fprintf(w, "070707%06o%06o%06o%06o%06o%06o%06o%011o%06o%011o%s\x00",
		0, ino, mode, uid, gid, nlink, 0, mtime, namesize, len(data), name); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}
