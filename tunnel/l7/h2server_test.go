package l7

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestServerEcho runs the client's echo checks against Server: several
// streams at once, each larger than its window.
func TestServerEcho(t *testing.T) {
	cc := l7Server(t, echoHandler)
	const streams, size = 4, 20 << 20
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoThrough(cc, size, byte(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestServerAbort: a handler that panics with http.ErrAbortHandler resets its
// stream; the client reads an error, not EOF.
func TestServerAbort(t *testing.T) {
	cc := l7Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		Flusher(w)()
		r.Body.Read(make([]byte, 1))
		panic(http.ErrAbortHandler)
	})
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("x"))
	if _, err := io.ReadAll(s); err == nil {
		t.Fatal("read to a clean end after the handler aborted")
	}
}

// TestServerHalfClose: a handler ends its response first and reads the rest
// of the request; the client reads the response to its end and then writes
// on.
func TestServerHalfClose(t *testing.T) {
	got := make(chan []byte, 1)
	cc := l7Server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "bye")
		if err := CloseResponse(w); err != nil {
			t.Errorf("CloseResponse: %v", err)
		}
		b, _ := io.ReadAll(r.Body)
		got <- b
	})
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := io.ReadAll(s); err != nil || string(b) != "bye" {
		t.Fatalf("response %q, %v; want bye", b, err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	if _, err := s.Write(data); err != nil {
		t.Fatalf("write after the response ended: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("handler read %d bytes, not the %d written", len(b), len(data))
	}
}

// TestServerUnreadBody: a handler that returns without reading the request
// ends its response, and only then is the request side reset (NO_ERROR): the
// client reads the whole response.
func TestServerUnreadBody(t *testing.T) {
	cc := l7Server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "done")
	})
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := io.ReadAll(s); err != nil || string(b) != "done" {
		t.Fatalf("response %q, %v; want done", b, err)
	}
}

// TestServerRequest: a request's method, authority, path, header and
// :protocol reach the handler as x/net's server showed them.
func TestServerRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	cc := l7Server(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.WriteHeader(http.StatusOK)
	})
	tgt := Target{Host: "10.0.0.1", Port: 53, AppID: "app", Proto: ProtoUDP}
	s, err := cc.OpenFlow(context.Background(), "pop", tgt)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := <-got
	if !IsConnectUDP(r) || r.Host != "pop" || r.Header.Get("Zt-App") != "app" {
		t.Fatalf("request %s %s %v, want connect-udp to pop for app", r.Method, r.Host, r.Header)
	}
	if tt, err := ParseTarget(r); err != nil || tt.Host != tgt.Host || tt.Port != tgt.Port {
		t.Fatalf("target %v, %v; want %v", tt, err, tgt)
	}
}

// rawPeer is a client that speaks frames to a Server, for the checks the
// ClientConn would never fail.
type rawPeer struct {
	t      *testing.T
	c      net.Conn
	fr     *http2.Framer
	frames chan frameInfo
	done   chan error // ServeConn's result
	srv    *Server
}

// frameInfo is what a test checks of a frame the server sent.
type frameInfo struct {
	typ      http2.FrameType
	stream   uint32
	code     http2.ErrCode
	last     uint32
	ended    bool
	settings map[http2.SettingID]uint32
}

func newRawPeer(t *testing.T, h http.HandlerFunc) *rawPeer {
	t.Helper()
	c, sc := net.Pipe()
	p := &rawPeer{t: t, c: c, fr: http2.NewFramer(c, c), frames: make(chan frameInfo, 64), done: make(chan error, 1), srv: new(Server)}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	go func() { p.done <- p.srv.ServeConn(context.Background(), sc, zap.NewNop(), h) }()
	go p.readFrames()
	t.Cleanup(func() {
		c.Close()
		<-p.done
	})
	return p
}

func (p *rawPeer) readFrames() {
	defer close(p.frames)
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return
		}
		fi := frameInfo{typ: f.Header().Type, stream: f.Header().StreamID}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			fi.code = f.ErrCode
		case *http2.GoAwayFrame:
			fi.code, fi.last = f.ErrCode, f.LastStreamID
		case *http2.SettingsFrame:
			fi.settings = make(map[http2.SettingID]uint32)
			f.ForeachSetting(func(s http2.Setting) error { fi.settings[s.ID] = s.Val; return nil })
		case *http2.DataFrame:
			fi.ended = f.StreamEnded()
		case *http2.MetaHeadersFrame:
			fi.ended = f.StreamEnded()
		}
		p.frames <- fi
	}
}

// start sends the preface and empty SETTINGS.
func (p *rawPeer) start() {
	p.write([]byte(http2.ClientPreface))
	p.check(p.fr.WriteSettings())
}

func (p *rawPeer) write(b []byte) {
	if _, err := p.c.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) check(err error) {
	if err != nil {
		p.t.Fatal(err)
	}
}

// headers sends a request's header block on stream id.
func (p *rawPeer) headers(id uint32, end bool, fields ...string) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	p.check(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndHeaders: true, EndStream: end}))
}

// await returns the first frame the server sends that match accepts; it
// fails the test if the connection ends first.
func (p *rawPeer) await(what string, match func(frameInfo) bool) frameInfo {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				p.t.Fatalf("connection ended before %s", what)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			p.t.Fatalf("no %s within 10 s", what)
		}
	}
}

func (p *rawPeer) awaitGoAway(code http2.ErrCode) frameInfo {
	p.t.Helper()
	f := p.await("GOAWAY", func(f frameInfo) bool { return f.typ == http2.FrameGoAway })
	if f.code != code {
		p.t.Fatalf("GOAWAY %v, want %v", f.code, code)
	}
	return f
}

func (p *rawPeer) awaitReset(id uint32, code http2.ErrCode) {
	p.t.Helper()
	f := p.await("RST_STREAM", func(f frameInfo) bool { return f.typ == http2.FrameRSTStream && f.stream == id })
	if f.code != code {
		p.t.Fatalf("RST_STREAM %v, want %v", f.code, code)
	}
}

var connectFields = []string{":method", "CONNECT", ":authority", "example.test:443"}

func TestServerSettings(t *testing.T) {
	p := newRawPeer(t, echoHandler)
	p.start()
	f := p.await("SETTINGS", func(f frameInfo) bool {
		return f.typ == http2.FrameSettings && f.settings != nil && len(f.settings) > 0
	})
	want := map[http2.SettingID]uint32{
		http2.SettingEnableConnectProtocol: 1, http2.SettingMaxConcurrentStreams: maxStreamsPerConn,
		http2.SettingMaxFrameSize: maxFrameSize, http2.SettingInitialWindowSize: streamWindow,
	}
	for id, v := range want {
		if f.settings[id] != v {
			t.Errorf("setting %v = %d, want %d", id, f.settings[id], v)
		}
	}
	p.check(p.fr.WritePing(false, [8]byte{1, 2, 3}))
	p.await("PING ack", func(f frameInfo) bool { return f.typ == http2.FramePing })
}

// TestServerProtocolErrors: frames a server must refuse end the connection
// with GOAWAY and the right code.
func TestServerProtocolErrors(t *testing.T) {
	cases := []struct {
		name string
		send func(p *rawPeer)
		code http2.ErrCode
	}{
		{"first frame not SETTINGS", func(p *rawPeer) {
			p.write([]byte(http2.ClientPreface))
			p.check(p.fr.WritePing(false, [8]byte{}))
		}, http2.ErrCodeProtocol},
		{"DATA on an idle stream", func(p *rawPeer) {
			p.start()
			p.check(p.fr.WriteData(1, false, []byte("x")))
		}, http2.ErrCodeProtocol},
		{"HEADERS on an even stream", func(p *rawPeer) {
			p.start()
			p.headers(2, false, connectFields...)
		}, http2.ErrCodeProtocol},
		{"connection window overflow", func(p *rawPeer) {
			p.start()
			p.check(p.fr.WriteWindowUpdate(0, maxWindow))
		}, http2.ErrCodeFlowControl},
		{"PUSH_PROMISE from a client", func(p *rawPeer) {
			p.start()
			p.check(p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true}))
		}, http2.ErrCodeProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPeer(t, echoHandler)
			tc.send(p)
			p.awaitGoAway(tc.code)
		})
	}
}

// TestServerStreamErrors: malformed requests and bad stream states reset
// their stream and leave the connection up.
func TestServerStreamErrors(t *testing.T) {
	cases := []struct {
		name   string
		fields []string
		end    bool
	}{
		{"CONNECT with a path", []string{":method", "CONNECT", ":authority", "a:1", ":path", "/"}, false},
		{"CONNECT without authority", []string{":method", "CONNECT"}, false},
		{"GET without a path", []string{":method", "GET", ":scheme", "https"}, true},
		{":protocol without CONNECT", []string{":method", "GET", ":scheme", "https", ":path", "/", ":protocol", "x"}, true},
		{"connection header", []string{":method", "GET", ":scheme", "https", ":path", "/", "connection", "close"}, true},
		{"no method", []string{":path", "/", ":scheme", "https"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPeer(t, func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("handler ran for %s %s", r.Method, r.URL)
			})
			p.start()
			p.headers(1, tc.end, tc.fields...)
			p.awaitReset(1, http2.ErrCodeProtocol)
			// The connection lives on.
			p.check(p.fr.WritePing(false, [8]byte{9}))
			p.await("PING ack", func(f frameInfo) bool { return f.typ == http2.FramePing })
		})
	}
}

// TestServerStreamWindow: a stream window pushed past 2³¹−1 resets the stream.
func TestServerStreamWindow(t *testing.T) {
	block := make(chan struct{})
	p := newRawPeer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		<-r.Context().Done()
		close(block)
	})
	p.start()
	p.headers(1, false, connectFields...)
	p.await("response", func(f frameInfo) bool { return f.typ == http2.FrameHeaders && f.stream == 1 })
	p.check(p.fr.WriteWindowUpdate(1, maxWindow))
	p.awaitReset(1, http2.ErrCodeFlowControl)
	<-block // the reset canceled the request's context
}

// TestServerShutdown: Shutdown sends GOAWAY naming the last stream, refuses
// new streams, lets the open one finish, then closes the connection.
func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	p := newRawPeer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		<-release
	})
	p.start()
	p.headers(1, true, connectFields...)
	p.await("response", func(f frameInfo) bool { return f.typ == http2.FrameHeaders && f.stream == 1 })
	p.srv.Shutdown()
	if f := p.awaitGoAway(http2.ErrCodeNo); f.last != 1 {
		t.Fatalf("GOAWAY last stream %d, want 1", f.last)
	}
	p.headers(3, true, connectFields...)
	p.awaitReset(3, http2.ErrCodeRefusedStream)
	close(release)
	p.await("END_STREAM", func(f frameInfo) bool { return f.stream == 1 && f.ended })
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open 10 s after its last stream ended")
	}
}

// FuzzServerFrames feeds arbitrary bytes after the preface and SETTINGS to a
// Server: whatever they are, it must not panic, must answer with frames or
// close, and its goroutines must end when the peer goes away.
func FuzzServerFrames(f *testing.F) {
	seed := func(write func(fr *http2.Framer, enc *hpack.Encoder, buf *bytes.Buffer)) {
		var b, hb bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		write(fr, hpack.NewEncoder(&hb), &hb)
		f.Add(b.Bytes())
	}
	hdr := func(enc *hpack.Encoder, buf *bytes.Buffer, fields ...string) []byte {
		buf.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), buf.Bytes()...)
	}
	seed(func(fr *http2.Framer, enc *hpack.Encoder, buf *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr(enc, buf, connectFields...), EndHeaders: true})
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteWindowUpdate(1, 1000)
		fr.WriteData(1, true, nil)
	})
	seed(func(fr *http2.Framer, enc *hpack.Encoder, buf *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr(enc, buf, connectFields...), EndHeaders: false})
		fr.WriteContinuation(1, true, hdr(enc, buf, "zt-app", "a"))
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
		fr.WriteDataPadded(1, true, []byte("x"), make([]byte, 10))
	})
	seed(func(fr *http2.Framer, enc *hpack.Encoder, buf *bytes.Buffer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		fr.WritePing(false, [8]byte{})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hdr(enc, buf, ":method", "POST", ":scheme", "https", ":path", "/dns-query"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hdr(enc, buf, "x-trailer", "1"), EndHeaders: true, EndStream: true})
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, sc := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- new(Server).ServeConn(context.Background(), sc, zap.NewNop(), http.HandlerFunc(echoHandler))
		}()
		go io.Copy(io.Discard, c)
		c.Write([]byte(http2.ClientPreface))
		http2.NewFramer(c, nil).WriteSettings()
		c.Write(data)
		c.Close()
		if err := <-done; err == nil || errors.Is(err, errBadPreface) {
			t.Fatalf("ServeConn ended with %v", err)
		}
	})
}
