#!/usr/bin/env bash
# proxy.sh - how a keyword learned from synthetic speech alone fares on real voices: a word that
# Speech Commands has real recordings of (eight: 1,067; marvin, sheila, visual: a few dozen), so
# that the "own keywords" recipe can be measured here (README.md, "Your own keywords").
#
# usage: bench/proxy.sh BUILD_DIR SPEECH_COMMANDS_DIR NEGATIVES_DIR OUT_DIR WORD MODEL [MODEL2]
#   e.g. bench/proxy.sh build ../shared/data/speech_commands ../shared/data/negatives /tmp/proxy \
#            eight /tmp/proxy-eight.safetensors
# MODEL must have been trained without any real recording of WORD (labels WORD,_silence_,_unknown_
# and --data without its clips, weights/synth.py for it). Audio, built once in OUT_DIR:
#   held.wav        the held-out keyword-free real speech (bench/held_wav.sh, about 10.5 min)
#   WORD/           an e2e_accuracy --word stream (MINUTES, default 45, seed 29): the real clips
#                   of WORD among other real speech (val clips) and noise, with true ends
#   clips/WORD/     every real clip of WORD (train/ and val/ _unknown_/WORD_*), links
# Prints, per model: clip recall (`classify --eval`, conv mode: the share of the real clips whose
# top label is WORD), then bench/det on the stream and held.wav: recall and false detections at
# the file's or the default threshold, a threshold sweep (miss rate against false detections per
# hour of held-out real speech), and a DET curve OUT_DIR/det_WORD.png. Not a test.
set -euo pipefail
build=$(readlink -f "$1"); sc=$(readlink -f "$2"); neg=$(readlink -f "$3"); out=$4; word=$5
shift 5
[ $# -ge 1 ] || { echo "usage: bench/proxy.sh BUILD SC_DIR NEG_DIR OUT_DIR WORD MODEL [MODEL2]" >&2; exit 2; }
mkdir -p "$out"
out=$(readlink -f "$out")
. "$(dirname "$0")/held_wav.sh"
held_wav "$neg" "$out"
[ -s "$out/$word/stream.wav" ] ||
	"$build/tests/daemon/e2e_accuracy" --data "$sc" --word "$word" --minutes "${MINUTES:-45}" --seed 29 \
		--build-only --keep "$out/$word"
if [ ! -d "$out/clips/$word" ]; then
	mkdir -p "$out/clips.tmp/$word"
	for f in "$sc"/train/_unknown_/"${word}"_* "$sc"/val/_unknown_/"${word}"_*; do
		[ -e "$f" ] && ln -s "$f" "$out/clips.tmp/$word/"
	done
	mv "$out/clips.tmp" "$out/clips"
fi
models=()
for f in "$@"; do
	m=$(readlink -f "$f")
	echo "== $(basename "$f"): clip recall on $(ls "$out/clips/$word" | wc -l) real clips of '$word'"
	"$build/s4kws" classify --model "$m" --eval "$out/clips" | grep -E "^accuracy|^$word " || true
	models+=(--model "$(basename "$f" .safetensors)=$m")
done
"$build/bench/det" "${models[@]}" --stream "$out/$word/stream.wav" "$out/$word/truth.csv" \
	--negative "$out/held.wav" --png "$out/det_$word.png"
