#!/usr/bin/env bash
# listen_rtf.sh - real-time factor of `s4kws listen` with 1, 4 and 16 channels.
#
# usage: bench/listen_rtf.sh S4KWS_BINARY [MODEL] [SECONDS] [LISTEN_ARGS...]
#   e.g. bench/listen_rtf.sh build/s4kws "" 60 --restart-ms 0   (one stepper per channel)
#
# For each channel count it writes a SECONDS-long file of that many channels (noise over a
# 200 Hz hum; the engine's cost does not depend on the content), runs
# `s4kws listen --input FILE` as fast as the CPU allows, waits for /v1/status to say eof and
# prints the figures the daemon measured itself: wall-clock time spent stepping every channel
# over every hop (real_time_factor, and divided by the channels), and the inference thread's
# CPU time over the audio time. A factor below 1 means faster than real time.
# Needs sox and curl. Not a test: it only reports.
set -euo pipefail
. "$(dirname "$0")/listen_eof.sh"
bin=$(readlink -f "$1")
model=${2:-}
secs=${3:-60}
shift $(($# < 3 ? $# : 3))
tmp=$(mktemp -d /tmp/s4kws-rtf-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
margs=()
[ -n "$model" ] && margs=(--model "$model")
printf "%8s %10s %12s %14s %12s\n" channels audio_s rtf_wall rtf_wall/ch rtf_cpu/ch
for ch in 1 4 16; do
	f="$tmp/in$ch.wav"
	sox -n -r 16000 -b 16 -c "$ch" "$f" synth "$secs" whitenoise vol 0.05 synth sine mix 200 vol 0.3 2>/dev/null ||
		sox -n -r 16000 -b 16 -c "$ch" "$f" synth "$secs" whitenoise vol 0.1
	"$bin" listen "${margs[@]}" "$@" --input "$f" --port 0 --port-file "$tmp/port" --log-level warn \
		2>"$tmp/err$ch" &
	pid=$!
	st=$(listen_eof "$tmp/port")
	kill -TERM "$pid"; wait "$pid" || true
	rm -f "$tmp/port"
	audio=$(sed 's/.*"audio_s":\([0-9.e+-]*\).*/\1/' <<<"$st")
	rtf=$(sed 's/.*"real_time_factor":\([0-9.e+-]*\).*/\1/' <<<"$st")
	cpu=$(sed 's/.*"inference_cpu_s":\([0-9.e+-]*\).*/\1/' <<<"$st")
	awk -v c="$ch" -v a="$audio" -v r="$rtf" -v p="$cpu" \
		'BEGIN { printf "%8d %10.1f %12.4f %14.5f %12.5f\n", c, a, r, r / c, p / a / c }'
done
