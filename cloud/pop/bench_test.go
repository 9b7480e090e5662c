package pop

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// BenchmarkChainThroughput measures one stream's throughput through client → PoP →
// publisher → a loopback server ("l7"), against a plain loopback TCP connection to
// the same server in the same run ("direct"), uploading to a sink ("up") and
// downloading from a source ("down"). Compare the MB/s and cpu-s/GB columns (the
// whole process's CPU: client, PoP, publisher and server).
//
//	go test -run '^$' -bench ChainThroughput -benchtime 4s ./cloud/pop/
func BenchmarkChainThroughput(b *testing.B) {
	sinkPort, sourcePort := startServer(b, sink), startServer(b, source)
	for _, dir := range []struct {
		name string
		port uint16
		run  func(*testing.B, closeWriter)
	}{{"up", sinkPort, pump}, {"down", sourcePort, drain}} {
		b.Run("direct-"+dir.name, func(b *testing.B) {
			c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(dir.port))))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			dir.run(b, c.(*net.TCPConn))
		})
		b.Run("l7-"+dir.name, func(b *testing.B) {
			l := newLab(b, labOptions{})
			c, err := l.client.Open(context.Background(), l7.Target{Host: "127.0.0.1", Port: dir.port, AppID: appEcho})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			dir.run(b, c.(closeWriter))
		})
	}
}

const chunk = 1 << 20

// pump writes b.N chunks, half-closes, and checks the sink's count of what arrived.
func pump(b *testing.B, c closeWriter) {
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportCPU(b, cpu0, cpuOK)
	if n := binary.BigEndian.Uint64(got[:]); n != uint64(b.N)*chunk {
		b.Fatalf("sink received %d bytes, want %d", n, uint64(b.N)*chunk)
	}
}

// drain asks the source for b.N chunks and reads them to EOF.
func drain(b *testing.B, c closeWriter) {
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	if _, err := c.Write(binary.BigEndian.AppendUint64(nil, uint64(b.N)*chunk)); err != nil {
		b.Fatal(err)
	}
	var n uint64
	for {
		m, err := c.Read(buf)
		n += uint64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0, cpuOK)
	if n != uint64(b.N)*chunk {
		b.Fatalf("received %d bytes, want %d", n, uint64(b.N)*chunk)
	}
}

// reportCPU reports the process's CPU time per GB moved since cpu0. It is steadier
// than MB/s on a shared machine; it includes the test server's share, the same in the
// direct and l7 runs.
func reportCPU(b *testing.B, cpu0 time.Duration, ok bool) {
	if cpu1, ok1 := processCPU(); ok && ok1 {
		gb := float64(b.N) * chunk / 1e9
		b.ReportMetric((cpu1-cpu0).Seconds()/gb, "cpu-s/GB")
	}
}

// source reads a byte count and writes that many bytes, then closes.
func source(c *net.TCPConn) {
	var want [8]byte
	if _, err := io.ReadFull(c, want[:]); err != nil {
		return
	}
	buf := make([]byte, 256<<10)
	for n := binary.BigEndian.Uint64(want[:]); n > 0; {
		m := min(n, uint64(len(buf)))
		if _, err := c.Write(buf[:m]); err != nil {
			return
		}
		n -= m
	}
}

// sink discards its input and, at EOF, answers with the byte count.
func sink(c *net.TCPConn) {
	buf := make([]byte, 256<<10)
	var n uint64
	for {
		m, err := c.Read(buf)
		n += uint64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	c.Write(binary.BigEndian.AppendUint64(nil, n))
}

// BenchmarkOpen measures a new flow's time to first byte: open a stream (the PoP
// checks policy, the publisher resolves and connects), send a byte, read its echo,
// close. "direct" is a loopback TCP connect and the same exchange.
func BenchmarkOpen(b *testing.B) {
	port := startServer(b, echo)
	ping := func(b *testing.B, c net.Conn) {
		var one [1]byte
		if _, err := c.Write(one[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.Run("direct", func(b *testing.B) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
		b.ReportAllocs()
		for range b.N {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			ping(b, c)
		}
	})
	b.Run("l7", func(b *testing.B) {
		l := newLab(b, labOptions{})
		target := l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c, err := l.client.Open(context.Background(), target)
			if err != nil {
				b.Fatal(err)
			}
			ping(b, c)
		}
	})
}

// BenchmarkReconnect stops the PoP for 8 s, long enough for a backoff to grow to
// several seconds, starts it again on its address and measures, with the client
// and publisher reconnecting as deployed, how long after it listened the client
// was connected ("client-ms") and a flow through it worked ("usable-ms": the
// publisher is back too).
//
//	go test -run '^$' -bench Reconnect -benchtime 1x ./cloud/pop/
func BenchmarkReconnect(b *testing.B) {
	port := startServer(b, echo)
	target := l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho}
	for range b.N {
		l := newLab(b, labOptions{defaultRetry: true})
		client := outage(b, l, 8*time.Second)
		start := time.Now().Add(-client)
		eventually(b, "a flow through the PoP", func() bool {
			c, err := l.client.Open(context.Background(), target)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		b.ReportMetric(float64(client.Milliseconds()), "client-ms")
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "usable-ms")
		b.ReportMetric(0, "ns/op")
	}
}
