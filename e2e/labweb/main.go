// Command labweb is the small web application of the lab and the e2e tests: it
// answers every request with a page naming itself, the Host it was asked for
// and the address it was reached on, so a test can tell which server and which
// path a request took.
package main

import (
	"context"
	"crypto/tls"
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
	var listen, udpEcho, tlsListen listenFlags
	name := flag.String("name", "labweb", "name printed in every page")
	flag.Var(&listen, "listen", "address to listen on (repeatable)")
	flag.Var(&udpEcho, "udp-echo", "address to echo UDP datagrams on (repeatable)")
	probe := flag.String("udp-probe", "", "instead of serving: send datagrams to this UDP echo and check them")
	size := flag.Int("size", 1400, "with -udp-probe: datagram size (0: ask the echo who we are)")
	count := flag.Int("count", 20, "with -udp-probe: datagrams to send")
	flag.Var(&tlsListen, "tls-listen", "address to serve HTTPS on with -tls-cert and -tls-key (repeatable)")
	tlsCert := flag.String("tls-cert", "", "PEM certificate for -tls-listen")
	tlsKey := flag.String("tls-key", "", "PEM key for -tls-listen")
	redirect := flag.String("redirect", "", "answer every request with 302 Found to this URL (a captive portal)")
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
	if len(listen) == 0 && len(tlsListen) == 0 {
		listen = listenFlags{"127.0.0.1:8080"}
	}
	var tlsConf *tls.Config
	if len(tlsListen) > 0 {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			log.Fatal(err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if err := run(*name, listen, udpEcho, tlsListen, tlsConf, *redirect); err != nil {
		log.Fatal(err)
	}
}

func run(name string, listen, udpEcho, tlsListen []string, tlsConf *tls.Config, redirect string) error {
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
	// /generate_204 is the captive-portal check of an open network.
	mux.HandleFunc("/generate_204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	var handler http.Handler = mux
	if redirect != "" {
		handler = http.RedirectHandler(redirect, http.StatusFound)
	}
	errc := make(chan error, len(listen)+len(tlsListen))
	var servers []*http.Server
	for i, addr := range append(listen, tlsListen...) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		if i >= len(listen) {
			ln = tls.NewListener(ln, tlsConf)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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
