#!/usr/bin/env bash
# scripts/smoke.sh: the smoke test of one real machine, for the hosted macOS
# runner (.github/workflows/platforms.yml); it runs on Linux too. Windows has
# scripts/smoke.ps1, which does the same.
#
# ztcloud (tenant API and PoP), a publisher, its resolver (e2e/smokedns) and a
# web server (e2e/labweb) run on loopback; the agent runs in the foreground
# (as root: sudo when not root), http://web.smoke.test:8080/ is fetched by
# name through it, then the agent is stopped and the OS resolver and routing
# table must be as they were before it started. Exits non-zero, saying which
# step failed, if any does.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${ZT_SMOKE_DIR:-$ROOT/.smoke}
BIN=$DIR/bin
SOCK=$DIR/agent.sock
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
OS=$(uname -s)
PIDS=()

say() { printf '\n\033[1msmoke: %s\033[0m\n' "$*" >&2; }
fail() {
  echo "smoke FAILED: $*" >&2
  for f in "$DIR"/*.log; do echo "--- $f (last lines)"; tail -n 30 "$f"; done >&2
  exit 1
}
cleanup() {
  for p in ${PIDS[@]+"${PIDS[@]}"}; do $SUDO kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start NAME CMD... runs CMD in the background, logging to DIR/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$DIR/$name.log" 2>&1 </dev/null &
  PIDS+=("$!")
  eval "PID_$name=$!"
}

# wait_for DESC SECONDS CMD... retries CMD until it succeeds.
wait_for() {
  local desc=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "$desc did not come up within ${secs}s"
}

# snapshot prints the OS resolver configuration and routing table, less
# what changes by itself (cloned and link-layer entries, counters).
snapshot() {
  case $OS in
    Darwin)
      echo "# /etc/resolver"
      for f in /etc/resolver/*; do [ -f "$f" ] && { echo "== $f"; cat "$f"; }; done
      echo "# scutil --dns"
      scutil --dns | { grep -E '^\s*(nameserver|domain|search domain)\[' || true; } | sort -u
      echo "# routes"
      netstat -rn | awk 'NR > 3 && $3 !~ /[WL]/ {print $1, $2, $4}' | sort -u ;;
    Linux)
      echo "# /etc/resolv.conf"; cat /etc/resolv.conf
      echo "# rules"; ip rule; ip -6 rule
      echo "# routes"; ip route show table all | { grep -v '^\(local\|broadcast\|multicast\) ' || true; } | sort ;;
    *) fail "unsupported OS $OS (Windows: scripts/smoke.ps1)" ;;
  esac
}

agent_connected() {
  local st
  st=$("$BIN/ztdiag" --socket "$SOCK" status --json) || return 1
  [[ $st =~ \"state\":\ *\"connected\" ]]
}

say "build"
rm -rf "$DIR"
mkdir -p "$BIN" "$DIR/secrets"
go build -o "$BIN/" ./cmd/ztagent ./cmd/ztcloud ./cmd/ztdiag ./e2e/labweb ./e2e/smokedns
(umask 077
 printf '%s\n' smoke-org-key-5d2a9c1e7b40f386 >"$DIR/secrets/org.key"
 printf '%s\n' smoke-publisher-token-71c0e4a9b2d8 >"$DIR/secrets/publisher.token")

say "snapshot the resolver and the routes"
snapshot >"$DIR/before.txt" || fail "snapshot"

say "start ztcloud, the publisher, its resolver and the web server on loopback"
start smokedns "$BIN/smokedns" --listen 127.0.0.1:5353 --zone smoke.test --addr 127.0.0.1
start labweb "$BIN/labweb" --name smoke --listen 127.0.0.1:8080
start ztcloud "$BIN/ztcloud" serve --roles tenant,pop --tenant testdata/tenants/smoke.yaml --state "$DIR/cloud" \
  --api 127.0.0.1:8444 --pop 127.0.0.1:8443 --names 127.0.0.1 --drain-timeout 2s
wait_for "ztcloud tenant API" 30 curl -sf --cacert "$DIR/cloud/ca.pem" https://127.0.0.1:8444/v1/health
start publisher "$BIN/ztcloud" publisher --name pub1 --token "@$DIR/secrets/publisher.token" \
  --tenant-url https://127.0.0.1:8444 --cacert "$DIR/cloud/ca.pem" --resolver 127.0.0.1:5353 --state "$DIR/publisher"
wait_for "web server" 10 curl -sf http://127.0.0.1:8080/

say "start the agent in the foreground"
start agent $SUDO "$BIN/ztagent" run --state-dir "$DIR/agent" --socket "$SOCK" --log-dir "$DIR/agent-logs" --log-level debug \
  host=127.0.0.1:8444 token="@$DIR/secrets/org.key" upn=alice@smoke.test cacert="$DIR/cloud/ca.pem"
wait_for "ztagent" 60 agent_connected
"$BIN/ztdiag" --socket "$SOCK" status || fail "ztdiag status"

say "fetch http://web.smoke.test:8080/ by name through agent -> PoP -> publisher"
page=
for _ in $(seq 20); do
  page=$(curl -sS --max-time 10 http://web.smoke.test:8080/ 2>>"$DIR/curl.log") && break
  sleep 0.5
done
echo "$page"
[[ $page == *"hello from smoke web"* ]] || fail "did not fetch the page by name (got '$page')"
[[ $page == *"host=web.smoke.test:8080"* ]] || fail "the page was not asked for by name"

say "stop the agent"
# shellcheck disable=SC2154 # set by start
$SUDO kill -TERM "$PID_agent"
for _ in $(seq 150); do $SUDO kill -0 "$PID_agent" 2>/dev/null || break; sleep 0.2; done
$SUDO kill -0 "$PID_agent" 2>/dev/null && fail "the agent did not stop within 30s"

say "the resolver and the routes are as they were"
# The OS may take a moment to apply a restored resolver (mDNSResponder
# rereads /etc/resolver when it notices the change).
same=
for _ in $(seq 10); do
  snapshot >"$DIR/after.txt" || fail "snapshot"
  if cmp -s "$DIR/before.txt" "$DIR/after.txt"; then same=1; break; fi
  sleep 1
done
if [ -z "$same" ]; then
  diff -u "$DIR/before.txt" "$DIR/after.txt" || true
  fail "the resolver or the routes differ after the agent stopped (diff above)"
fi
[ ! -e "$DIR/agent/routes.journal" ] || fail "the router's journal is still there"
echo; echo "smoke OK"
