#!/usr/bin/env bash
# make demo: the whole flow in namespaces on this machine. Brings up the lab
# (scripts/lab.sh), fetches a private app by name from the client namespace,
# prints the page and `ztdiag status`, and tears everything down. Exits
# non-zero, saying which step failed, if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZT_LAB=${ZT_LAB:-ztdemo}
LAB="scripts/lab.sh"
DIR=$PWD/.lab/$ZT_LAB
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo FAILED: $*" >&2; for f in "$DIR"/*.log; do echo "--- $f (last lines)"; tail -n 8 "$f"; done >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "the demo needs root (it creates network namespaces)"

trap '$LAB down >/dev/null 2>&1 || true' EXIT
step "bring up the lab: namespaces $ZT_LAB-client, $ZT_LAB-cloud, $ZT_LAB-corp; ztcloud, publisher, ztagent"
$LAB up || fail "lab did not come up"
C="ip netns exec $ZT_LAB-client"
SOCK="$DIR/agent.sock"

step "resolve web.corp.test from the client (answered by ztagent with a stub address)"
addr=$($C dig +short web.corp.test) || fail "dig web.corp.test"
echo "web.corp.test -> $addr"
[[ $addr == 100.* ]] || fail "web.corp.test did not resolve to a stub address (got '$addr')"

step "fetch http://web.corp.test/ by name through agent -> PoP -> publisher"
page=$($C curl -sS --max-time 10 http://web.corp.test/) || fail "curl http://web.corp.test/"
echo "$page"
[[ $page == *"hello from corp web"* ]] || fail "unexpected page"

step "UDP through the tunnel: the corporate resolver answers dig @dns.corp.test (a UDP app)"
ans=$($C dig +short +time=3 +tries=2 @dns.corp.test anything.corp.test) || fail "dig @dns.corp.test"
echo "$ans"
[[ $ans == 10.20.0.10 ]] || fail "dig @dns.corp.test answered '$ans', want the corporate 10.20.0.10"

step "ping web.corp.test: real echo replies from the corporate host, through the publisher"
$C ping -c 3 -i 0.2 -W 3 web.corp.test || fail "ping web.corp.test"

step "a public name goes direct, through the original resolver"
$C curl -sS --max-time 10 http://www.public.test/ || fail "curl http://www.public.test/"

step "secrets stay out of the process list: the agent and the publisher read them from files"
ps -o pid=,args= -p "$(cat "$DIR/agent.pid"),$(cat "$DIR/publisher.pid")" || fail "ps"
args=$(ps -o args= -p "$(cat "$DIR/agent.pid"),$(cat "$DIR/publisher.pid")")
for secret in "$DIR"/secrets/*; do
  [[ $args != *"$(<"$secret")"* ]] || fail "the secret of $secret is visible in ps"
done
echo "no secret in ps; the files are readable by root only: $(stat -c '%A %n' "$DIR"/secrets/* | tr '\n' ' ')"

step "ztdiag status"
$C bin/ztdiag --socket "$SOCK" status || fail "ztdiag status"

step "stop the agent: resolv.conf restored"
$LAB agent-stop
cmp "$DIR/client-resolv.conf.orig" "/etc/netns/$ZT_LAB-client/resolv.conf" || fail "resolv.conf not restored"
echo "resolv.conf is byte-identical to the original"
echo; echo "demo OK"
