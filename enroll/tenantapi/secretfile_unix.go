//go:build unix

package tenantapi

import "io/fs"

// everyoneCanRead reports whether the file's mode lets every user of the
// machine read it.
func everyoneCanRead(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o004 != 0 }
