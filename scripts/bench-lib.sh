# Sourced by bench.sh and bench-l3e.sh: the measuring both share. The caller
# sets CLIENT, CLOUD, CORP (namespaces), DIR (the lab's directory), ZT_LAB,
# SECS (iperf3 seconds) and ONLY (non-empty: no iperf3 runs), and an array
# bgpids of processes to kill on exit.

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# bench_lab_up NAME: how both benchmarks start: root and wg checked (NAME in
# the messages), wireguard-go built from go.mod, the lab up without its
# agent, and on exit the processes in bgpids killed and the lab taken down.
# Sets CLIENT, CLOUD and CORP.
bench_lab_up() {
  local name=$1
  [ "$(id -u)" -eq 0 ] || { echo "$name: needs root (network namespaces)" >&2; exit 1; }
  command -v wg >/dev/null || { echo "$name: wg missing (make deps installs wireguard-tools)" >&2; exit 1; }
  go build -trimpath -o bin/wireguard-go golang.zx2c4.com/wireguard
  CLIENT=$ZT_LAB-client CLOUD=$ZT_LAB-cloud CORP=$ZT_LAB-corp
  bgpids=()
  trap bench_cleanup EXIT
  ZT_LAB_NOAGENT=1 scripts/lab.sh up
}
bench_cleanup() {
  for p in ${bgpids[@]+"${bgpids[@]}"}; do kill "$p" 2>/dev/null || true; done
  scripts/lab.sh down >/dev/null 2>&1 || true
}

# iperf ARGS...: one iperf3 run from the client; prints "Gbit/s bytes".
iperf() { inns "$CLIENT" iperf3 -J -t "$SECS" "$@" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r: sys.exit("iperf3: " + r["error"])
s = r["end"]["sum_received"]
print("%.3f %d" % (s["bits_per_second"] / 1e9, s["bytes"]))'; }
# cpu_ticks PID...: user+system clock ticks used so far.
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
HZ=$(getconf CLK_TCK)
# measure NAME "PIDS" "PIDS2" ARGS...: an iperf3 run with the CPU of two sets
# of processes; sets R[NAME]="Gbit/s bytes cpu1 cpu2" (CPU in seconds).
declare -A R
measure() {
  [ -z "$ONLY" ] || return 0
  local name=$1 p1=$2 p2=$3; shift 3
  local a0 b0 out
  a0=$(cpu_ticks $p1); b0=$(cpu_ticks $p2)
  out=$(iperf "$@")
  R[$name]="$out $(( $(cpu_ticks $p1) - a0 )) $(( $(cpu_ticks $p2) - b0 ))"
  echo "$name: ${out%% *} Gbit/s"
}
# real_pids PIDFILE...: setsid leaves the real processes as children of `ip
# netns exec`; find them.
real_pids() { for f in "$@"; do local p; p=$(cat "$f"); pgrep -P "$p" || echo "$p"; done; }

# wg_start: wireguard-go (bin/wireguard-go, built from the module in go.mod)
# in the client (10.99.0.2) and the cloud (10.99.0.1) namespaces, the client
# routing 10.20.0.10 through it and the corporate namespace routing 10.99.0.0/24
# back via the cloud, which must forward. Sets wgc and wgs (their PIDs);
# wg_stop stops them.
wg_start() {
  local WGC=${ZT_LAB:0:8}-wgc WGS=${ZT_LAB:0:8}-wgs  # interface names (15 bytes at most)
  umask 077; wg genkey >"$DIR/wgc.key"; wg genkey >"$DIR/wgs.key"; umask 022
  ip netns exec "$CLIENT" bin/wireguard-go -f "$WGC" >"$DIR/wgc.log" 2>&1 & wgc=$!; bgpids+=($wgc)
  ip netns exec "$CLOUD" bin/wireguard-go -f "$WGS" >"$DIR/wgs.log" 2>&1 & wgs=$!; bgpids+=($wgs)
  for _ in $(seq 50); do [ -S "/var/run/wireguard/$WGC.sock" ] && [ -S "/var/run/wireguard/$WGS.sock" ] && break; sleep 0.1; done
  inns "$CLOUD" wg set "$WGS" private-key "$DIR/wgs.key" listen-port 51820 \
    peer "$(wg pubkey <"$DIR/wgc.key")" allowed-ips 10.99.0.2/32
  inns "$CLIENT" wg set "$WGC" private-key "$DIR/wgc.key" \
    peer "$(wg pubkey <"$DIR/wgs.key")" endpoint 10.10.0.1:51820 allowed-ips 10.99.0.1/32,10.20.0.0/24
  inns "$CLOUD" ip addr add 10.99.0.1/24 dev "$WGS"
  inns "$CLOUD" ip link set "$WGS" up
  inns "$CLIENT" ip addr add 10.99.0.2/24 dev "$WGC"
  inns "$CLIENT" ip link set "$WGC" up
  inns "$CLIENT" ip route add 10.20.0.10/32 dev "$WGC"
  inns "$CORP" ip route add 10.99.0.0/24 via 10.20.0.1
}
wg_stop() { kill "$wgc" "$wgs"; wait "$wgc" "$wgs" 2>/dev/null || true; }
