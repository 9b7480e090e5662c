package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// udp4 is an IPv4 UDP datagram from src to dst port 53 with payload.
func udp4(src, dst [4]byte, payload []byte) []byte {
	p := make([]byte, 20+8+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 53)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// icmp6 is an IPv6 packet with an (unchecked) ICMPv6 echo request.
func icmp6() []byte {
	p := make([]byte, 40+8)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 8)
	p[6], p[7] = 58, 64
	p[8], p[9], p[23] = 0xfd, 0x00, 1 // fd00::1
	p[24], p[25], p[39] = 0xfd, 0x00, 2
	p[40] = 128
	return p
}

func TestWriterLayout(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b, 30)
	if err != nil {
		t.Fatal(err)
	}
	p := udp4([4]byte{100, 64, 0, 1}, [4]byte{100, 64, 0, 2}, make([]byte, 100))
	ts := time.Unix(1700000000, 123456000)
	n, err := w.WritePacket(ts, p)
	if err != nil || n != RecordHeaderLen+30 {
		t.Fatalf("WritePacket = %d, %v; want %d", n, err, RecordHeaderLen+30)
	}
	got := b.Bytes()
	le := binary.LittleEndian
	for _, c := range []struct {
		name      string
		off       int
		got, want uint32
	}{
		{"magic", 0, le.Uint32(got[0:]), 0xa1b2c3d4},
		{"snaplen", 16, le.Uint32(got[16:]), 30},
		{"linktype", 20, le.Uint32(got[20:]), LinkTypeRaw},
		{"seconds", 24, le.Uint32(got[24:]), 1700000000},
		{"micros", 28, le.Uint32(got[28:]), 123456},
		{"caplen", 32, le.Uint32(got[32:]), 30},
		{"len", 36, le.Uint32(got[36:]), uint32(len(p))},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d = %#x, want %#x", c.name, c.off, c.got, c.want)
		}
	}
	if len(got) != FileHeaderLen+RecordHeaderLen+30 || !bytes.Equal(got[40:], p[:30]) {
		t.Errorf("record data = %x, want the packet's first 30 bytes", got[40:])
	}
}

func TestWriteCut(t *testing.T) {
	var b bytes.Buffer
	w, _ := NewWriter(&b, 100)
	if _, err := w.WriteCut(time.Now(), make([]byte, 40), 1500); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if caplen, orig := le.Uint32(b.Bytes()[32:]), le.Uint32(b.Bytes()[36:]); caplen != 40 || orig != 1500 {
		t.Fatalf("caplen %d, len %d; want 40, 1500", caplen, orig)
	}
}

func TestNewWriterSnaplen(t *testing.T) {
	for _, n := range []int{0, -1, MaxSnaplen + 1} {
		if _, err := NewWriter(&bytes.Buffer{}, n); !errors.Is(err, ErrSnaplen) {
			t.Errorf("NewWriter(snaplen %d) = %v, want ErrSnaplen", n, err)
		}
	}
}

// TestTcpdumpReadsIt reads a file back with tcpdump -r, an independent
// reader (scripts/deps.sh installs it).
func TestTcpdumpReadsIt(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		tcpdump = "/usr/sbin/tcpdump"
		if _, err := os.Stat(tcpdump); err != nil {
			t.Skip("SKIPPED: tcpdump is not installed (scripts/deps.sh installs it); the pcap file is not read back by an independent reader")
		}
	}
	file := filepath.Join(t.TempDir(), "c.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, 65535)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	for _, p := range [][]byte{udp4([4]byte{100, 64, 0, 1}, [4]byte{100, 64, 0, 2}, []byte("hello")), icmp6()} {
		if _, err := w.WritePacket(ts, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tcpdump, "-n", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	for _, want := range []string{"100.64.0.1.40000 > 100.64.0.2.53", "fd00::1 > fd00::2: ICMP6, echo request", "link-type RAW"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tcpdump -r output lacks %q:\n%s", want, out)
		}
	}
}
