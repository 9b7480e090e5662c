//go:build unix

package platform

import "io/fs"

// EveryoneCanRead reports whether the file's mode lets every user of the
// machine read it.
func EveryoneCanRead(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o004 != 0 }
