// Package xconnect turns on extended CONNECT (RFC 8441) in golang.org/x/net's
// HTTP/2 server, which carries UDP flows as connect-udp streams (RFC 9298;
// see tunnel/l7). x/net v0.62.0 implements it but leaves it off unless the
// environment's GODEBUG holds http2xconnect=1 when its http2 package is
// initialized (golang/go#71128: browsers would try WebSockets over HTTP/2 on
// servers whose WebSocket code cannot take them; ours serve no browsers).
// The setting is a variable read once, in x/net's init, with no API.
//
// Importing this package (for its side effect) adds http2xconnect=1 to
// GODEBUG before that init runs. The Go specification (since Go 1.21) fixes
// the order: packages are initialized in import-path order among those whose
// imports are initialized. This package imports only os and strings, which
// x/net/http2 depends on too, so it is ready whenever x/net/http2 is, and
// "github.com/…" sorts before "golang.org/…". Tests of tunnel/l7 and the
// client's check of SETTINGS_ENABLE_CONNECT_PROTOCOL (l7.ErrNoExtendedConnect)
// catch it if that ever stops holding. Only the cloud's servers (cloud/pop,
// cloud/publisher) and tests import it; the agent serves no HTTP/2 and does
// not link it.
package xconnect

import (
	"os"
	"strings"
)

// setting is the GODEBUG key=value that x/net/http2 looks for.
const setting = "http2xconnect=1"

func init() {
	v := os.Getenv("GODEBUG")
	if strings.Contains(v, setting) {
		return
	}
	if v != "" {
		v += ","
	}
	os.Setenv("GODEBUG", v+setting)
}
