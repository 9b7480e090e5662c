package enroll

import "os"

// syncDir makes a rename in dir durable; best effort, as not every OS can fsync
// a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
