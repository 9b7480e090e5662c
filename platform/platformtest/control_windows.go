package platformtest

import (
	"fmt"
	"hash/fnv"
)

// ControlPath is a control channel path of a test's own: a named pipe
// whose name is unique to dir (a unix socket in dir elsewhere).
func ControlPath(dir string) string {
	h := fnv.New64a()
	h.Write([]byte(dir))
	return fmt.Sprintf(`\\.\pipe\ztagent-test-%016x`, h.Sum64())
}
