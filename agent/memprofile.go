package agent

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// defaultMemProfileRate is the sampling rate the control socket's switch
// turns heap profiling on with when it is given none: the runtime's own
// default (one sample per 512 kB allocated on average).
const defaultMemProfileRate = 512 * 1024

// HeapProfilingOff turns the runtime's heap profiling off unless GODEBUG
// asks for a rate (memprofilerate=N). The daemon calls it before it starts: the
// sampled allocations' stacks are recorded in a hash table of its own
// (1.4 MB reserved, touched where stacks fall) and each sample walks the
// stack; with 10,000 apps that was ~1 MB of the idle agent's resident
// memory, for a profile nobody reads. A heap profile of a live agent is
// still had by turning sampling on (POST /debug/memprofilerate, which
// covers allocations from then on) or by starting the agent with
// GODEBUG=memprofilerate=524288 (from its start).
func HeapProfilingOff() {
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "memprofilerate=") {
			return
		}
	}
	runtime.MemProfileRate = 0
}

// serveMemProfileRate sets the heap profile's sampling rate: rate=N bytes
// (0 turns it off), runtime's default when rate is absent. It answers the
// rate before and after.
func serveMemProfileRate(w http.ResponseWriter, req *http.Request) {
	rate := defaultMemProfileRate
	if s := req.URL.Query().Get("rate"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("rate %q: want bytes between samples, 0 for off", s))
			return
		}
		rate = n
	}
	before := runtime.MemProfileRate
	runtime.MemProfileRate = rate
	writeJSON(w, http.StatusOK, map[string]int{"before": before, "rate": rate})
}
