#!/usr/bin/env bash
# make bench, the namespace half: iperf3 single-stream throughput from the
# client namespace to the corporate namespace, first on the direct routed path
# (the cloud namespace forwarding, no agent), then through agent → PoP →
# publisher, in the same run. Prints the ratio and the CPU seconds per GB
# spent by the agent, the PoP and the publisher together; then iperf3 -u at
# 200 Mbit/s through the tunnel both ways, with its loss.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZT_LAB=${ZT_LAB:-ztbench}
DIR=$PWD/.lab/$ZT_LAB
SECS=${BENCH_SECS:-10}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 1; }
trap 'scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
ZT_LAB_NOAGENT=1 scripts/lab.sh up
C="ip netns exec $ZT_LAB-client"
ip netns exec "$ZT_LAB-corp" iperf3 -s -D -B 10.20.0.10 --pidfile "$DIR/iperf3.pid2"
for _ in $(seq 50); do ip netns exec "$ZT_LAB-corp" ss -ltn | grep -q ':5201 ' && break; sleep 0.1; done

# gbits JSON: single-stream receiver throughput in Gbit/s.
gbits() { python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r: sys.exit("iperf3: " + r["error"])
print("%.3f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))'; }
bytes_rx() { python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bytes"])'; }
# cpu_ticks PID...: user+system clock ticks used so far.
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }

echo "== direct: client -> corp, routed through the cloud namespace"
ip netns exec "$ZT_LAB-cloud" sysctl -qw net.ipv4.ip_forward=1
direct=$($C iperf3 -J -t "$SECS" -c 10.20.0.10 | gbits)
ip netns exec "$ZT_LAB-cloud" sysctl -qw net.ipv4.ip_forward=0
echo "direct: $direct Gbit/s"

echo "== through ztagent -> PoP -> publisher (iperf.corp.test:5201, by name)"
scripts/lab.sh agent-start
pids=$(cat "$DIR/agent.pid" "$DIR/ztcloud.pid" "$DIR/publisher.pid")
# setsid leaves the real processes as children of `ip netns exec`; find them.
procs=$(for p in $pids; do pgrep -P "$p" || echo "$p"; done)
t0=$(cpu_ticks $procs)
json=$($C iperf3 -J -t "$SECS" -c iperf.corp.test)
t1=$(cpu_ticks $procs)
tunnel=$(echo "$json" | gbits)
bytes=$(echo "$json" | bytes_rx)
hz=$(getconf CLK_TCK)
echo "tunnel: $tunnel Gbit/s"
python3 - "$direct" "$tunnel" "$t0" "$t1" "$hz" "$bytes" <<'PY'
import sys
direct, tunnel, t0, t1, hz, nbytes = map(float, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"ratio tunnel/direct: {tunnel/direct:.3f}")
print(f"CPU seconds per GB (agent+PoP+publisher): {cpu/(nbytes/1e9):.2f} ({cpu:.1f} s for {nbytes/1e9:.2f} GB)")
PY

# UDP through the tunnel: iperf3 -u at a fixed rate (UDP_RATE, default 200M),
# up and down (-R); the loss is the receiver's. iperf3 sizes its datagrams
# to the TUN's MTU (UDP_LEN sets a size: 1400 is fragmented in two).
echo "== UDP through ztagent -> PoP -> publisher: iperf3 -u -b ${UDP_RATE:-200M} ${UDP_LEN:+-l $UDP_LEN}"
for flag in "" -R; do
  $C iperf3 -J -u -b "${UDP_RATE:-200M}" ${UDP_LEN:+-l "$UDP_LEN"} -t "$SECS" $flag -c iperf.corp.test | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r: sys.exit("iperf3: " + r["error"])
s = r["end"]["sum"]
print("udp %s: %.0f Mbit/s, lost %d of %d datagrams (%.3f%%), jitter %.3f ms" % (
    sys.argv[1], s["bits_per_second"] / 1e6, s["lost_packets"], s["packets"], s["lost_percent"], s["jitter_ms"]))' "${flag:-up}"
done
kill "$(cat "$DIR/iperf3.pid2")" 2>/dev/null || true
