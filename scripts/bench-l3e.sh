#!/usr/bin/env bash
# make bench, the L3E half: iperf3 single-stream throughput from the client
# namespace to a server in the corporate namespace on a port the L3E app
# `helpdesk` allows (10.20.0.10:7005, testdata/tenants/l3e.yaml), up (-c) and
# down (-R), on three paths in the same run and the same namespaces:
#   direct     the cloud namespace routes client <-> corp (no tunnel);
#   wireguard  wireguard-go in the client and the cloud namespaces (built from
#              the module in go.mod), the cloud namespace forwarding to corp;
#   l3e        ztagent's L3E tunnel (DTLS) -> the gateway in the cloud
#              namespace -> its TUN -> corp: the same hops.
# Prints Gbit/s for each, the ratios l3e/wireguard and l3e/direct, and CPU
# seconds per GB for the agent, the gateway and both wireguard-go ends.
# Environment: BENCH_SECS (iperf3 seconds, default 10), BENCH_PERF (a
# directory: `perf record` of the agent and the gateway during the L3E runs,
# read with `perf report -i FILE`), ZT_BIN (the agent, ztcloud and ztdiag
# to measure, default bin).
set -euo pipefail
cd "$(dirname "$0")/.."
export ZT_LAB=${ZT_LAB:-ztbl3e}
export ZT_TENANT=$PWD/testdata/tenants/l3e.yaml
DIR=$PWD/.lab/$ZT_LAB
export ZT_BIN=${ZT_BIN:-$PWD/bin}
SECS=${BENCH_SECS:-10}
PERF=${BENCH_PERF:-}
ONLY=
PORT=7005
. scripts/bench-lib.sh
bench_lab_up bench-l3e
inns "$CORP" iperf3 -s -D -B 10.20.0.10 -p $PORT --pidfile "$DIR/iperf3-l3e.pid"
for _ in $(seq 50); do inns "$CORP" ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done

echo "== direct: client -> corp, routed through the cloud namespace"
inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=1
measure direct-up "" "" -c 10.20.0.10 -p $PORT
measure direct-down "" "" -c 10.20.0.10 -p $PORT -R

echo "== wireguard-go: client <-> cloud, the cloud namespace forwarding to corp"
wg_start
measure wg-up "$wgc $wgs" "" -c 10.20.0.10 -p $PORT
measure wg-down "$wgc $wgs" "" -c 10.20.0.10 -p $PORT -R
wg_stop
inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=0
inns "$CORP" ip route del 10.99.0.0/24

echo "== l3e: ztagent -> DTLS -> gateway (cloud) -> corp"
scripts/lab.sh gateway-start
scripts/lab.sh agent-start
l3e_up() {
  inns "$CLIENT" "$ZT_BIN/ztdiag" --socket "$DIR/agent.sock" status --json | python3 -c '
import json, sys
l = json.load(sys.stdin).get("l3e") or {}
sys.exit(0 if l.get("state") == "up" else 1)'
}
for i in $(seq 300); do l3e_up && break; [ "$i" -lt 300 ] || { echo "bench-l3e: L3E not up" >&2; exit 1; }; sleep 0.1; done
agent=$(real_pids "$DIR/agent.pid")
gateway=$(real_pids "$DIR/gateway.pid")
perfpid=
perf_start() {
  [ -n "$PERF" ] || return 0
  mkdir -p "$PERF"
  perf record -q -g -o "$PERF/$1.perf" -p "$agent,$gateway" -- sleep "$SECS" >/dev/null 2>&1 &
  perfpid=$!
}
perf_wait() { [ -z "$perfpid" ] || wait "$perfpid" || true; perfpid=; }
# udp_errs NS: the datagrams a full socket receive buffer dropped in NS so far.
udp_errs() { inns "$1" cat /proc/net/snmp | awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }'; }
e0=$(udp_errs "$CLIENT") e1=$(udp_errs "$CLOUD")
perf_start l3e-up
measure l3e-up "$agent" "$gateway" -c 10.20.0.10 -p $PORT
perf_wait
perf_start l3e-down
measure l3e-down "$agent" "$gateway" -c 10.20.0.10 -p $PORT -R
perf_wait
inns "$CLOUD" curl -sf http://127.0.0.1:8445/status | python3 -c '
import json, sys
d = {k: v for k, v in (json.load(sys.stdin).get("drops") or {}).items() if v}
print("gateway drops:", d or "none")'
echo "datagrams dropped at a full UDP receive buffer in the L3E runs: client $(( $(udp_errs "$CLIENT") - e0 )), cloud $(( $(udp_errs "$CLOUD") - e1 ))"
kill "$(cat "$DIR/iperf3-l3e.pid")" 2>/dev/null || true

python3 - "$HZ" "${R[direct-up]}" "${R[direct-down]}" "${R[wg-up]}" "${R[wg-down]}" \
  "${R[l3e-up]}" "${R[l3e-down]}" <<'PY'
import sys
hz = float(sys.argv[1])
names = ["direct-up", "direct-down", "wg-up", "wg-down", "l3e-up", "l3e-down"]
r = {n: list(map(float, a.split())) for n, a in zip(names, sys.argv[2:])}
def cpu_gb(n, i):  # CPU seconds per GB of the i-th process set
    gbit, nbytes, c1, c2 = r[n]
    return [c1, c2, c1 + c2][i] / hz / (nbytes / 1e9)
print("\nL3E    %8s %10s %8s %10s %10s" % ("direct", "wireguard", "l3e", "l3e/wg", "l3e/dir"))
for d in ("up", "down"):
    g = {p: r[p + "-" + d][0] for p in ("direct", "wg", "l3e")}
    print("%-6s %8.2f %10.2f %8.2f %10.2f %10.2f  Gbit/s" % (
        d, g["direct"], g["wg"], g["l3e"], g["l3e"] / g["wg"], g["l3e"] / g["direct"]))
print("\nCPU seconds per GB  %6s %6s" % ("up", "down"))
for label, n, i in (("agent (L3E)", "l3e", 0), ("gateway", "l3e", 1),
                    ("agent+gateway", "l3e", 2), ("wireguard-go (both)", "wg", 0)):
    print("%-19s %6.2f %6.2f" % (label, cpu_gb(n + "-up", i), cpu_gb(n + "-down", i)))
PY
