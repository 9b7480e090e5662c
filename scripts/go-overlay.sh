#!/usr/bin/env bash
# go-overlay.sh prints the `go build` flag that builds the Go runtime with
# ztagent's one patch (below), or nothing when the patch does not apply to the
# toolchain in use; the Makefile adds what it prints to the release builds.
#
# The patch works around a bug of the runtime's scavenger (Go 1.26.8 and
# 1.27.4 at least): scavengeOne searches a chunk only below the background
# scavenger's cursor, and when it finds nothing there it marks the whole chunk
# as having nothing to return (setEmpty), though pages freed above the cursor
# since are free and resident. Forced scavenging (debug.FreeOSMemory) skips
# chunks so marked, so those pages stay resident until a later free in the
# chunk clears the mark: 0-3 MB of the idle agent with 10,000 apps, 6.7 MB in
# one run (README, "The Go runtime patch"). The patch makes scavengeAll (the
# scavenge of debug.FreeOSMemory, and only it) clear every chunk's mark and
# start from the top of the heap, so it sees every free page; the background
# scavenger, which leaves recently freed pages alone on purpose, is unchanged.
#
# It rewrites a copy of $GOROOT/src/runtime/mheap.go and writes an overlay
# file (go help build, -overlay) under .build/; the toolchain itself is not
# touched. Exactly one line must match, or the patch is not applied and a
# warning says so: a toolchain that changed the function gets the build
# without the patch, never a half-patched runtime.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/.build/goruntime
goroot=$(${GO:-go} env GOROOT 2>/dev/null) || exit 0
src=$goroot/src/runtime/mheap.go
line=$'\treleased := h.pages.scavenge(^uintptr(0), nil, true)'

if [ ! -f "$src" ] || [ "$(grep -cxF -- "$line" "$src")" != 1 ]; then
	echo "go-overlay.sh: the scavenger patch does not apply to $(${GO:-go} version); building without it" >&2
	exit 0
fi

mkdir -p "$out"
patched=$out/mheap.go
awk -v line="$line" '
	$0 == line {
		print "\t// ztagent patch (scripts/go-overlay.sh): a background pass that"
		print "\t// searched a chunk below its cursor only may have marked it empty"
		print "\t// with free pages above; clear every mark and search from the top."
		print "\tlock(&h.lock)"
		print "\tfor ci := h.pages.start; ci < h.pages.end; ci++ {"
		print "\t\tif h.pages.chunks[ci.l1()] == nil {"
		print "\t\t\tcontinue"
		print "\t\t}"
		print "\t\tsc := h.pages.scav.index.chunks[ci].load()"
		print "\t\tsc.setNonEmpty()"
		print "\t\th.pages.scav.index.chunks[ci].store(sc)"
		print "\t}"
		print "\tif h.pages.end > h.pages.start {"
		print "\t\th.pages.scav.index.searchAddrForce.StoreMarked(chunkBase(h.pages.end-1) + pallocChunkBytes - pageSize)"
		print "\t}"
		print "\tunlock(&h.lock)"
	}
	{ print }
' "$src" >"$patched.tmp"
mv "$patched.tmp" "$patched"
printf '{"Replace":{"%s":"%s"}}\n' "$src" "$patched" >"$out/overlay.json"
echo "-overlay=$out/overlay.json"
