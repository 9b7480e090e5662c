package flowio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// script is a reader that returns its chunks one per Read, records the size
// of each buffer it is given, and counts the waits before each Read.
type script struct {
	chunks  [][]byte
	end     error
	sizes   []int
	waits   int
	waitErr error
}

func (s *script) WaitRead() error {
	s.waits++
	return s.waitErr
}

func (s *script) Read(p []byte) (int, error) {
	s.sizes = append(s.sizes, len(p))
	if len(s.chunks) == 0 {
		return 0, s.end
	}
	n := copy(p, s.chunks[0])
	s.chunks = s.chunks[1:]
	return n, nil
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

func TestCopy(t *testing.T) {
	full, bulk := make([]byte, SmallBuffer), make([]byte, LargeBuffer/2)
	tests := []struct {
		name              string
		src               *script
		dst               io.Writer
		wantSizes         []int
		readErr, writeErr bool
	}{
		{"grows on a full read, shrinks on a short one",
			&script{chunks: [][]byte{full, bulk, []byte("x"), []byte("y")}, end: io.EOF}, nil,
			[]int{SmallBuffer, LargeBuffer, LargeBuffer, SmallBuffer, SmallBuffer}, false, false},
		{"read error", &script{end: errors.New("reset")}, nil, []int{SmallBuffer}, true, false},
		{"wait error", &script{waitErr: errors.New("reset")}, nil, nil, true, false},
		{"write error", &script{chunks: [][]byte{[]byte("x")}}, failWriter{}, []int{SmallBuffer}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			dst := tt.dst
			if dst == nil {
				dst = &out
			}
			want := bytes.Join(tt.src.chunks, nil)
			flushes := 0
			readErr, writeErr := Copy(dst, tt.src, Waiter(tt.src), func() error { flushes++; return nil })
			if (readErr != nil) != tt.readErr || (writeErr != nil) != tt.writeErr {
				t.Fatalf("Copy: read error %v, write error %v", readErr, writeErr)
			}
			if tt.dst == nil && !bytes.Equal(out.Bytes(), want) {
				t.Errorf("copied %d bytes, want %d", out.Len(), len(want))
			}
			if tt.wantSizes != nil && !slices.Equal(tt.src.sizes, tt.wantSizes) {
				t.Errorf("buffers %v, want %v", tt.src.sizes, tt.wantSizes)
			}
			if tt.src.waits != len(tt.src.sizes) && tt.src.waitErr == nil {
				t.Errorf("%d waits for %d reads", tt.src.waits, len(tt.src.sizes))
			}
			if withData := max(len(tt.src.sizes)-1, 0); tt.dst == nil && flushes != withData {
				t.Errorf("%d flushes for %d reads with data", flushes, withData)
			}
		})
	}
}

// TestSocketWaiter: the wait on a socket returns when data or the end comes,
// and a reset is returned as an error, never read as a clean end.
func TestSocketWaiter(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no socket waiter here")
	}
	a, b := tcpPair(t)
	defer a.Close()
	wait := Waiter(b)
	if wait == nil {
		t.Fatal("no waiter for a TCP connection")
	}
	go a.Write([]byte("hi"))
	if err := wait(); err != nil {
		t.Fatalf("wait with data: %v", err)
	}
	var out bytes.Buffer
	go func() {
		a.(*net.TCPConn).SetLinger(0)
		a.Close()
	}()
	readErr, _ := Copy(&out, b, wait, nil)
	if readErr == nil || out.String() != "hi" {
		t.Fatalf("copied %q, read error %v; want hi and the reset", out.String(), readErr)
	}
	b.Close()
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// buffered is a BufferedReader that hands out one chunk per call.
type buffered struct {
	chunks [][]byte
	end    error
}

func (b *buffered) Read([]byte) (int, error) { panic("Copy read a BufferedReader") }

func (b *buffered) WriteBufferedTo(w io.Writer) (int, error, error) {
	if len(b.chunks) == 0 {
		return 0, b.end, nil
	}
	n, err := w.Write(b.chunks[0])
	b.chunks = b.chunks[1:]
	return n, nil, err
}

// TestCopyBuffered: a BufferedReader writes its own buffers; each write is
// flushed, a clean end is a nil readErr, other ends and write errors come back.
func TestCopyBuffered(t *testing.T) {
	var dst bytes.Buffer
	flushes := 0
	flush := func() error { flushes++; return nil }
	readErr, writeErr := Copy(&dst, &buffered{chunks: [][]byte{[]byte("ab"), []byte("c")}, end: io.EOF}, nil, flush)
	if readErr != nil || writeErr != nil || dst.String() != "abc" || flushes != 2 {
		t.Errorf("got %q, %d flushes, %v, %v; want abc, 2 flushes, no errors", dst.String(), flushes, readErr, writeErr)
	}
	reset := errors.New("reset")
	if readErr, _ := Copy(io.Discard, &buffered{end: reset}, nil, nil); readErr != reset {
		t.Errorf("readErr %v, want %v", readErr, reset)
	}
	if _, writeErr := Copy(failWriter{}, &buffered{chunks: [][]byte{[]byte("x")}}, nil, nil); writeErr == nil {
		t.Error("a failed write was not reported")
	}
}
