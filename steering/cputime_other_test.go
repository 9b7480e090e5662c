//go:build !linux

package steering

import "time"

// processCPU is not measured on this OS; cpu-ns/op then reads 0.
func processCPU() time.Duration { return 0 }
