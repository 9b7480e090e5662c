package ctlapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
)

// TestClientSaysAnswerTooLarge: an answer past the client's limit is reported
// as too large, not as the malformed JSON a cut would leave.
func TestClientSaysAnswerTooLarge(t *testing.T) {
	sock := platformtest.ControlPath(t.TempDir())
	ln, err := platform.ListenControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"state":"`)
		io.Copy(w, io.LimitReader(zeros{}, maxResponse))
		io.WriteString(w, `"}`)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()

	_, err = (&Client{Socket: sock}).Status(context.Background())
	if want := fmt.Sprintf("the agent's answer to %s is larger than %d bytes", PathStatus, maxResponse); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}
