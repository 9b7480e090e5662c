#!/usr/bin/env bash
# The ztagent lab: three network namespaces on this machine.
#
#   P-client (10.10.0.2)  ──veth──  P-cloud (10.10.0.1 | 10.20.0.1)  ──veth──  P-corp (10.20.0.10, .11)
#   ztagent, curl, dig               ztcloud tenant API :8444, PoP :8443        ztcloud publisher
#                                    "public" DNS (dnsmasq) :53, web :80         corp DNS (dnsmasq) :53 (dns.corp.test),
#                                                                                web :80 :8080, UDP echo :7
#
# P-cloud does not forward, so the client can reach the corporate network only
# through the agent → PoP → publisher path.
#
# Usage: lab.sh up|down|agent-start [ztagent flags] [key=value...]|agent-spawn|agent-exec|agent-wait|agent-stop|
#   cloud-stop|cloud-start|publisher-stop|publisher-start|second-uplink|status
# Environment: ZT_LAB (namespace prefix, default "zt"), ZT_LAB_DIR (state and
# logs, default .lab/$ZT_LAB), ZT_BIN (binaries, default bin), ZT_TENANT
# (tenant file, default testdata/tenants/demo.yaml), ZT_UPN (default alice@demo.test),
# ZT_ORGKEY and ZT_PUBTOKEN (the tenant file's org key and publisher token).
set -euo pipefail

P=${ZT_LAB:-zt}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${ZT_LAB_DIR:-$ROOT/.lab/$P}
BIN=${ZT_BIN:-$ROOT/bin}
TENANT=${ZT_TENANT:-$ROOT/testdata/tenants/demo.yaml}
UPN=${ZT_UPN:-alice@demo.test}
# Secrets reach ztagent and ztcloud as @FILE, files only root can read in
# $DIR/secrets, never on a command line, where every local user would see them
# in ps. ORGKEY and PUBTOKEN are what the binaries are given: the files.
ORGKEY_VALUE=${ZT_ORGKEY:-demo-org-key-8c1f4e27b9d35a60}
PUBTOKEN_VALUE=${ZT_PUBTOKEN:-demo-publisher-token-4a9e0c7d21f3}
ORGKEY=@$DIR/secrets/org.key
PUBTOKEN=@$DIR/secrets/publisher.token
# The lab named "zt" uses the default control socket so that `ztdiag status`
# works with no flags inside zt-client; other labs (e2e) keep theirs private.
if [ "$P" = zt ]; then SOCK=${ZT_SOCK:-/run/ztagent/ztagent.sock}; else SOCK=${ZT_SOCK:-$DIR/agent.sock}; fi
CLIENT=$P-client CLOUD=$P-cloud CORP=$P-corp

# say writes to the script's stderr even inside wait_for, which silences the
# command it retries (a die there would otherwise exit without a word).
exec 3>&2
say() { echo "lab[$P]: $*" >&3; }
die() { say "error: $*"; exit 1; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# start NAME NS CMD... runs CMD in NS in the background, logging to DIR/NAME.log.
start() {
  local name=$1 ns=$2; shift 2
  ip netns exec "$ns" setsid "$@" >"$DIR/$name.log" 2>&1 </dev/null 3>&- &
  echo $! >"$DIR/$name.pid"
}

# stop NAME sends TERM and waits up to 10 s before KILL.
stop() {
  local name=$1 pidf="$DIR/$1.pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null && say "$name did not stop in 10 s: killed"
  fi
  rm -f "$pidf"
}

# wait_for DESC SECONDS CMD... retries CMD until it succeeds.
wait_for() {
  local desc=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$desc did not come up within ${secs}s (see $DIR/*.log)"
}

alive() { kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

# write_secret NAME VALUE writes $DIR/secrets/NAME, readable by root only
# (printf is a shell builtin: the value is on no command line either).
write_secret() { (umask 077 && mkdir -p "$DIR/secrets" && printf '%s\n' "$2" >"$DIR/secrets/$1"); }

net_up() {
  [ "$(id -u)" -eq 0 ] || die "the lab needs root (network namespaces)"
  for b in ztagent ztdiag ztcloud labweb; do [ -x "$BIN/$b" ] || die "$BIN/$b missing: run make build"; done
  ip netns list | grep -q "^$CLIENT\b" && die "namespace $CLIENT exists: run '$0 down' first"
  rm -rf "$DIR"; mkdir -p "$DIR"
  write_secret org.key "$ORGKEY_VALUE"
  write_secret publisher.token "$PUBTOKEN_VALUE"
  for ns in $CLIENT $CLOUD $CORP; do
    ip netns add "$ns"
    inns "$ns" ip link set lo up
    # No IPv6 duplicate address detection: addresses are final at once, so a
    # before/after snapshot of the namespace does not depend on timing.
    inns "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
  done
  ip link add eth0 netns "$CLIENT" type veth peer name eth0 netns "$CLOUD"
  ip link add eth0 netns "$CORP" type veth peer name eth1 netns "$CLOUD"
  inns "$CLIENT" ip addr add 10.10.0.2/24 dev eth0
  inns "$CLOUD" ip addr add 10.10.0.1/24 dev eth0
  inns "$CLOUD" ip addr add 10.20.0.1/24 dev eth1
  inns "$CORP" ip addr add 10.20.0.10/24 dev eth0
  inns "$CORP" ip addr add 10.20.0.11/24 dev eth0  # the publisher-DNS app's server
  for ns in $CLIENT $CLOUD $CORP; do inns "$ns" ip link set eth0 up; done
  inns "$CLOUD" ip link set eth1 up
  inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=0
  # The publisher pings apps' hosts for clients with unprivileged ICMP
  # sockets; the kernel allows them to the groups in this range (IPv6 too).
  inns "$CORP" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  inns "$CLIENT" ip route add default via 10.10.0.1
  inns "$CORP" ip route add 10.10.0.0/24 via 10.20.0.1
  # Each namespace gets its own resolv.conf: without it, `ip netns exec` shows
  # the host's file, and the agent would rewrite the host's resolver.
  for ns in $CLIENT $CLOUD $CORP; do mkdir -p "/etc/netns/$ns"; done
  printf 'nameserver 10.10.0.1\n' >"/etc/netns/$CLIENT/resolv.conf"
  printf 'nameserver 10.10.0.1\n' >"/etc/netns/$CLOUD/resolv.conf"
  printf 'nameserver 10.20.0.10\n' >"/etc/netns/$CORP/resolv.conf"
  cp "/etc/netns/$CLIENT/resolv.conf" "$DIR/client-resolv.conf.orig"
}

services_up() {
  # "Public" DNS and web in the cloud namespace; corporate DNS and web in corp.
  start dns-public "$CLOUD" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.10.0.1 --address=/public.test/10.10.0.1 --pid-file="$DIR/dnsmasq-public.pid2"
  # The corporate DNS answers as a real one does: with a TTL (dnsmasq's local
  # answers have 0 by default), and, for the corp names it has no IPv6 address
  # of, NODATA to AAAA (--local; since dnsmasq 2.86, --address alone sends
  # those upstream, which --no-resolv turns into REFUSED).
  start dns-corp "$CORP" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.20.0.10 --address=/corp.test/10.20.0.10 --address=/pdns.corp.test/10.20.0.11 \
    --local=/corp.test/ --local-ttl=60 --pid-file="$DIR/dnsmasq-corp.pid2"
  start web-public "$CLOUD" "$BIN/labweb" --name public --listen 10.10.0.1:80
  start web-corp "$CORP" "$BIN/labweb" --name corp --listen 10.20.0.10:80 --listen 10.20.0.10:8080 --listen 10.20.0.11:80 \
    --udp-echo 10.20.0.10:7
  cloud_start
  wait_for "ztcloud tenant API" 20 test -s "$DIR/cloud/ca.pem"
  wait_for "ztcloud tenant API" 20 inns "$CLIENT" curl -sf --cacert "$DIR/cloud/ca.pem" https://10.10.0.1:8444/v1/health
  publisher_start
  wait_for "public web" 10 inns "$CLIENT" curl -sf http://10.10.0.1/
}

# cloud_start and publisher_start start ztcloud (tenant API and PoP) and the
# publisher without waiting; cloud-stop/cloud-start and
# publisher-stop/publisher-start restart them (the e2e failure tests). The
# PoP drains for up to 5 s on SIGTERM, within stop's 10 s.
cloud_start() {
  start ztcloud "$CLOUD" "$BIN/ztcloud" serve --roles tenant,pop --tenant "$TENANT" --state "$DIR/cloud" \
    --api 10.10.0.1:8444 --pop 10.10.0.1:8443 --names 10.10.0.1 --drain-timeout 5s
}

publisher_start() {
  start publisher "$CORP" "$BIN/ztcloud" publisher --name pub1 --token "$PUBTOKEN" \
    --tenant-url https://10.10.0.1:8444 --cacert "$DIR/cloud/ca.pem" --resolver 10.20.0.10:53 --state "$DIR/publisher"
}

# second_uplink gives the client a second way to the cloud, for moving its
# default route: P-client eth1 (10.30.0.2) ── P-cloud eth2 (10.30.0.1).
second_uplink() {
  ip link add eth1 netns "$CLIENT" type veth peer name eth2 netns "$CLOUD"
  inns "$CLIENT" ip addr add 10.30.0.2/24 dev eth1
  inns "$CLOUD" ip addr add 10.30.0.1/24 dev eth2
  inns "$CLIENT" ip link set eth1 up
  inns "$CLOUD" ip link set eth2 up
}

# agent_cmd sets AGENT to the agent's command line. Extra arguments are
# flags (-x, --x, --x=v, and the value after a flag) or install parameters
# (key=value); flags go before the parameters, where ztagent reads them.
agent_cmd() {
  local flags=() params=() a
  for a in ${EXTRA[@]+"${EXTRA[@]}"}; do
    case $a in
      -*) flags+=("$a") ;;
      *=*) params+=("$a") ;;
      *) flags+=("$a") ;;
    esac
  done
  AGENT=("$BIN/ztagent" run --state-dir "$DIR/agent" --socket "$SOCK" --log-dir "$DIR/agent-logs" ${flags[@]+"${flags[@]}"}
    host=10.10.0.1:8444 token="$ORGKEY" upn="$UPN" cacert="$DIR/cloud/ca.pem" ${params[@]+"${params[@]}"})
}

# agent_spawn starts the agent in the background without waiting for it.
agent_spawn() {
  agent_cmd
  start agent "$CLIENT" "${AGENT[@]}"
}

# agent_exec replaces this shell with the agent, logging to DIR/agent.log
# (appended): the caller owns the process and can time signals to it from
# its first instruction (the campaign test). agent.pid names it for
# agent-wait and agent-stop; the caller must reap it.
agent_exec() {
  agent_cmd
  echo $$ >"$DIR/agent.pid"
  exec >>"$DIR/agent.log" 2>&1 </dev/null 3>&-
  exec ip netns exec "$CLIENT" "${AGENT[@]}"
}

agent_start() {
  agent_spawn
  wait_for "ztagent" 30 agent_connected
}

# agent_connected reads the whole status before matching it: `ztdiag | grep
# -q` would stop reading at the first match, and under pipefail the SIGPIPE
# that ztdiag then gets with a large status reads as a failure.
agent_connected() {
  local st
  alive agent || die "ztagent exited: $(tail -5 "$DIR/agent.log")"
  st=$(inns "$CLIENT" "$BIN/ztdiag" --socket "$SOCK" status --json) || return 1
  [[ $st =~ \"state\":\ *\"connected\" ]]
}

down() {
  for name in agent publisher ztcloud web-corp web-public dns-corp dns-public; do stop "$name"; done
  for ns in $CLIENT $CLOUD $CORP; do
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
}

case ${1:-} in
  up) trap 'down' ERR; net_up; services_up
      # ZT_LAB_NOAGENT=1 leaves the agent for the caller (the e2e tests
      # snapshot the client namespace first).
      [ -n "${ZT_LAB_NOAGENT:-}" ] || agent_start
      trap - ERR
      say "up: namespaces $CLIENT $CLOUD $CORP; logs in $DIR" ;;
  down) down; say "down" ;;
  agent-start) shift; EXTRA=("$@"); agent_start ;;
  # agent-spawn starts the agent and returns at once; agent-exec becomes
  # the agent (see agent_exec); agent-wait waits until it is connected.
  agent-spawn) shift; EXTRA=("$@"); agent_spawn ;;
  agent-exec) shift; EXTRA=("$@"); agent_exec ;;
  agent-wait) wait_for "ztagent" 30 agent_connected ;;
  agent-stop) stop agent ;;
  cloud-stop) stop ztcloud ;;
  cloud-start) cloud_start ;;
  publisher-stop) stop publisher ;;
  publisher-start) publisher_start ;;
  second-uplink) second_uplink ;;
  status) ip netns list | grep "^$P-" || true
          for f in "$DIR"/*.pid; do [ -f "$f" ] && echo "$(basename "$f" .pid): $(kill -0 "$(cat "$f")" 2>/dev/null && echo running || echo dead)"; done ;;
  *) echo "usage: $0 up|down|agent-start|agent-spawn|agent-exec|agent-wait|agent-stop|cloud-stop|cloud-start|publisher-stop|publisher-start|second-uplink|status" >&2; exit 2 ;;
esac
