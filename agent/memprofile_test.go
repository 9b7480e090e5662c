package agent

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// TestMemProfileRate: the control socket's switch sets the heap profile's
// sampling rate, to the runtime's default without a rate, and refuses a bad
// one; HeapProfilingOff leaves a rate GODEBUG asks for.
func TestMemProfileRate(t *testing.T) {
	saved := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = saved })
	for _, tc := range []struct {
		query string
		code  int
		rate  int
	}{
		{"?rate=4096", http.StatusOK, 4096},
		{"?rate=0", http.StatusOK, 0},
		{"", http.StatusOK, defaultMemProfileRate},
		{"?rate=-1", http.StatusBadRequest, defaultMemProfileRate},
		{"?rate=lots", http.StatusBadRequest, defaultMemProfileRate},
	} {
		w := httptest.NewRecorder()
		serveMemProfileRate(w, httptest.NewRequest("POST", "/debug/memprofilerate"+tc.query, nil))
		if w.Code != tc.code || runtime.MemProfileRate != tc.rate {
			t.Errorf("%q: answer %d, rate %d; want %d, %d", tc.query, w.Code, runtime.MemProfileRate, tc.code, tc.rate)
		}
	}
	runtime.MemProfileRate = 1234
	t.Setenv("GODEBUG", "gctrace=0,memprofilerate=1234")
	HeapProfilingOff()
	if runtime.MemProfileRate != 1234 {
		t.Errorf("with GODEBUG's memprofilerate the rate became %d", runtime.MemProfileRate)
	}
	t.Setenv("GODEBUG", "gctrace=0")
	HeapProfilingOff()
	if runtime.MemProfileRate != 0 {
		t.Errorf("without GODEBUG's memprofilerate the rate stayed %d", runtime.MemProfileRate)
	}
}
