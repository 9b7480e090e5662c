// Package steering is the agent's policy brain: the model of everything an
// administrator defines that decides where a flow goes (private apps, steering
// exceptions, client configuration), its strict validation, the flow matcher and
// the stub-address allocator. It is pure logic — no sockets, no files, no
// goroutines, no clock (time is passed in) — so that the DNS proxy, the data
// path, ztdiag's explain command and the tenant all share one exact meaning of a
// rule. Snapshots are immutable and swapped whole.
//
// # Matching rules
//
// Hosts of an app are written as:
//
//   - an exact name, `wiki.corp.example` — case-insensitive, a trailing dot is
//     ignored;
//   - a wildcard, `*.corp.example` — any name *below* corp.example, at any depth
//     (`a.corp.example`, `a.b.corp.example`), but **not** `corp.example` itself
//     (add it as an exact name if it is wanted);
//   - an IPv4 or IPv6 address, `10.1.2.3`, `fd00::5`;
//   - a CIDR in canonical form, `10.2.0.0/16` (`10.2.0.1/16` is an error);
//   - an inclusive range, `10.1.0.10-10.1.0.90` (decomposed into the minimal
//     CIDRs, each of which counts as a prefix of its own length).
//
// ParseHost is this grammar, and AppMatcher answers with it whether a host and
// port lie inside one app: the tenant's checks and the PoP's authorisation use
// them, so what the PoP admits is what the agent steers. A name matches only
// if it is a DNS name: not longer than 253 bytes, no empty label.
//
// Ports are `tcp` and `udp` sets: lists and ranges, `22,80,443,8000-8099`;
// `*` means every port; an empty set means the app does not use the protocol.
//
// Decisions, in order:
//
//  1. **Exceptions first.** A name in `exceptions.domains` or a real address in
//     `exceptions.addresses` goes direct, whatever the apps say.
//  2. **Names** (DNS queries, and flows whose name is known: stub addresses and
//     publisher-resolved addresses): an exact name beats every wildcard, and a
//     longer wildcard domain beats a shorter one. For a flow, the most specific
//     rule *whose app admits the flow's protocol and port* decides. For a DNS
//     query the most specific rule decides regardless of ports (the name
//     belongs to the tunnel).
//  3. **Addresses** (flows to real addresses, when no name rule decided): the
//     longest prefix that contains the address and whose app admits the
//     protocol and port decides; shorter prefixes are tried in turn. Stub
//     addresses are never matched by address.
//
// A flow that no rule steers goes direct (for a stub address, whose only
// meaning is its name, the data path should refuse it instead).
//  4. **Ties** — the same name, or the same prefix, in two apps with
//     overlapping ports — are won by the app that comes first in the config.
//     The validator reports every tie as a warning, and every exception that
//     hides an app rule.
//  5. **Pinned-app exceptions** apply to flows the steps above would steer: if
//     the flow's OS matches and the pattern matches the owner's process name,
//     executable path or app id (first matching exception in config order), the
//     flow goes direct (`bypass`) or is refused (`block`). Patterns mean what
//     PCRE2 says they mean (see Pattern); a pattern that runs past
//     PatternTimeout counts as not matching, so the flow is steered as its app
//     says, and the decision's reason says so. Results are cached per
//     (OS, identity) for the life of a snapshot.
//
// The decision names the rule that decided as a config path and value, e.g.
// `apps[2].hosts[0] "*.corp.example"`; Explain turns it into a sentence.
//
// Routes: Snapshot.Prefixes lists the apps' address, CIDR and range hosts minus
// the address exceptions, as minimal CIDRs, so excepted addresses never enter
// the TUN; the stub range is routed separately.
//
// Validation reports every problem at once, each as `path: "value": reason`
// (e.g. `apps[3].hosts[1]: "10.0.0.0/33": prefix length out of range`), and a
// config with any problem is never compiled. CIDRs must be canonical, ports
// 1-65535, app hosts must stay out of the stub range, and an app needs at
// least one of tcp and udp. A setting the model can express but this version
// cannot honour (notSupportedYet: the l3e tunnel, client.dtls,
// client.prelogon) is refused
// with its path, its value and "not supported yet".
//
// # Stub addresses
//
// StubPool hands out one address per name (not per app) from the stub range
// (default 100.64.0.0/10), never its first or last address or a reserved prefix
// (the agent's own addresses, apps' real prefixes, local interfaces). An
// assignment never changes while it exists, survives restarts through
// MarshalState/RestoreState, and is recycled only when the pool is exhausted,
// and then only once its DNS TTL has expired and it has carried no flow for the
// configured idle time.
//
// # Publisher selection
//
// The agent measures the RTT through the PoP to each publisher of its apps and
// groups the results in buckets (RTTBuckets): <5 ms, 5–10, 10–20, 20–50,
// 50–100, 100–200, 200–500 and ≥500 ms. SelectPublishers keeps, per app, the
// reachable publishers of the lowest non-empty bucket, nearest first; the PoP
// uses the first of them that is online.
package steering
