#!/usr/bin/env bash
# sse_latency.sh - latency from a keyword's end to its SSE event, audio paced as a capture
# device delivers it, for one s4kws binary or two taking turns.
#
# usage: bench/sse_latency.sh BUILD_DIR SPEECH_COMMANDS_DIR [ROUNDS] [OTHER_S4KWS] [-- LISTEN_ARGS...]
#   e.g. bench/sse_latency.sh build ../shared/data/speech_commands 3 /tmp/old/s4kws
#
# Builds a 2-minute stream of val clips with known keyword ends (tests/daemon/e2e_accuracy
# --build-only, seed 1) and runs build/bench/sse_latency on it ROUNDS times (default 1) with
# BUILD_DIR/s4kws and, when given, OTHER_S4KWS in alternating order: each run takes the stream's
# length in real time. sse_latency prints the median, 90th percentile and maximum of the
# latency and of its two parts (decision delay: audio the detector needs after the word; wall
# overhead: from the deciding hop's audio being delivered to the event's arrival). Not a test.
set -euo pipefail
build=$(readlink -f "$1")
data=$(readlink -f "$2")
rounds=${3:-1}
other=${4:-}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
[ -n "$other" ] && other=$(readlink -f "$other")
tmp=$(mktemp -d /tmp/s4kws-lat-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$build/tests/daemon/e2e_accuracy" --s4kws "$build/s4kws" --data "$data" --minutes 2 --seed 1 \
	--keep "$tmp" --build-only
for r in $(seq "$rounds"); do
	bins=("$build/s4kws")
	[ -n "$other" ] && { ((r % 2)) && bins=("$build/s4kws" "$other") || bins=("$other" "$build/s4kws"); }
	for b in "${bins[@]}"; do
		echo "round $r: $b"
		"$build/bench/sse_latency" --s4kws "$b" --stream "$tmp/stream.wav" --truth "$tmp/truth.csv" -- "$@"
	done
done
