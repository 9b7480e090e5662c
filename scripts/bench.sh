#!/usr/bin/env bash
# make bench, the namespace half: iperf3 single-stream throughput from the
# client namespace to the corporate namespace, up (-c) and down (-R), on three
# paths in the same run and the same namespaces:
#   direct     the cloud namespace routes client <-> corp (no tunnel);
#   wireguard  wireguard-go in the client and the cloud namespaces (built from
#              the module in go.mod, configured with wg), the cloud namespace
#              forwarding to corp: the same hops as the L7 path;
#   agent      ztagent -> PoP (cloud) -> publisher (corp).
# Prints Gbit/s for each, the ratios agent/wireguard and agent/direct, and CPU
# seconds per GB for the agent alone, for agent + PoP + publisher, and for both
# wireguard-go ends; then the time to first byte of a new flow (connect to the
# first byte a server writes on accept) direct, through wireguard-go and
# through the agent.
# Environment: BENCH_SECS (iperf3 seconds, default 10), BENCH_TTFB_N
# (connections, default 200), BENCH_PERF (a directory: `perf record` of the
# agent, the PoP and the publisher during the agent's runs, read with
# `perf report -i FILE`), BENCH_ONLY=ttfb (only the time to first byte: no
# iperf3 runs).
# Then iperf3 -u at 200 Mbit/s through the tunnel, both ways, with its loss.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZT_LAB=${ZT_LAB:-ztbench}
DIR=$PWD/.lab/$ZT_LAB
SECS=${BENCH_SECS:-10}
TTFB_N=${BENCH_TTFB_N:-200}
PERF=${BENCH_PERF:-}
ONLY=${BENCH_ONLY:-}
case $ONLY in
  "" | ttfb) ;;
  *) echo "bench: BENCH_ONLY=$ONLY not supported (only ttfb)" >&2; exit 2 ;;
esac
. scripts/bench-lib.sh
bench_lab_up bench
[ -x bin/ttfb ] || go build -trimpath -o bin/ttfb ./e2e/ttfb
ip netns exec "$CORP" bin/ttfb serve 10.20.0.10:5202 >"$DIR/ttfb.log" 2>&1 & bgpids+=($!)
for _ in $(seq 50); do inns "$CORP" ss -ltn | grep -q ':5202 ' && break; sleep 0.1; done
if [ -z "$ONLY" ]; then
  inns "$CORP" iperf3 -s -D -B 10.20.0.10 --pidfile "$DIR/iperf3.pid2"
  for _ in $(seq 50); do inns "$CORP" ss -ltn | grep -q ':5201 ' && break; sleep 0.1; done
fi

echo "== direct: client -> corp, routed through the cloud namespace"
inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=1
measure direct-up "" "" -c 10.20.0.10
measure direct-down "" "" -c 10.20.0.10 -R
ttfb_direct=$(inns "$CLIENT" bin/ttfb measure -n "$TTFB_N" 10.20.0.10:5202)

echo "== wireguard-go: client <-> cloud, the cloud namespace forwarding to corp"
wg_start
inns "$CLIENT" bin/ttfb measure -n 1 10.20.0.10:5202 >/dev/null  # the handshake
ttfb_wg=$(inns "$CLIENT" bin/ttfb measure -n "$TTFB_N" 10.20.0.10:5202)
measure wg-up "$wgc $wgs" "" -c 10.20.0.10
measure wg-down "$wgc $wgs" "" -c 10.20.0.10 -R
wg_stop
inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=0

echo "== agent: ztagent -> PoP -> publisher (iperf.corp.test:5201, by name)"
scripts/lab.sh agent-start
agent=$(real_pids "$DIR/agent.pid")
cloud=$(real_pids "$DIR/ztcloud.pid" "$DIR/publisher.pid")
# perf_start NAME records the three processes for the run that follows
# (perf_wait waits for the recording to end).
perfpid=
perf_start() {
  [ -n "$PERF" ] || return 0
  mkdir -p "$PERF"
  perf record -q -g -o "$PERF/$1.perf" -p "$(echo $agent $cloud | tr ' ' ,)" -- sleep "$SECS" >/dev/null 2>&1 &
  perfpid=$!
}
perf_wait() { [ -z "$perfpid" ] || wait "$perfpid" || true; perfpid=; }
perf_start agent-up
measure agent-up "$agent" "$cloud" -c iperf.corp.test
perf_wait
perf_start agent-down
measure agent-down "$agent" "$cloud" -c iperf.corp.test -R
perf_wait

# UDP through the tunnel: iperf3 -u at a fixed rate (UDP_RATE, default 200M),
# up and down (-R); the loss is the receiver's. iperf3 sizes its datagrams
# to the TUN's MTU (UDP_LEN sets a size: 1400 is fragmented in two).
[ -n "$ONLY" ] || echo "== UDP through ztagent -> PoP -> publisher: iperf3 -u -b ${UDP_RATE:-200M} ${UDP_LEN:+-l $UDP_LEN}"
[ -n "$ONLY" ] || for flag in "" -R; do
  inns "$CLIENT" iperf3 -J -u -b "${UDP_RATE:-200M}" ${UDP_LEN:+-l "$UDP_LEN"} -t "$SECS" $flag -c iperf.corp.test | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r: sys.exit("iperf3: " + r["error"])
s = r["end"]["sum"]
print("udp %s: %.0f Mbit/s, lost %d of %d datagrams (%.3f%%), jitter %.3f ms" % (
    sys.argv[1], s["bits_per_second"] / 1e6, s["lost_packets"], s["packets"], s["lost_percent"], s["jitter_ms"]))' "${flag:-up}"
done
kill "$(cat "$DIR/iperf3.pid2")" 2>/dev/null || true
for _ in $(seq 50); do inns "$CORP" ss -ltn | grep -q ':5201 ' || break; sleep 0.1; done
ip netns exec "$CORP" bin/ttfb serve 10.20.0.10:5201 >"$DIR/ttfb.log" 2>&1 & bgpids+=($!)
for _ in $(seq 50); do inns "$CORP" ss -ltn | grep -q ':5201 ' && break; sleep 0.1; done
ttfb_agent=$(inns "$CLIENT" bin/ttfb measure -n "$TTFB_N" iperf.corp.test:5201)

python3 - "$HZ" "$ttfb_direct" "$ttfb_wg" "$ttfb_agent" "${R[direct-up]:-}" "${R[direct-down]:-}" \
  "${R[wg-up]:-}" "${R[wg-down]:-}" "${R[agent-up]:-}" "${R[agent-down]:-}" <<'PY'
import sys
hz = float(sys.argv[1])
ttfb_direct, ttfb_wg, ttfb_agent = (list(map(float, a.split())) for a in sys.argv[2:5])
names = ["direct-up", "direct-down", "wg-up", "wg-down", "agent-up", "agent-down"]
r = {n: list(map(float, a.split())) for n, a in zip(names, sys.argv[5:]) if a}
def cpu_gb(n, i):  # CPU seconds per GB of the i-th process set
    gbit, nbytes, c1, c2 = r[n]
    return [c1, c2, c1 + c2][i] / hz / (nbytes / 1e9)
if r:  # not with BENCH_ONLY=ttfb
    print("\n%-6s %8s %10s %8s %10s %10s" % ("", "direct", "wireguard", "agent", "agent/wg", "agent/dir"))
    for d in ("up", "down"):
        g = {p: r[p + "-" + d][0] for p in ("direct", "wg", "agent")}
        print("%-6s %8.2f %10.2f %8.2f %10.2f %10.2f  Gbit/s" % (
            d, g["direct"], g["wg"], g["agent"], g["agent"] / g["wg"], g["agent"] / g["direct"]))
    print("\nCPU seconds per GB  %6s %6s" % ("up", "down"))
    for label, n, i in (("agent alone", "agent", 0), ("agent+PoP+publisher", "agent", 2),
                        ("PoP+publisher", "agent", 1), ("wireguard-go (both)", "wg", 0)):
        print("%-19s %6.2f %6.2f" % (label, cpu_gb(n + "-up", i), cpu_gb(n + "-down", i)))
print("\ntime to first byte of a new flow, µs: median / p90 / min")
us = lambda t: " / ".join("%.0f" % x for x in t)
print("direct    %s" % us(ttfb_direct))
print("wireguard %s" % us(ttfb_wg))
print("agent     %s  (median %.2fx direct)" % (us(ttfb_agent), ttfb_agent[0] / ttfb_direct[0]))
PY
