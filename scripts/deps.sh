#!/usr/bin/env bash
# Installs the Debian packages the lab, the e2e tests, the benchmarks and the
# packaging use.
# Idempotent and quiet when everything is there; needs root to install.
set -euo pipefail

# command:package pairs
need=(
  ip:iproute2
  curl:curl
  dig:dnsutils
  dnsmasq:dnsmasq-base
  # the lab's corporate DNS for dynamic updates (RFC 2136); the lab runs its
  # own named in a namespace with its own config, never the system service
  named:bind9
  iperf3:iperf3
  dnsperf:dnsperf
  pgrep:procps
  ping:iputils-ping
  wg:wireguard-tools
  # packaging (make package) and the tests that read the packages back
  wixl:wixl
  msiinfo:msitools
  bsdtar:libarchive-tools
  7zz:7zip
  cpio:cpio
  rpm:rpm
  dpkg-deb:dpkg
  file:file
  osslsigncode:osslsigncode
  # ztdiag -c captures are read back by tcpdump -r in a test
  tcpdump:tcpdump
)
missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: not root, so not installing them; the e2e tests and the demo need them (sudo $0)" >&2
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
