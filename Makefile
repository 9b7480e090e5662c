# ztagent — the README explains each target.
SHELL := /bin/bash
GO ?= go
BIN := bin
CMDS := ztagent ztdiag ztcloud
TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
export CGO_ENABLED ?= 0
# RUNTIME_OVERLAY builds the Go runtime with ztagent's scavenger patch when it
# applies to the toolchain (scripts/go-overlay.sh; `ztagent version` says
# so); empty, with a warning, when it does not.
RUNTIME_OVERLAY := $(shell scripts/go-overlay.sh)
RUNTIME_LDFLAGS := $(if $(RUNTIME_OVERLAY),-X main.goRuntimePatch=scavenger)

.PHONY: all build deps test unit e2e soak lint cross demo lab-up lab-down bench fuzz clean package package-e2e

all: build

deps:
	@scripts/deps.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath $(RUNTIME_OVERLAY) -ldflags '$(RUNTIME_LDFLAGS)' -o $(BIN)/ ./cmd/... ./e2e/labweb ./e2e/dnslat ./e2e/dnsfloor ./e2e/delayrelay ./e2e/ttfb ./e2e/dnssoak ./e2e/soakdns

# lint: formatting and vet for the host.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# cross: build every binary and vet every package for every supported target.
cross:
	@set -e; for t in $(TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; echo "cross: $$os/$$arch"; \
	  GOOS=$$os GOARCH=$$arch $(GO) build $(RUNTIME_OVERLAY) -o /dev/null ./cmd/...; \
	  GOOS=$$os GOARCH=$$arch $(GO) vet ./...; \
	done

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# unless_root skips the rest of a recipe line loudly without root (it ends
# with `fi`).
unless_root = if [ "$$(id -u)" -ne 0 ]; then \
	  bar=$$(printf '\043%.0s' $$(seq 58)); \
	  printf '%s\n\043\043 %s\n%s\n' "$$bar" "$@ SKIPPED: the $@ tests need root (network namespaces)" "$$bar"; \
	else

# e2e: real binaries in network namespaces; needs root, skipped loudly without.
# It includes the campaign's fast form (8 rounds of random kills).
e2e: build
	@$(unless_root) ZT_E2E=1 $(GO) test -count=1 -timeout 45m -v ./e2e/; fi

# package-e2e: only the installed-package tests (also part of e2e): the deb
# and rpm installed into an overlay copy of the root inside the lab.
package-e2e: build
	@$(unless_root) ZT_E2E=1 $(GO) test -count=1 -timeout 10m -v -run '^TestPackage' ./e2e/; fi

# soak: the campaign's long form: SOAK_ROUNDS rounds of the agent killed at
# random moments (ZT_CAMPAIGN_SEED=<seed> replays a logged schedule); the
# failure timings with the agent stopped a full minute (20 s under e2e);
# the DNS soak for 10 minutes at 20,000 queries/s (20 s at 5,000 under e2e);
# and the agent offline for 5 minutes (30 s under e2e).
SOAK_ROUNDS ?= 50
soak: build
	@$(unless_root) ZT_E2E=1 ZT_CAMPAIGN_ROUNDS=$(SOAK_ROUNDS) ZT_WAKE_STOP=60s ZT_DNS_SOAK=10m ZT_DNS_SOAK_QPS=20000 ZT_OFFLINE=5m \
	  $(GO) test -count=1 -timeout 80m -v \
	  -run '^(TestCampaign|TestFailures|TestDNSSoak|TestOfflineCost)$$' ./e2e/; fi

test: deps lint cross unit e2e

demo: deps build
	@scripts/demo.sh

lab-up: deps build
	@scripts/lab.sh up

lab-down:
	@scripts/lab.sh down

# bench: Go benchmarks (each against a reference in the same run), then the
# namespace benchmarks (iperf3 through the tunnel vs wireguard-go and the
# direct path, and the time to first byte of a new flow; dnsperf against
# dnsmasq and the direct upstream). Root for the namespace half. Among
# the Go benchmarks, cloud/pop's IdleFlows holds 10,000 flows (memory per idle
# flow, failed connects, dropped SYNs, memory after close; its two child
# processes need ~10,100 descriptors each) and Reconnect waits out an 8 s PoP
# outage; each runs once. Last, the idle agent with 10,000 apps three times
# against issue 15's goal of 25 MB RSS (TestIdleRSS10k with ZT_IDLE_RSS_GOAL).
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./steering/ ./tunnel/... ./dnsproxy/ ./enroll/... ./cloud/...
	@scripts/bench.sh
	@scripts/bench-dns.sh
	@scripts/bench-l3e.sh
	@$(unless_root) set -o pipefail; ZT_E2E=1 ZT_IDLE_RSS_GOAL=1 $(GO) test -count=3 -v -run '^TestIdleRSS10k$$' ./e2e/ | grep -E 'idle with|runtime patch|^(---|ok|FAIL)'; fi

FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz: $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

# package: the installers in $(DIST)/: deb and rpm for linux amd64 and arm64
# (nfpm as a library), the MSI for windows/amd64 (wixl), and a flat pkg for
# each macOS architecture (written in Go); packaging/cmd/mkpkg builds them
# from binaries cross-built here with the version stamped in.
# OSSLSIGN, when set, holds osslsigncode's signing options (e.g. `-pkcs12
# cert.p12 -readpass pass.txt -t http://timestamp.example.com`): the Windows
# binaries are then signed before they go into the MSI, and the MSI after.
# Unset (the default), nothing is signed.
# WINTUN is the path of wintun.dll (amd64, signed, from the wintun.net
# release zip's bin/amd64/), shipped in the MSI next to ztagent.exe. Unset,
# the MSI is named …-nowintun.msi and its agent cannot start until the DLL is
# put there by hand.
WINTUN ?=
VERSION ?= 0.1.0
DIST ?= dist
OSSLSIGN ?=
PKG_LDFLAGS := -s -w -X main.version=$(VERSION) $(RUNTIME_LDFLAGS)
osslsign = if [ -n "$(OSSLSIGN)" ]; then osslsigncode sign $(OSSLSIGN) -in "$(1)" -out "$(1).signed" && mv "$(1).signed" "$(1)"; fi

package:
	@set -e; rm -rf $(DIST); mkdir -p $(DIST)/build; \
	$(GO) build -o $(DIST)/build/mkpkg ./packaging/cmd/mkpkg; \
	build() { GOOS=$$1 GOARCH=$$2 $(GO) build -trimpath $(RUNTIME_OVERLAY) -ldflags '$(PKG_LDFLAGS)' -o $(DIST)/build/$$1-$$2/ ./cmd/ztagent ./cmd/ztdiag; }; \
	for arch in amd64 arm64; do \
	  build linux $$arch; $(DIST)/build/mkpkg -format deb,rpm -arch $$arch -version $(VERSION) -bin $(DIST)/build/linux-$$arch -out $(DIST); \
	  build darwin $$arch; $(DIST)/build/mkpkg -format pkg -arch $$arch -version $(VERSION) -bin $(DIST)/build/darwin-$$arch -out $(DIST); \
	done; \
	build windows amd64; \
	for exe in $(DIST)/build/windows-amd64/*.exe; do $(call osslsign,$$exe); done; \
	msi=$$($(DIST)/build/mkpkg -format msi -arch amd64 -version $(VERSION) -bin $(DIST)/build/windows-amd64 -out $(DIST) -wintun "$(WINTUN)"); \
	echo "$$msi"; $(call osslsign,$$msi); \
	rm -rf $(DIST)/build; ls -l $(DIST)

clean:
	rm -rf $(BIN) e2e.out $(DIST)
