package l3e

import (
	"encoding/binary"
	"testing"

	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

func rawRecord(epoch uint16, seq uint64, body int) []byte {
	r := make([]byte, record.HeaderLen+body)
	r[0], r[1], r[2] = 23, 0xfe, 0xfd
	binary.BigEndian.PutUint16(r[3:], epoch)
	binary.BigEndian.PutUint16(r[5:], uint16(seq>>32))
	binary.BigEndian.PutUint32(r[7:], uint32(seq))
	binary.BigEndian.PutUint16(r[11:], uint16(body))
	return r
}

func TestTruncated(t *testing.T) {
	tests := []struct {
		name string
		d    []byte
		want bool
	}{
		{"one record", rawRecord(1, 1, 10), false},
		{"two records", append(rawRecord(1, 1, 10), rawRecord(1, 2, 3)...), false},
		{"short body", rawRecord(1, 1, 10)[:20], true},
		{"second header cut", append(rawRecord(1, 1, 10), rawRecord(1, 2, 3)[:8]...), true},
		{"header only", rawRecord(1, 1, 0), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Truncated(tc.d); got != tc.want {
				t.Fatalf("truncated = %v", got)
			}
		})
	}
}

func FuzzRecords(f *testing.F) {
	f.Add(append(rawRecord(1, 1, 3), rawRecord(1, 1, 3)...))
	f.Add(rawRecord(0, 0, 0)[:5])
	f.Fuzz(func(t *testing.T, d []byte) {
		_ = Truncated(d)
	})
}
