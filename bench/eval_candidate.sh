#!/bin/sh
# eval_candidate.sh - every figure a candidate default model is judged on, measured by the C
# binary, next to the shipped model's, so that the decision rule written before a run can be
# applied as written (not run in CI: it needs the dataset).
#
# usage: bench/eval_candidate.sh CANDIDATE [REFERENCE] [S4KWS] [SC_DIR] [WORK_DIR]
#   CANDIDATE   safetensors model to judge
#   REFERENCE   the model to beat (default: the shipped weights/s4kws-sc12.safetensors)
#   S4KWS       the binary (default build/s4kws)
#   SC_DIR      Speech Commands layout with val/ (default ../shared/data/speech_commands)
#   WORK_DIR    kept work files; its sox conversions are reused (default: a temp dir)
#
# Prints, for the candidate and the reference side by side:
#   1. accuracy on val/ (classify --eval, conv mode), with its 95 % interval;
#   2. the paired comparison on the same clips (bench/compare_eval.py: the clips on which
#      exactly one model is right and the exact McNemar p): a difference of a few clips out
#      of 912 is usually noise;
#   3. accuracy after 1.5 s of other val clips in stream mode (--stream-context 1.5, --seed 1),
#      the live-mode figure of the model card;
#   4. with FULL=1, bench/filemode_agreement.sh (FLAC/Ogg/44.1 kHz/8 kHz agreement): ~3 min each.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CAND=${1:?usage: eval_candidate.sh CANDIDATE [REFERENCE] [S4KWS] [SC_DIR] [WORK_DIR]}
REF=${2:-$here/../weights/s4kws-sc12.safetensors}
S4KWS=${3:-build/s4kws}
SC=${4:-../shared/data/speech_commands}
WORK=${5:-$(mktemp -d "${TMPDIR:-/tmp}/s4kws-cand.XXXXXX")}
VAL=$SC/val
for f in "$CAND" "$REF"; do
	[ -f "$f" ] || { echo "eval_candidate.sh: $f: no such model file" >&2; exit 2; }
done
[ -d "$VAL" ] || { echo "eval_candidate.sh: $VAL: no such folder" >&2; exit 2; }
mkdir -p "$WORK"
model() { if [ "$1" = ref ]; then echo "$REF"; else echo "$CAND"; fi; }   # model cand|ref

# 1 and 2: one csv per model (the per-clip labels), accuracy from the same run's --eval
for who in cand ref; do
	m=$(model "$who")
	"$S4KWS" classify --model "$m" --format csv "$VAL" > "$WORK/$who.csv"
	"$S4KWS" classify --model "$m" --eval "$VAL" | head -1 > "$WORK/$who.acc"
done
echo "candidate: $CAND"
echo "reference: $REF"
echo
echo "1. val/ (conv mode):  candidate $(cat "$WORK/cand.acc")"
echo "                      reference $(cat "$WORK/ref.acc")"
echo
echo "2. paired on the same clips:"
/usr/bin/python3 "$here/compare_eval.py" "$WORK/ref.csv" "$WORK/cand.csv" | sed 's/^/   /'
echo
echo "3. --mode stream --stream-context 1.5 --seed 1:"
for who in cand ref; do
	m=$(model "$who")
	printf '   %-9s %s\n' "$who" "$("$S4KWS" classify --model "$m" --eval "$VAL" --mode stream \
		--stream-context 1.5 --seed 1 | head -1)"
done
if [ "${FULL:-0}" = 1 ]; then
	for who in cand ref; do
		m=$(model "$who")
		echo
		echo "4. format and rate agreement ($who):"
		sh "$here/filemode_agreement.sh" "$S4KWS" "$VAL" "$m" "$WORK/agree" | sed 's/^/   /'
	done
fi
echo
echo "(work files kept in $WORK)"
