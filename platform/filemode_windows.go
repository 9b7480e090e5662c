package platform

import "io/fs"

// EveryoneCanRead reports whether the file's mode lets every user of the
// machine read it. On Windows the mode does not say (an ACL does), so it
// reports false: protect such files with an ACL.
func EveryoneCanRead(fs.FileInfo) bool { return false }
