// Command ttfb measures the time to first byte of new TCP flows, for
// scripts/bench.sh: `ttfb serve ADDR` writes one byte to every connection it
// accepts and closes it; `ttfb measure -n N HOST:PORT` opens N connections one
// after the other and prints the median, the 90th percentile and the minimum
// of the time from the start of each connect to its first byte. The host is
// resolved once, before the first connection, so the figure is the flow's
// own cost and not the resolver's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		log.Fatal("usage: ttfb serve ADDR | ttfb measure [-n N] HOST:PORT")
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "measure":
		fs := flag.NewFlagSet("measure", flag.ExitOnError)
		n := fs.Int("n", 200, "connections to open")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			log.Fatal("usage: ttfb measure [-n N] HOST:PORT")
		}
		err = measure(fs.Arg(0), *n)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

func serve(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer c.Close()
			_, _ = c.Write([]byte{'x'})
			// Wait for the client's close, so the server's FIN does
			// not race the byte on any path.
			_, _ = c.Read(make([]byte, 1))
		}()
	}
}

func measure(target string, n int) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	addrs, err := net.LookupHost(host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	addr := net.JoinHostPort(addrs[0], port)
	times := make([]time.Duration, 0, n)
	buf := make([]byte, 1)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(buf)
		d := time.Since(t0)
		c.Close()
		if err != nil {
			return fmt.Errorf("first byte from %s: %w", addr, err)
		}
		times = append(times, d)
	}
	slices.Sort(times)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	fmt.Printf("%.0f %.0f %.0f\n", us(times[len(times)/2]), us(times[len(times)*9/10]), us(times[0]))
	return nil
}
