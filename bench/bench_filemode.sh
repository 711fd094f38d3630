#!/bin/sh
# bench_filemode.sh - file-mode throughput in one run, same model, clips and thread count:
# s4kws conv mode, s4kws stream mode, and the PyTorch twin's conv mode.
#
# usage: bench/bench_filemode.sh [S4KWS] [MODEL] [CLIPS_DIR] [THREADS] [LONG_SECONDS] [N]
#   defaults: build/s4kws, weights/s4kws-sc12.safetensors, ../shared/data/speech_commands/val,
#   all cores, 600, 240 clips (every k-th of the sorted list, so every label is in; 0 = all)
#
# s4kws is timed end to end (process start, model load, decoding, padding, the engine, output)
# with `classify -j THREADS --format csv` over the clips; the twin (bench/bench_twin.py, needs
# /usr/bin/python3 with torch, numpy, soundfile) is timed on the forward pass only, inputs
# decoded and padded beforehand, batches of 32, torch.set_num_threads(THREADS). "x real time"
# counts each clip as its length (1 s for Speech Commands; the preroll zeros put before a lone
# clip are not audio: s4kws computes their share once per workspace, the twin runs them). Also scans one long recording (pink noise, LONG_SECONDS) in conv and
# stream mode, by default and with --restart-ms 2000. Every clip run's labels are compared with
# conv mode's.
set -eu
S4KWS=${1:-build/s4kws}
MODEL=${2:-weights/s4kws-sc12.safetensors}
CLIPS=${3:-../shared/data/speech_commands/val}
T=${4:-$(nproc)}
LONG=${5:-600}
NCLIPS=${6:-240}
HERE=$(dirname "$0")
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/s4kws-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT

find "$CLIPS" -name '*.flac' -o -name '*.wav' | sort > "$W/all"
ALL=$(wc -l < "$W/all")
if [ "$NCLIPS" -gt 0 ] && [ "$ALL" -gt "$NCLIPS" ]; then
	awk -v n="$NCLIPS" -v all="$ALL" 'int((NR - 1) * n / all) != int(NR * n / all)' "$W/all" > "$W/list"
else
	cp "$W/all" "$W/list"
fi
N=$(wc -l < "$W/list")
AUDIO=$(xargs soxi -D < "$W/list" | awk '{ s += $1 } END { printf "%.3f", s }')
now() { date +%s.%N; }

run_c() { # MODE OUT
	t0=$(now)
	"$S4KWS" classify --model "$MODEL" --mode "$1" -j "$T" --format csv @"$W/list" > "$W/$2.csv"
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}
echo "model $MODEL, $N clips ($AUDIO s of audio) from $CLIPS, $T threads, $(nproc) cores"
tc=$(run_c conv conv)
ts=$(run_c stream stream)
"$PY" "$HERE/bench_twin.py" "$MODEL" "$W/list" "$T" > "$W/twin.json"
tt=$(sed 's/.*"seconds": \([0-9.e-]*\).*/\1/' "$W/twin.json")

labels_csv() { awk -F, 'NR > 1 { print $1, $5 }' "$1" | sort; }
labels_csv "$W/conv.csv" > "$W/conv.lab"
labels_csv "$W/stream.csv" > "$W/stream.lab"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["labels"]; [print(k, v) for k, v in sorted(d.items())]' "$W/twin.json" > "$W/twin.lab"
agree() { join "$W/conv.lab" "$1" | awk '$2 == $3 { s++ } END { printf "%d/%d", s, NR }'; }

printf '\n%-26s %9s %10s %12s %14s\n' "engine" "seconds" "clips/s" "x real time" "labels = conv"
for row in "s4kws conv (end to end):$tc:-" "s4kws stream (end to end):$ts:$W/stream.lab" "PyTorch twin conv (fwd):$tt:$W/twin.lab"; do
	name=${row%%:*}; rest=${row#*:}; sec=${rest%%:*}; lab=${rest#*:}
	a="-"; [ "$lab" != "-" ] && a=$(agree "$lab")
	awk -v n="$name" -v s="$sec" -v c="$N" -v au="$AUDIO" -v a="$a" \
		'BEGIN { printf "%-26s %9.2f %10.1f %12.1f %14s\n", n, s, c / s, au / s, a }'
done
awk -v c="$tc" -v s="$ts" -v t="$tt" 'BEGIN {
	printf "\nratios: s4kws conv / PyTorch twin = %.2fx   s4kws conv / s4kws stream = %.2fx\n", t / c, s / c }'

# one long recording, scanned
sox -n -r 16000 -b 16 -c 1 "$W/long.flac" synth "$LONG" pinknoise vol 0.05 2>/dev/null
# default (one whole-file run), then with live mode's restarts (--restart-ms 2000: two steppers
# taking turns, or conv segments of [preroll | 2 s] whose preroll share is primed)
for run in "conv:0" "stream:0" "conv:2000" "stream:2000"; do
	mode=${run%:*}; rms=${run#*:}
	t0=$(now)
	"$S4KWS" classify --model "$MODEL" --mode "$mode" --restart-ms "$rms" -j 1 --format json "$W/long.flac" > /dev/null
	t1=$(now)
	echo "$t0 $t1" | awk -v m="$mode" -v r="$rms" -v l="$LONG" '{ d = $2 - $1; printf "long recording (%d s, one thread, %s, --restart-ms %d): %.2f s = %.0fx real time\n", l, m, r, d, l / d }'
done
