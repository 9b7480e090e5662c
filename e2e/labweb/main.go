// Command labweb is the small web application of the lab and the e2e tests: it
// answers every request with a page naming itself, the Host it was asked for
// and the address it was reached on, so a test can tell which server and which
// path a request took.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type listenFlags []string

func (l *listenFlags) String() string     { return strings.Join(*l, ",") }
func (l *listenFlags) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var listen, udpEcho listenFlags
	name := flag.String("name", "labweb", "name printed in every page")
	flag.Var(&listen, "listen", "address to listen on (repeatable)")
	flag.Var(&udpEcho, "udp-echo", "address to echo UDP datagrams on (repeatable)")
	probe := flag.String("udp-probe", "", "instead of serving: send datagrams to this UDP echo and check them")
	size := flag.Int("size", 1400, "with -udp-probe: datagram size (0: ask the echo who we are)")
	count := flag.Int("count", 20, "with -udp-probe: datagrams to send")
	rtpPeer := flag.String("rtp", "", "instead of serving: an RTP-like stream from -rtp-local to this peer, and the peer's back")
	rtpLocal := flag.String("rtp-local", "", "with -rtp: the local address to send from and receive on")
	rate := flag.Int("rate", 50, "with -rtp: datagrams per second")
	dur := flag.Duration("duration", 10*time.Second, "with -rtp: how long to send")
	flag.Parse()
	if *rtpPeer != "" {
		if err := rtpStream(*rtpLocal, *rtpPeer, *rate, *size, *dur); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *probe != "" {
		if err := probeUDP(*probe, *size, *count); err != nil {
			log.Fatal(err)
		}
		return
	}
	if len(listen) == 0 {
		listen = listenFlags{"127.0.0.1:8080"}
	}
	if err := run(*name, listen, udpEcho); err != nil {
		log.Fatal(err)
	}
}

func run(name string, listen, udpEcho []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, addr := range udpEcho {
		if err := serveUDPEcho(ctx, addr); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprintf(w, "hello from %s web: host=%s local=%s remote=%s\n", name, r.Host, local, r.RemoteAddr)
	})
	// /bytes?n=N streams N bytes, for transfer tests.
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n must be a byte count", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, zeroReader{}, n)
	})
	errc := make(chan error, len(listen))
	var servers []*http.Server
	for _, addr := range listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	for _, s := range servers {
		s.Close()
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
