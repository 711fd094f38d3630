#!/usr/bin/env bash
# e2e_streams.sh - live-mode recall and false detections on the four 10-minute streams that the
# detection defaults are tuned and judged on (weights/MODEL_CARD.md, "Live mode").
#
# usage: bench/e2e_streams.sh BUILD_DIR SPEECH_COMMANDS_DIR [MODEL] [-- LISTEN_ARGS...]
#   e.g. bench/e2e_streams.sh build ../shared/data/speech_commands "" -- --threshold 0.5 --verify 0.7
#
# Streams of tests/daemon/e2e_accuracy (val clips only): seeds 2 and 3 are for tuning settings,
# the benchmark's own stream (no --seed) and seed 1 are held out for judging them. For each it
# runs `s4kws listen --input stream.wav LISTEN_ARGS` through e2e_accuracy and prints recall,
# false detections and the decision delay, then the totals of the tuning and held-out pairs.
# Not a test (it needs the dataset and a trained model): it only reports. Streams are built in a
# temporary folder (or $E2E_KEEP/<stream>, reused when there).
set -euo pipefail
build=$(readlink -f "$1")
data=$(readlink -f "$2")
model=${3:-}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift
[ -n "$model" ] && model=$(readlink -f "$model")
bin=$build/s4kws
e2e=$build/tests/daemon/e2e_accuracy
[ -x "$bin" ] && [ -x "$e2e" ] || { echo "e2e_streams.sh: build $build first (ninja -C $build)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/s4kws-e2e-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
margs=()
[ -n "$model" ] && margs=(--model "$model")
echo "listen args: ${*:-(defaults)}"
printf "%-10s %8s %10s %8s %8s %12s\n" stream keywords found recall false delay_med
declare -A found total false
for s in 2 3 bench 1; do
	sargs=()
	[ "$s" = bench ] || sargs=(--seed "$s")
	keep=${E2E_KEEP:+$E2E_KEEP/$s}
	keep=${keep:-$tmp/$s}
	mkdir -p "$keep"
	out=$("$e2e" --s4kws "$bin" --data "$data" --minutes 10 "${margs[@]}" "${sargs[@]}" --keep "$keep" \
		--min-recall 0 --max-false -1 -- "$@" 2>&1) || true
	line=$(grep -E '^keywords:' <<<"$out" || true)
	if [ -z "$line" ]; then
		echo "stream $s: e2e_accuracy gave no figures:" >&2
		tail -5 <<<"$out" >&2
		exit 1
	fi
	k=$(sed -E 's/^keywords: ([0-9]+), found ([0-9]+).*/\1/' <<<"$line")
	f=$(sed -E 's/^keywords: ([0-9]+), found ([0-9]+).*/\2/' <<<"$line")
	fa=$(grep -E '^false detections:' <<<"$out" | sed -E 's/^false detections: ([0-9]+).*/\1/')
	dm=$(grep -E '^decision delay' <<<"$out" | sed -E 's/.*median ([0-9-]+) ms.*/\1/')
	printf "%-10s %8d %10d %7.1f%% %8d %9s ms\n" "$s" "$k" "$f" "$(awk -v a="$f" -v b="$k" 'BEGIN{print 100*a/b}')" "$fa" "$dm"
	g=$([ "$s" = 2 ] || [ "$s" = 3 ] && echo tuning || echo held-out)
	found[$g]=$(( ${found[$g]:-0} + f ))
	total[$g]=$(( ${total[$g]:-0} + k ))
	false[$g]=$(( ${false[$g]:-0} + fa ))
done
for g in tuning held-out; do
	printf "%-10s %8d %10d %7.1f%% %8d   (2 streams, 20 min)\n" "$g" "${total[$g]}" "${found[$g]}" \
		"$(awk -v a="${found[$g]}" -v b="${total[$g]}" 'BEGIN{print 100*a/b}')" "${false[$g]}"
done
