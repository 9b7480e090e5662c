// Command delayrelay relays TCP connections from --listen to --target with
// --delay added in each direction: the e2e lab's "far" path, since the kernel
// here has no netem. It runs until SIGINT or SIGTERM.
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ztagent/ztagent/internal/delayrelay"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9443", "address to listen on")
	target := flag.String("target", "", "address to relay to (host:port)")
	delay := flag.Duration("delay", 20*time.Millisecond, "delay added in each direction")
	flag.Parse()
	if *target == "" {
		log.Fatal("delayrelay: --target is required")
	}
	r, err := delayrelay.Listen(*listen, *target, *delay)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("delayrelay: %s -> %s, +%v each way", r.Addr(), *target, *delay)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	r.Close()
}
