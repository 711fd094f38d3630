#!/usr/bin/env bash
# det.sh - false detections per hour on keyword-free audio and recall on keyword streams, for
# the shipped model and a candidate side by side, with a DET curve (bench/det.c).
#
# usage: bench/det.sh BUILD_DIR SPEECH_COMMANDS_DIR NEGATIVES_DIR OUT_DIR MODEL [MODEL2]
#   e.g. bench/det.sh build ../shared/data/speech_commands ../shared/data/negatives /tmp/det \
#            weights/s4kws-sc12.safetensors /tmp/candidate.safetensors
#
# Audio, built once in OUT_DIR and reused:
#   held.wav    the held-out keyword-free real speech: every speechocean762 recording whose
#               speaker number is divisible by 3 (weights/train.py --neg-holdout 3 never trains
#               on them), in TSV order, 0.5 s of silence after each (about 10.5 min)
#   gpl16.wav   synthetic running speech without keywords: espeak-ng en-us reading the GPL-3
#               with the ten keywords deleted (about 35 min;
#               espeak-ng's voices say isolated training words, never running text)
#   noise.wav   5 min of noise and music-like tones that training never saw (sox synth)
#   streams     e2e_accuracy's held-out val streams (the benchmark's own and seed 1, 2 x 10 min)
# Then: `det` over held.wav (DET curve in OUT_DIR/det.png, the no-flags setting of each model,
# a threshold sweep) and over gpl16.wav and noise.wav (the same table, no curve).
# Numbers are the live daemon's stepper and post-processing without --verify. Not a test.
set -euo pipefail
build=$(readlink -f "$1"); sc=$(readlink -f "$2"); neg=$(readlink -f "$3"); out=$4
shift 4
[ $# -ge 1 ] || { echo "usage: bench/det.sh BUILD SC_DIR NEG_DIR OUT_DIR MODEL [MODEL2]" >&2; exit 2; }
mkdir -p "$out"
out=$(readlink -f "$out")
[ -x "$build/bench/det" ] || { echo "det.sh: build $build first" >&2; exit 2; }
models=()
for f in "$@"; do
	models+=(--model "$(basename "$f" .safetensors)=$(readlink -f "$f")")
done
. "$(dirname "$0")/held_wav.sh"
held_wav "$neg" "$out"
if [ ! -s "$out/gpl16.wav" ]; then
	sed -E 's/\b([Yy][Ee][Ss]|[Nn][Oo]|[Uu][Pp]|[Dd][Oo][Ww][Nn]|[Ll][Ee][Ff][Tt]|[Rr][Ii][Gg][Hh][Tt]|[Oo][Nn]|[Oo][Ff][Ff]|[Ss][Tt][Oo][Pp]|[Gg][Oo])\b//g' \
		/usr/share/common-licenses/GPL-3 > "$out/gpl.txt"
	espeak-ng -v en-us -s 160 -f "$out/gpl.txt" -w "$out/gpl.wav"
	sox "$out/gpl.wav" -r 16000 -c 1 -b 16 "$out/gpl16.wav"
	rm -f "$out/gpl.wav"
fi
if [ ! -s "$out/noise.wav" ]; then
	# pink, brown and white noise at speech-like levels, a hum, then random plucked notes
	sox -n -r 16000 -c 1 -b 16 "$out/n1.wav" synth 60 pinknoise vol 0.1 : synth 60 brownnoise vol 0.2 \
		: synth 30 whitenoise vol 0.02 : synth 30 sine 50 sine 100 vol 0.1
	notes=()
	for i in $(seq 1 240); do
		notes+=(: synth 0.5 pluck %$(( (i * 7919) % 36 - 12 )) vol 0.3)
	done
	sox -n -r 16000 -c 1 -b 16 "$out/n2.wav" synth 0.5 pluck %0 vol 0.3 "${notes[@]}"
	sox "$out/n1.wav" "$out/n2.wav" "$out/noise.wav"
	rm -f "$out/n1.wav" "$out/n2.wav"
fi
for s in bench 1; do
	[ -s "$out/streams/$s/stream.wav" ] && continue
	a=()
	[ "$s" = bench ] || a=(--seed "$s")
	mkdir -p "$out/streams/$s"
	"$build/tests/daemon/e2e_accuracy" --s4kws "$build/s4kws" --data "$sc" --minutes 10 "${a[@]}" \
		--keep "$out/streams/$s" --build-only >/dev/null
done
streams=(--stream "$out/streams/bench/stream.wav" "$out/streams/bench/truth.csv"
	--stream "$out/streams/1/stream.wav" "$out/streams/1/truth.csv")
echo "== held-out keyword-free real speech"
"$build/bench/det" "${models[@]}" "${streams[@]}" --negative "$out/held.wav" --png "$out/det.png"
echo "== synthetic running speech and noise"
"$build/bench/det" "${models[@]}" "${streams[@]}" --negative "$out/gpl16.wav" --negative "$out/noise.wav" |
	grep -v -E '^ +[0-9.]+ +[0-9.]+%' | grep -v 'threshold  miss'
