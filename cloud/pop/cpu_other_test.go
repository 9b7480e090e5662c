//go:build !unix

package pop

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
