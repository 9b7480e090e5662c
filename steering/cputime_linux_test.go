package steering

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU returns the CPU time the test process has used. Benchmarks report
// it per operation next to wall time because the benchmark machine is shared:
// wall time then measures the neighbours as much as the code.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
