#!/usr/bin/env bash
# go-overlay.sh prints the `go build` flag that builds the Go runtime with
# ztagent's one patch (below), or nothing when the patch does not apply to the
# toolchain in use; the Makefile adds what it prints to the release builds.
#
# The patch fixes a bug of the runtime's scavenger (Go 1.26.8 and 1.27.4 at
# least): scavengeOne searches a chunk only below the background scavenger's
# cursor, and when it finds nothing there it marks the whole chunk as having
# nothing to return (setEmpty), though pages freed above the cursor since are
# free and resident. Forced scavenging (debug.FreeOSMemory, the memory
# limit) skips chunks so marked, so those pages stay resident until a later
# free in the chunk clears the mark: 0-3 MB of the idle agent with 10,000
# apps, 9 MB in one run with GOGC=25 (README, "Idle and offline cost"). The
# patch searches the whole chunk before marking it. With it, a reproducer
# that frees 30 MB and calls FreeOSMemory leaves 0.00-0.09 MB unreturned in
# ten runs, against 0.01-3.67 MB without (README, "The Go runtime patch").
#
# It rewrites a copy of $GOROOT/src/runtime/mgcscavenge.go and writes an
# overlay file (go help build, -overlay) under .build/; the toolchain itself
# is not touched. Exactly one line must match, or the patch is not applied
# and a warning says so: a toolchain that changed the function gets the
# build without the patch, never a half-patched runtime.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/.build/goruntime
goroot=$(${GO:-go} env GOROOT 2>/dev/null) || exit 0
src=$goroot/src/runtime/mgcscavenge.go
line=$'\t\tbase, npages := p.chunkOf(ci).findScavengeCandidate(searchIdx, minPages, maxPages)'

if [ ! -f "$src" ] || [ "$(grep -cxF -- "$line" "$src")" != 1 ]; then
	echo "go-overlay.sh: the scavenger patch does not apply to $(${GO:-go} version); building without it" >&2
	exit 0
fi

mkdir -p "$out"
patched=$out/mgcscavenge.go
awk -v line="$line" '
	{ print }
	$0 == line {
		print "\t\tif npages == 0 && searchIdx < pallocChunkPages-1 {"
		print "\t\t\t// ztagent patch (scripts/go-overlay.sh): nothing below searchIdx,"
		print "\t\t\t// but pages above it may have been freed since; search the whole"
		print "\t\t\t// chunk before setEmpty hides it from forced scavenging."
		print "\t\t\tbase, npages = p.chunkOf(ci).findScavengeCandidate(pallocChunkPages-1, minPages, maxPages)"
		print "\t\t}"
	}
' "$src" >"$patched.tmp"
mv "$patched.tmp" "$patched"
printf '{"Replace":{"%s":"%s"}}\n' "$src" "$patched" >"$out/overlay.json"
echo "-overlay=$out/overlay.json"
