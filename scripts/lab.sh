#!/usr/bin/env bash
# The ztagent lab: three network namespaces on this machine.
#
#   P-client (10.10.0.2)  ──veth──  P-cloud (10.10.0.1 | 10.20.0.1)  ──veth──  P-corp (10.20.0.10, .11, .12)
#   ztagent, curl, dig               ztcloud tenant API :8444, PoP :8443        ztcloud publisher
#                                    "public" DNS (dnsmasq) :53, web :80         corp DNS (dnsmasq) 10.20.0.10:53 (dns.corp.test)
#                                                                                  └─ forwards corp.test to ─┐
#                                                                                corp-dns (BIND9 named) 10.20.0.12:53,
#                                                                                  primary for corp.test, dynamic updates
#                                                                                web :80 :8080, UDP echo :7
#
# P-cloud does not forward IPv4, so the client can reach the corporate network
# over IPv4 only through the agent → PoP → publisher path.
#
# IPv6 runs beside IPv4 (the IPv6 e2e tests): P-client fd00:10::2, P-cloud
# fd00:10::1 | fd00:20::1, P-corp fd00:20::10 (the web server, also the ipapp
# app's IPv6 address) and fd00:20::20 (a web server no app covers). P-cloud
# forwards IPv6, so a packet the agent leaked to a corporate IPv6 address would
# arrive; its Ip6OutForwDatagrams counts every such packet.
#
# corp.test lives in named (corp-dns.corp.test, 10.20.0.12), which accepts RFC
# 2136 updates signed with the TSIG key ztagent-ddns. (hmac-sha256) and keeps
# its zone and journal in $DIR/named. Its static records are what dnsmasq
# answered alone before: corp.test and *.corp.test → 10.20.0.10, pdns.corp.test
# and *.pdns.corp.test → 10.20.0.11, TTL 60, NODATA for other types; so every
# name resolves as it did, and a laptop's registered name resolves through
# either server. dnsmasq forwards corp.test to named without caching, so a
# registration or removal is seen at once through 10.20.0.10 too.
#
# Usage: lab.sh up|down|agent-start [ztagent flags] [key=value...]|agent-spawn|agent-exec|agent-wait|agent-stop|
#   cloud-stop|cloud-start|publisher-stop|publisher-start|second-uplink|corp-uplink|corp-uplink-down|hotel|hotel-open|other-vpn|
#   gateway-start|gateway-stop|soak-dns|status
# Environment: ZT_LAB (namespace prefix, default "zt"), ZT_LAB_API, ZT_LAB_POP,
# ZT_LAB_HOST (ztcloud's listen addresses and the agent's host=, see below), ZT_LAB_DIR (state and
# logs, default .lab/$ZT_LAB), ZT_BIN (binaries, default bin), ZT_TENANT
# (tenant file, default testdata/tenants/demo.yaml), ZT_UPN (default alice@demo.test),
# ZT_ORGKEY and ZT_PUBTOKEN (the tenant file's org key and publisher token),
# ZT_LAB_PATH_MTU (an MTU black hole between client and cloud: see uplink_link).
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
CLIENT=$P-client CLOUD=$P-cloud CORP=$P-corp HOTEL=$P-hotel MID=$P-mid
# Where ztcloud listens and which tenant API address the agent enrolls with;
# an IPv6-only client (e2e TestIPv6Only) uses ":8444", ":8443" (every
# address, IPv6 too) and "[fd00:10::1]:8444".
API_LISTEN=${ZT_LAB_API:-10.10.0.1:8444} POP_LISTEN=${ZT_LAB_POP:-10.10.0.1:8443} API_HOST=${ZT_LAB_HOST:-10.10.0.1:8444}

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
  [ -x /usr/sbin/named ] || die "/usr/sbin/named missing: run make deps (Debian package bind9)"
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
  uplink_link
  ip link add eth0 netns "$CORP" type veth peer name eth1 netns "$CLOUD"
  inns "$CLIENT" ip addr add 10.10.0.2/24 dev eth0
  inns "$CLOUD" ip addr add 10.10.0.1/24 dev eth0
  inns "$CLOUD" ip addr add 10.20.0.1/24 dev eth1
  inns "$CORP" ip addr add 10.20.0.10/24 dev eth0
  inns "$CORP" ip addr add 10.20.0.11/24 dev eth0  # the publisher-DNS app's server
  inns "$CORP" ip addr add 10.20.0.12/24 dev eth0  # corp-dns: BIND9, dynamic updates
  inns "$CLIENT" ip addr add fd00:10::2/64 dev eth0
  inns "$CLOUD" ip addr add fd00:10::1/64 dev eth0
  inns "$CLOUD" ip addr add fd00:20::1/64 dev eth1
  inns "$CORP" ip addr add fd00:20::10/64 dev eth0
  inns "$CORP" ip addr add fd00:20::20/64 dev eth0
  for ns in $CLIENT $CLOUD $CORP; do inns "$ns" ip link set eth0 up; done
  inns "$CLOUD" ip link set eth1 up
  inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=1
  # The publisher pings apps' hosts for clients with unprivileged ICMP
  # sockets; the kernel allows them to the groups in this range (IPv6 too).
  inns "$CORP" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  inns "$CLIENT" ip route add default via 10.10.0.1
  inns "$CORP" ip route add 10.10.0.0/24 via 10.20.0.1
  inns "$CLIENT" ip -6 route add default via fd00:10::1
  inns "$CORP" ip -6 route add fd00:10::/64 via fd00:20::1
  # Each namespace gets its own resolv.conf: without it, `ip netns exec` shows
  # the host's file, and the agent would rewrite the host's resolver.
  for ns in $CLIENT $CLOUD $CORP; do mkdir -p "/etc/netns/$ns"; done
  printf 'nameserver 10.10.0.1\n' >"/etc/netns/$CLIENT/resolv.conf"
  printf 'nameserver 10.10.0.1\n' >"/etc/netns/$CLOUD/resolv.conf"
  printf 'nameserver 10.20.0.10\n' >"/etc/netns/$CORP/resolv.conf"
  cp "/etc/netns/$CLIENT/resolv.conf" "$DIR/client-resolv.conf.orig"
}

# uplink_link joins P-client eth0 and P-cloud eth0. With ZT_LAB_PATH_MTU set
# it puts an MTU black hole between them: a bridge in P-mid whose port
# towards the cloud has that MTU, while both ends' interfaces keep 1500. A
# bridge drops a frame larger than the port's MTU, either way, without a word:
# it is no router, so no ICMP "fragmentation needed" ever comes back and path
# MTU discovery cannot learn of the hop, as behind a router whose ICMP is
# filtered. A veth hands TCP's large GSO packets across whole, and the
# bridge lets them pass unchecked; a NIC would cut them into frames of the
# interface's MTU (TSO), so both ends send one segment per packet
# (gso_max_segs 1), frames of 1500 bytes, as on a wire.
uplink_link() {
  if [ -z "${ZT_LAB_PATH_MTU:-}" ]; then
    ip link add eth0 netns "$CLIENT" type veth peer name eth0 netns "$CLOUD"
    return
  fi
  ip netns add "$MID"
  ip link add eth0 netns "$CLIENT" type veth peer name c0 netns "$MID"
  ip link add eth0 netns "$CLOUD" type veth peer name p0 netns "$MID"
  inns "$MID" ip link add br0 type bridge
  inns "$MID" ip link set c0 master br0
  inns "$MID" ip link set p0 master br0 mtu "$ZT_LAB_PATH_MTU"
  for l in c0 p0 br0; do inns "$MID" ip link set "$l" up; done
  inns "$CLIENT" ip link set eth0 gso_max_segs 1
  inns "$CLOUD" ip link set eth0 gso_max_segs 1
}

# soak_dns replaces the "public" dnsmasq with e2e/soakdns for the DNS soak:
# the same names, but answers with a TTL (dnsmasq's are TTL 0, never cached)
# from sockets that keep up with the soak's rate (see e2e/soakdns). It runs
# under dnsmasq's name, so that down stops it.
soak_dns() {
  stop dns-public
  start dns-public "$CLOUD" "$BIN/soakdns" -listen 10.10.0.1:53 -zone public.test -nx nx.test -addr 10.10.0.1 -ttl 300
  wait_for "soakdns" 10 inns "$CLOUD" dig +short +time=1 +tries=1 @10.10.0.1 www.public.test
}

services_up() {
  # "Public" DNS and web in the cloud namespace; corporate DNS and web in corp.
  start dns-public "$CLOUD" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.10.0.1 --address=/public.test/10.10.0.1 --address=/nx.test/ \
    --pid-file="$DIR/dnsmasq-public.pid2"  # --address=/nx.test/: NXDOMAIN for the DNS soak
  # The corporate DNS: named holds corp.test (see the header); dnsmasq, the
  # address the corporate hosts use, forwards it there without a cache.
  named_start
  wait_for "named (corp-dns)" 20 named_serving
  start dns-corp "$CORP" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.20.0.10 --server=/corp.test/10.20.0.12 --cache-size=0 --pid-file="$DIR/dnsmasq-corp.pid2"
  start web-public "$CLOUD" "$BIN/labweb" --name public --listen 10.10.0.1:80
  start web-corp "$CORP" "$BIN/labweb" --name corp --listen 10.20.0.10:80 --listen 10.20.0.10:8080 --listen 10.20.0.11:80 \
    --listen '[fd00:20::10]:80' --listen '[fd00:20::20]:80' --udp-echo 10.20.0.10:7
  cloud_start
  wait_for "ztcloud tenant API" 20 test -s "$DIR/cloud/ca.pem"
  wait_for "ztcloud tenant API" 20 inns "$CLIENT" curl -sf --cacert "$DIR/cloud/ca.pem" https://10.10.0.1:8444/v1/health
  publisher_start
  wait_for "public web" 10 inns "$CLIENT" curl -sf http://10.10.0.1/
}

# The TSIG key corp-dns accepts updates with; the gateway's L3E template
# pushes the same one.
DDNS_KEY_NAME=ztagent-ddns.
DDNS_KEY_SECRET=dNtRwXD+n6KEQ8egiN9ytSBpETkvZc41RdcYLo2Qx8M=

# named_start starts BIND9 in the corporate namespace as corp-dns
# (10.20.0.12), primary for corp.test with dynamic updates. Everything it
# reads and writes is under $DIR/named: config, zone, journal, pid; it runs
# in the foreground (-g, logging to named.log), as root, never as the system
# service and never reading /etc/bind (rndc is off: empty controls).
named_start() {
  local d=$DIR/named
  mkdir -p "$d"
  (umask 077 && cat >"$d/named.conf") <<EOF
key "$DDNS_KEY_NAME" { algorithm hmac-sha256; secret "$DDNS_KEY_SECRET"; };
controls { };
options {
  directory "$d";
  pid-file "$d/named.pid";
  session-keyfile "$d/session.key";
  managed-keys-directory "$d";
  listen-on port 53 { 10.20.0.12; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
zone "corp.test" {
  type primary;
  file "corp.test.zone";
  allow-update { key "$DDNS_KEY_NAME"; };
};
EOF
  cat >"$d/corp.test.zone" <<'EOF'
$TTL 60
@          IN SOA  corp-dns.corp.test. hostmaster.corp.test. 1 3600 600 86400 5
@          IN NS   corp-dns.corp.test.
@          IN A    10.20.0.10
*          IN A    10.20.0.10
corp-dns   IN A    10.20.0.12
pdns       IN A    10.20.0.11
*.pdns     IN A    10.20.0.11
EOF
  start named "$CORP" /usr/sbin/named -g -4 -n 1 -c "$d/named.conf"
}

# named_serving is true once named answers with the zone it loaded.
named_serving() {
  alive named || die "named exited: $(tail -5 "$DIR/named.log")"
  [[ $(inns "$CORP" dig +short +time=1 +tries=1 @10.20.0.12 corp.test SOA) == corp-dns.corp.test.* ]]
}

# cloud_start and publisher_start start ztcloud (tenant API and PoP) and the
# publisher without waiting; cloud-stop/cloud-start and
# publisher-stop/publisher-start restart them (the e2e failure tests). The
# PoP drains for up to 5 s on SIGTERM, within stop's 10 s.
cloud_start() {
  start ztcloud "$CLOUD" "$BIN/ztcloud" serve --roles tenant,pop --tenant "$TENANT" --state "$DIR/cloud" \
    --api "$API_LISTEN" --pop "$POP_LISTEN" --names 10.10.0.1,fd00:10::1 --drain-timeout 5s
}

publisher_start() {
  start publisher "$CORP" "$BIN/ztcloud" publisher --name pub1 --token "$PUBTOKEN" \
    --tenant-url https://10.10.0.1:8444 --cacert "$DIR/cloud/ca.pem" --resolver 10.20.0.10:53 --state "$DIR/publisher"
}

# gateway_start starts the L3E gateway (a tenant file with an l3e section,
# e.g. testdata/tenants/l3e.yaml) in P-cloud on UDP 10.10.0.1:443, with its
# TUN ztgw0 holding the pool's first address, and makes P-cloud forward only
# what the gateway needs: packets from ztgw0 go where the main table says,
# any other forwarded packet may only go into the pool (ztgw0), so the client
# still cannot reach the corporate network (nor it the client) but through
# a tunnel. Locally made packets (iif lo) keep the main table. P-corp routes
# the pool via P-cloud. Status counters: curl 127.0.0.1:8445/status in P-cloud.
gateway_start() {
  local pool=10.77.0.0/24 gw=10.77.0.1/24
  start gateway "$CLOUD" "$BIN/ztcloud" gateway --tenant "$TENANT" --state "$DIR/cloud" \
    --gateway 10.10.0.1:443 --gateway-tun ztgw0 --gateway-status 127.0.0.1:8445 --names 10.10.0.1
  wait_for "L3E gateway TUN" 20 inns "$CLOUD" ip link show ztgw0
  inns "$CLOUD" ip addr add "$gw" dev ztgw0
  inns "$CLOUD" ip link set ztgw0 up
  inns "$CLOUD" ip route replace "$pool" dev ztgw0 table 100
  inns "$CLOUD" ip rule add prio 100 iif lo lookup main
  inns "$CLOUD" ip rule add prio 101 iif ztgw0 lookup main
  inns "$CLOUD" ip rule add prio 102 lookup 100
  inns "$CLOUD" ip rule add prio 103 unreachable
  inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=1
  inns "$CORP" ip route replace "$pool" via 10.20.0.1
  wait_for "L3E gateway" 20 inns "$CLOUD" curl -sf http://127.0.0.1:8445/status
}

gateway_stop() {
  stop gateway
  inns "$CLOUD" sysctl -qw net.ipv4.ip_forward=0 2>/dev/null || true
  for prio in 100 101 102 103; do inns "$CLOUD" ip rule del prio "$prio" 2>/dev/null || true; done
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

# corp_uplink puts the client on the corporate network as well (on-premises
# detection): P-client eth2 (10.40.0.2) ── P-corp eth1 (10.40.0.1), with the
# corporate prefix routed that way; corp-uplink-down takes it away again.
corp_uplink() {
  ip link add eth2 netns "$CLIENT" type veth peer name eth1 netns "$CORP"
  inns "$CLIENT" ip addr add 10.40.0.2/24 dev eth2
  inns "$CORP" ip addr add 10.40.0.1/24 dev eth1
  inns "$CORP" ip link set eth1 up
  inns "$CLIENT" ip link set eth2 up
  inns "$CLIENT" ip route add 10.20.0.0/24 via 10.40.0.1 dev eth2
}

# hotel moves the client onto a hotel's network behind a captive portal, as
# joining its Wi-Fi does: P-client eth3 (10.60.0.2) ── P-hotel eth0 (10.60.0.1),
# P-hotel eth1 (10.70.0.2) ── P-cloud eth3 (10.70.0.1). The client loses its
# first uplink's address, its default route and resolver become the hotel's.
# Until hotel-open the hotel's DNS answers every name with the portal's
# address, its web server answers every request with a redirect to the login
# page, and it forwards nothing (prohibited: the PoP is refused at once).
hotel() {
  ip netns add "$HOTEL"
  inns "$HOTEL" ip link set lo up
  ip link add eth3 netns "$CLIENT" type veth peer name eth0 netns "$HOTEL"
  ip link add eth1 netns "$HOTEL" type veth peer name eth3 netns "$CLOUD"
  inns "$HOTEL" ip addr add 10.60.0.1/24 dev eth0
  inns "$HOTEL" ip addr add 10.70.0.2/24 dev eth1
  inns "$CLOUD" ip addr add 10.70.0.1/24 dev eth3
  inns "$HOTEL" ip link set eth0 up
  inns "$HOTEL" ip link set eth1 up
  inns "$CLOUD" ip link set eth3 up
  inns "$CLOUD" ip route add 10.60.0.0/24 via 10.70.0.2
  inns "$HOTEL" ip route add default via 10.70.0.1
  inns "$HOTEL" sysctl -qw net.ipv4.ip_forward=1
  inns "$HOTEL" ip rule add priority 5 iif eth0 prohibit
  mkdir -p "/etc/netns/$HOTEL"
  printf 'nameserver 10.70.0.1\n' >"/etc/netns/$HOTEL/resolv.conf"
  start hotel-dns "$HOTEL" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.60.0.1 --address=/#/10.60.0.1 --pid-file="$DIR/dnsmasq-hotel.pid2"
  start hotel-web "$HOTEL" "$BIN/labweb" --name hotel --listen 10.60.0.1:80 --redirect http://login.hotel.test/login
  wait_for "hotel portal" 10 inns "$HOTEL" curl -s -o /dev/null http://10.60.0.1/
  inns "$CLIENT" ip link set eth3 up
  inns "$CLIENT" ip addr add 10.60.0.2/24 dev eth3
  inns "$CLIENT" ip addr del 10.10.0.2/24 dev eth0
  inns "$CLIENT" ip route replace default via 10.60.0.1 dev eth3
  # As DHCP would: in place (the file is bind-mounted, see DESIGN.md).
  printf 'nameserver 10.60.0.1\n' >"/etc/netns/$CLIENT/resolv.conf"
}

# hotel_open is the user signing in to the portal: the hotel forwards, and
# its DNS passes questions on to the cloud's resolver.
hotel_open() {
  inns "$HOTEL" ip rule del priority 5
  stop hotel-dns
  start hotel-dns "$HOTEL" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.60.0.1 --server=10.10.0.1 --pid-file="$DIR/dnsmasq-hotel.pid2"
}

# other_vpn brings up another VPN in the client before the agent starts: it
# owns 100.64.0.0/10 (othervpn, one end of a veth pair: the kernel here may
# have no dummy devices) and is the client's resolver
# (100.100.100.100: its names under othervpn.test, the rest forwarded to the
# cloud's resolver).
other_vpn() {
  inns "$CLIENT" ip link add othervpn type veth peer name othervpnp
  inns "$CLIENT" ip link set othervpnp up
  inns "$CLIENT" ip link set othervpn up
  inns "$CLIENT" ip addr add 100.100.100.100/32 dev othervpn
  inns "$CLIENT" ip route add 100.64.0.0/10 dev othervpn
  start dns-othervpn "$CLIENT" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=100.100.100.100 --address=/othervpn.test/100.64.7.7 --server=10.10.0.1 \
    --pid-file="$DIR/dnsmasq-othervpn.pid2"
  wait_for "the other VPN's DNS" 10 inns "$CLIENT" dig +short +time=1 +tries=1 @100.100.100.100 a.othervpn.test
  printf 'nameserver 100.100.100.100\n' >"/etc/netns/$CLIENT/resolv.conf"
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
  # The laptop has a host name of its own (ZT_HOSTNAME, default laptop1), in
  # a UTS namespace of the agent's, never the host's: what the agent
  # registers in the corporate DNS over L3E.
  AGENT=(unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "${ZT_HOSTNAME:-laptop1}"
    "$BIN/ztagent" run --state-dir "$DIR/agent" --socket "$SOCK" --log-dir "$DIR/agent-logs" ${flags[@]+"${flags[@]}"}
    host="$API_HOST" token="$ORGKEY" upn="$UPN" cacert="$DIR/cloud/ca.pem" ${params[@]+"${params[@]}"})
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
  for name in agent gateway publisher ztcloud web-corp web-public dns-corp named dns-public hotel-web hotel-dns dns-othervpn; do stop "$name"; done
  for ns in $CLIENT $CLOUD $CORP $HOTEL $MID; do
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
  corp-uplink) corp_uplink ;;
  corp-uplink-down) ip -n "$CLIENT" link del eth2 ;;
  hotel) hotel ;;
  hotel-open) hotel_open ;;
  other-vpn) other_vpn ;;
  gateway-start) gateway_start ;;
  gateway-stop) gateway_stop ;;
  soak-dns) soak_dns ;;
  status) ip netns list | grep "^$P-" || true
          for f in "$DIR"/*.pid; do [ -f "$f" ] && echo "$(basename "$f" .pid): $(kill -0 "$(cat "$f")" 2>/dev/null && echo running || echo dead)"; done ;;
  *) echo "usage: $0 up|down|agent-start|agent-spawn|agent-exec|agent-wait|agent-stop|cloud-stop|cloud-start|publisher-stop|publisher-start|second-uplink|corp-uplink|corp-uplink-down|hotel|hotel-open|other-vpn|gateway-start|gateway-stop|status" >&2; exit 2 ;;
esac
