package steering

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// DefaultProbeInterval is how often the agent measures the RTT to the
// publishers of its apps when client.probe_interval is not set.
const DefaultProbeInterval = 5 * time.Minute

// RTTBuckets are the upper bounds of the RTT buckets publishers are grouped in
// for selection: <5 ms, 5–10, 10–20, 20–50, 50–100, 100–200, 200–500 and
// ≥500 ms (the last bucket, index len(RTTBuckets)). Within a bucket publishers
// count as equally near: a 3 ms and a 4 ms publisher are both kept, a 4 ms and
// a 45 ms one are not.
var RTTBuckets = []time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
}

// Bucket returns the index of rtt's bucket in RTTBuckets (len(RTTBuckets) for
// the last, open-ended one).
func Bucket(rtt time.Duration) int {
	for i, hi := range RTTBuckets {
		if rtt < hi {
			return i
		}
	}
	return len(RTTBuckets)
}

// BucketName is bucket b as ztdiag shows it, e.g. "5-10ms" or ">=500ms".
func BucketName(b int) string {
	ms := func(d time.Duration) string { return strconv.Itoa(int(d / time.Millisecond)) }
	switch {
	case b <= 0:
		return "<" + ms(RTTBuckets[0]) + "ms"
	case b >= len(RTTBuckets):
		return ">=" + ms(RTTBuckets[len(RTTBuckets)-1]) + "ms"
	default:
		return ms(RTTBuckets[b-1]) + "-" + ms(RTTBuckets[b]) + "ms"
	}
}

// PublisherRTT is one publisher's measured RTT through the PoP. Reachable is
// false when the round's probe failed (refused, timed out or answered with
// garbage): such a publisher is never selected in that round.
type PublisherRTT struct {
	Publisher string
	RTT       time.Duration
	Reachable bool
}

// SelectPublishers returns the publishers of the lowest non-empty RTT bucket
// among the reachable ones, nearest first (ties by name, so that the order is
// deterministic), or nil when none is reachable.
func SelectPublishers(rtts []PublisherRTT) []string {
	best := len(RTTBuckets) + 1
	for _, r := range rtts {
		if r.Reachable {
			best = min(best, Bucket(r.RTT))
		}
	}
	var in []PublisherRTT
	for _, r := range rtts {
		if r.Reachable && Bucket(r.RTT) == best {
			in = append(in, r)
		}
	}
	slices.SortFunc(in, func(a, b PublisherRTT) int {
		return cmp.Or(cmp.Compare(a.RTT, b.RTT), cmp.Compare(a.Publisher, b.Publisher))
	})
	var out []string
	for _, r := range in {
		out = append(out, r.Publisher)
	}
	return out
}
