#!/bin/sh
# filemode_agreement.sh - issue 4's format/rate agreement figure, on every clip of a Speech
# Commands layout folder (not run in CI: it needs the dataset).
#
# usage: bench/filemode_agreement.sh [S4KWS] [VAL_DIR] [MODEL] [WORK_DIR]
#   defaults: build/s4kws, ../shared/data/speech_commands/val, the default model, a temp dir
#
# Converts every clip with sox into: 16 kHz WAV (the reference), FLAC (the originals), Ogg
# Vorbis (-C 5), 44.1 kHz stereo WAV and 8 kHz WAV; classifies each set with
# `s4kws classify --format csv` and prints, per set, how many labels equal the 16 kHz WAV's.
# Then the same with --max-rate 8000 on every set (16 kHz WAV with it as the reference), and
# accuracy with `--eval`: the 8 kHz set resampled to the model rate (default), with
# --native-rate (the model's step sizes scaled instead), and the originals with --max-rate 8000.
set -eu
S4KWS=${1:-build/s4kws}
VAL=${2:-../shared/data/speech_commands/val}
MODEL=${3:-}
WORK=${4:-$(mktemp -d "${TMPDIR:-/tmp}/s4kws-agree.XXXXXX")}
MOPT=""
[ -n "$MODEL" ] && MOPT="--model $MODEL"
JOBS=${JOBS:-$(nproc)}

echo "converting $(find "$VAL" -name '*.flac' | wc -l) clips into $WORK ..."
for set in wav16 ogg st44 w8; do mkdir -p "$WORK/$set"; done
find "$VAL" -name '*.flac' | sort | while read -r f; do
	rel=${f#"$VAL"/}
	d=$(dirname "$rel")
	b=$(basename "$rel" .flac)
	for set in wav16 ogg st44 w8; do mkdir -p "$WORK/$set/$d"; done
	# a kept WORK_DIR is reused: conversions already there are not redone
	[ -s "$WORK/wav16/$d/$b.wav" ] || sox "$f" "$WORK/wav16/$d/$b.wav"
	[ -s "$WORK/ogg/$d/$b.ogg" ] || sox "$f" -C 5 "$WORK/ogg/$d/$b.ogg"
	[ -s "$WORK/st44/$d/$b.wav" ] || sox "$f" -r 44100 -c 2 "$WORK/st44/$d/$b.wav"
	[ -s "$WORK/w8/$d/$b.wav" ] || sox "$f" -r 8000 "$WORK/w8/$d/$b.wav"
done

# label per clip, keyed by the path relative to its set, sorted
labels() { # DIR [extra options]
	dir=$1; shift
	"$S4KWS" classify $MOPT -j "$JOBS" --format csv "$@" "$dir" |
		awk -F, -v p="$dir/" 'NR > 1 { f = $1; sub(p, "", f); sub(/\.[a-z0-9]+$/, "", f); print f, $5 }' |
		sort
}

labels "$WORK/wav16" > "$WORK/ref.txt"
n=$(wc -l < "$WORK/ref.txt")
echo "reference: $n clips at 16 kHz WAV"
report() { # NAME FILE [REFERENCE]
	ref=${3:-$WORK/ref.txt}
	same=$(join "$ref" "$2" | awk '$2 == $3' | wc -l)
	tot=$(join "$ref" "$2" | wc -l)
	awk -v n="$1" -v s="$same" -v t="$tot" -v all="$n" \
		'BEGIN { printf "%-28s labels agree on %d/%d clips (%.2f %%)%s\n", n, s, t, 100 * s / t, t < all ? "  MISSING CLIPS" : "" }'
}
labels "$VAL" > "$WORK/flac.txt";             report "FLAC (originals)" "$WORK/flac.txt"
labels "$WORK/ogg" > "$WORK/ogg.txt";         report "Ogg Vorbis -C 5" "$WORK/ogg.txt"
labels "$WORK/st44" > "$WORK/st44.txt";       report "44.1 kHz stereo WAV" "$WORK/st44.txt"
labels "$WORK/w8" > "$WORK/w8.txt";           report "8 kHz WAV (resampled)" "$WORK/w8.txt"
labels "$WORK/w8" --native-rate > "$WORK/w8n.txt"; report "8 kHz WAV (--native-rate)" "$WORK/w8n.txt"

echo
echo "every set with --max-rate 8000 (all files first reduced to an 8 kHz recording's band),"
echo "against the 16 kHz WAVs with --max-rate 8000:"
labels "$WORK/wav16" --max-rate 8000 > "$WORK/ref8.txt"
for set in flac:"$VAL" ogg:"$WORK/ogg" st44:"$WORK/st44" w8:"$WORK/w8"; do
	name=${set%%:*}
	labels "${set#*:}" --max-rate 8000 > "$WORK/${name}_m8.txt"
	report "  $name --max-rate 8000" "$WORK/${name}_m8.txt" "$WORK/ref8.txt"
done

echo
echo "accuracy (--eval):"
for args in "$VAL" "$WORK/wav16" "$WORK/w8" "$WORK/w8 --native-rate" "$VAL --max-rate 8000"; do
	printf '  %-50s ' "$args"
	# shellcheck disable=SC2086
	"$S4KWS" classify $MOPT -j "$JOBS" --eval $args | head -1
done
echo "(work files kept in $WORK)"
