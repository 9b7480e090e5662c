#!/usr/bin/env bash
# DNS speed of the agent's proxy (issue 5), measured with dnsperf from the
# client namespace of a lab, in one run:
#   (a) stub answers: queries/s of the agent against dnsmasq serving the same
#       1,000 names as local records (127.0.0.2 in the client namespace), with
#       the same dnsperf flags;
#   (b) forwarded names: p50/p99 latency added by the agent over querying the
#       upstream (the lab's "public" dnsmasq at 10.10.0.1) directly, for cache
#       hits (one name, repeated) and misses (a unique random name per query),
#       at a fixed, unsaturating rate so that latency is not queueing.
# Usage: scripts/bench-dns.sh (root; run `make build` first).
# Environment: ZT_LAB (default ztdnsb), BENCH_SECONDS (default 10 for (a)),
# BENCH_QPS (default 2000 for (b)), BENCH_QUERIES (default 20000 for (b)).
set -euo pipefail

export ZT_LAB=${ZT_LAB:-ztdnsb}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ZT_LAB_DIR=${ZT_LAB_DIR:-$ROOT/.lab/$ZT_LAB}
SECS=${BENCH_SECONDS:-10}
QPS=${BENCH_QPS:-2000}
NQ=${BENCH_QUERIES:-20000}
CLIENT=$ZT_LAB-client
LAB="$ROOT/scripts/lab.sh"
WORK=$(mktemp -d)
inc() { ip netns exec "$CLIENT" "$@"; }

cleanup() {
  [ -f "$WORK/dnsmasq.pid" ] && kill "$(cat "$WORK/dnsmasq.pid")" 2>/dev/null || true
  "$LAB" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up
AGENT=$(awk '$1 == "nameserver" { print $2; exit }' "/etc/netns/$CLIENT/resolv.conf")
echo "agent DNS at $AGENT; dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')"

# (a) The same 1,000 private names from both servers. The agent first gives
# each its stub (untimed), and dnsmasq serves exactly those addresses.
for i in $(seq 0 999); do echo "n$i.apps.corp.test A"; done >"$WORK/stub.names"
inc dnsperf -s "$AGENT" -d "$WORK/stub.names" -n 1 >/dev/null
while read -r name _; do
  addr=$(inc dig +short +time=2 +tries=1 @"$AGENT" "$name" A)
  echo "host-record=$name,$addr"
done <"$WORK/stub.names" >"$WORK/dnsmasq.conf"
inc dnsmasq --conf-file="$WORK/dnsmasq.conf" --no-resolv --no-hosts --bind-interfaces \
  --listen-address=127.0.0.2 --pid-file="$WORK/dnsmasq.pid" --cache-size=0
qps() { # server → queries/s over SECS seconds, 8 clients, 200 outstanding
  inc dnsperf -s "$1" -d "$WORK/stub.names" -l "$SECS" -c 8 -q 200 | awk '/Queries per second:/ { printf "%.0f\n", $4 }'
}
echo "== (a) stub answers, 1000 names, dnsperf -l $SECS -c 8 -q 200 (UDP)"
A_AGENT=$(qps "$AGENT")
A_DNSMASQ=$(qps 127.0.0.2)
echo "agent:   $A_AGENT q/s"
echo "dnsmasq: $A_DNSMASQ q/s"
awk -v a="$A_AGENT" -v d="$A_DNSMASQ" 'BEGIN { printf "ratio agent/dnsmasq: %.2f\n", a / d }'

# (b) Latency percentiles from dnsperf -v (one line per query, latency in
# seconds last), at QPS queries/s.
lat() { # server datafile → "p50 p99" in microseconds
  inc dnsperf -s "$1" -d "$2" -n 1 -Q "$QPS" -q 50 -v |
    awk '$1 == ">" { print $NF * 1e6 }' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- -"; exit } i50 = int(NR * 0.50); i99 = int(NR * 0.99);
      if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; printf "%.0f %.0f %d\n", v[i50], v[i99], NR }'
}
for i in $(seq "$NQ"); do echo "www.public.test A"; done >"$WORK/hit.names"
# Unique names per query, and separate sets for each path, so neither the
# agent's cache nor anything else has seen them.
od -An -vtx8 -N$((NQ * 8)) /dev/urandom | tr -s ' ' '\n' | sed '/^$/d' | awk '{ print "m" $1 ".bench.public.test A" }' >"$WORK/miss1.names"
od -An -vtx8 -N$((NQ * 8)) /dev/urandom | tr -s ' ' '\n' | sed '/^$/d' | awk '{ print "m" $1 ".bench.public.test A" }' >"$WORK/miss2.names"
inc dig +short @"$AGENT" www.public.test >/dev/null # fill the cache for the hits
echo "== (b) forwarded names, $NQ queries at $QPS q/s, latency in µs (p50 p99 answered)"
read -r HA50 HA99 HAN < <(lat "$AGENT" "$WORK/hit.names")
read -r HD50 HD99 HDN < <(lat 10.10.0.1 "$WORK/hit.names")
read -r MA50 MA99 MAN < <(lat "$AGENT" "$WORK/miss1.names")
read -r MD50 MD99 MDN < <(lat 10.10.0.1 "$WORK/miss2.names")
printf '%-22s %8s %8s %8s\n' "" p50 p99 answered
printf '%-22s %8s %8s %8s\n' "hit, agent" "$HA50" "$HA99" "$HAN" "hit, upstream direct" "$HD50" "$HD99" "$HDN" \
  "miss, agent" "$MA50" "$MA99" "$MAN" "miss, upstream direct" "$MD50" "$MD99" "$MDN"
echo "added by the agent (µs): hit p50 $((HA50 - HD50)) p99 $((HA99 - HD99)); miss p50 $((MA50 - MD50)) p99 $((MA99 - MD99))"
