package dnsproxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTCPPipelined sends several queries on one connection before reading:
// each gets its answer, in order.
func TestTCPPipelined(t *testing.T) {
	_, addr := startProxy(t, Config{Policy: fuzzPolicy()})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	names := []string{"wiki.corp.example.", "x_y-1.corp.example.", "WIKI.corp.example."}
	var out []byte
	for i, n := range names {
		m := newQuery(n, dns.TypeA)
		m.Id = uint16(100 + i)
		b, _ := m.Pack()
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		resp := readTCPMsg(t, c)
		if resp.Id != uint16(100+i) || resp.Question[0].Name != n || len(resp.Answer) != 1 {
			t.Errorf("answer %d: %v", i, resp)
		}
	}
}

// TestTCPConnectionCap opens as many idle connections as the server takes:
// one more is closed at once, and once one is gone a new one is served.
func TestTCPConnectionCap(t *testing.T) {
	_, addr := startProxy(t, Config{Policy: fuzzPolicy()})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range tcpMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The server has accepted them all once a query on the last one is
	// answered (connections are accepted in order).
	tcpAsk(t, conns[len(conns)-1])
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection over the cap: read %v, want EOF", err)
	}
	conns[0].Close()
	conns = conns[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ok := tcpTryAsk(c)
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection served after one closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tcpAsk(t *testing.T, c net.Conn) {
	t.Helper()
	if !tcpTryAsk(c) {
		t.Fatal("no answer over TCP")
	}
}

// tcpTryAsk asks for a private name on c and reports whether it got the
// answer.
func tcpTryAsk(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, _ := newQuery("wiki.corp.example.", dns.TypeA).Pack()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		return false
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return false
	}
	_, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint16(l[:])))
	return err == nil
}

func readTCPMsg(t *testing.T, c net.Conn) *dns.Msg {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatal(err)
	}
	return m
}
