package tenantapi

import "io/fs"

// everyoneCanRead reports whether the file's mode lets every user of the
// machine read it. On Windows the mode does not say (an ACL does), so it
// reports false: protect such files with an ACL.
func everyoneCanRead(fs.FileInfo) bool { return false }
