package l3e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Ports is a sorted set of disjoint port ranges.
type Ports []PortRange

// ParsePorts reads "22,80,8000-8099" or "*" (all ports); "" is the empty set.
func ParsePorts(s string) (Ports, error) {
	if s == "" {
		return nil, nil
	}
	if s == "*" {
		return Ports{{1, 65535}}, nil
	}
	var ps Ports
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("port range %q runs backwards", part)
			}
		}
		ps = append(ps, PortRange{a, b})
	}
	slices.SortFunc(ps, func(x, y PortRange) int { return int(x.Lo) - int(y.Lo) })
	// Merge touching and overlapping ranges so Contains may stop early.
	out := ps[:1]
	for _, r := range ps[1:] {
		last := &out[len(out)-1]
		if int(r.Lo) <= int(last.Hi)+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid port %q (want 1–65535)", s)
	}
	return uint16(n), nil
}

// Contains reports whether port is in the set.
func (ps Ports) Contains(port uint16) bool {
	for _, r := range ps {
		if port < r.Lo {
			return false
		}
		if port <= r.Hi {
			return true
		}
	}
	return false
}

// All reports whether the set holds every port.
func (ps Ports) All() bool { return len(ps) == 1 && ps[0] == PortRange{1, 65535} }
