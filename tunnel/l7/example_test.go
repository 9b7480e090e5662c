package l7_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// The agent's side: keep the tunnel up and carry one accepted flow through it.
func ExampleClient() {
	var deviceTLS *tls.Config // device certificate, tenant RootCAs, ServerName of the PoP
	client := l7.NewClient(l7.ClientConfig{Addr: "pop.example.com:443", TLS: deviceTLS, Log: zap.NewNop()})
	client.Start()
	defer client.Close()

	var local net.Conn // a flow accepted from the TUN
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	remote, err := client.Open(ctx, l7.Target{Host: "wiki.corp.example", Port: 443, AppID: "wiki"})
	var refused *l7.RefusedError
	switch {
	case errors.As(err, &refused):
		log.Printf("PoP refused the flow: %d %s", refused.Status, refused.Reason)
		return // reset the local flow
	case err != nil:
		return // not connected, or timed out: reset the local flow
	}
	defer remote.Close()
	go func() {
		io.Copy(remote, local)
		remote.(interface{ CloseWrite() error }).CloseWrite()
	}()
	io.Copy(local, remote)
}

// The agent's side of publisher DNS: a query for a name of a publisher-DNS app is
// answered by the publisher's resolver, through the tunnel.
func ExampleClient_ResolveDNS() {
	var client *l7.Client // started as in the Client example
	var query []byte      // a DNS query in wire format, with ID 0
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answer, err := client.ResolveDNS(ctx, "wiki", query)
	if err != nil {
		log.Printf("publisher DNS: %v", err) // answer SERVFAIL
		return
	}
	_ = answer // restore the query's ID, then hand it to the application
}
