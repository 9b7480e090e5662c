package steering

import (
	"slices"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		rtt  time.Duration
		want int
		name string
	}{
		{0, 0, "<5ms"}, {4*ms + 999*time.Microsecond, 0, "<5ms"}, {5 * ms, 1, "5-10ms"},
		{19 * ms, 2, "10-20ms"}, {20 * ms, 3, "20-50ms"}, {99 * ms, 4, "50-100ms"},
		{150 * ms, 5, "100-200ms"}, {200 * ms, 6, "200-500ms"}, {500 * ms, 7, ">=500ms"}, {time.Hour, 7, ">=500ms"},
	} {
		t.Run(tc.rtt.String(), func(t *testing.T) {
			b := Bucket(tc.rtt)
			if b != tc.want || BucketName(b) != tc.name {
				t.Errorf("Bucket(%v) = %d %q, want %d %q", tc.rtt, b, BucketName(b), tc.want, tc.name)
			}
		})
	}
}

func TestSelectPublishers(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		in   []PublisherRTT
		want []string
	}{
		{"none", nil, nil},
		{"all unreachable", []PublisherRTT{{"a", ms, false}, {"b", 2 * ms, false}}, nil},
		{"nearest bucket only", []PublisherRTT{{"far", 41 * ms, true}, {"near", 1 * ms, true}}, []string{"near"}},
		{"same bucket nearest first", []PublisherRTT{{"b", 3 * ms, true}, {"a", 4 * ms, true}, {"c", 12 * ms, true}}, []string{"b", "a"}},
		{"ties by name", []PublisherRTT{{"b", 3 * ms, true}, {"a", 3 * ms, true}}, []string{"a", "b"}},
		{"unreachable near one skipped", []PublisherRTT{{"near", 0, false}, {"far", 60 * ms, true}}, []string{"far"}},
		{"last bucket", []PublisherRTT{{"x", time.Second, true}, {"y", 2 * time.Second, true}}, []string{"x", "y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SelectPublishers(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("SelectPublishers = %v, want %v", got, tc.want)
			}
		})
	}
}
