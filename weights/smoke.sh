#!/usr/bin/env bash
# Recipe smoke run (CI): build a tiny synthetic dataset, train the default architecture for a
# few steps, export, and check that the C binary loads the result and classifies with it.
# usage: weights/smoke.sh path/to/s4kws
set -euo pipefail
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3

"$py" "$here/synth.py" --out "$tmp/data" --seed 3 --tiny --near "yesterday's news"
mkdir -p "$tmp/noise"
sox -n -r 16000 -c 1 -b 16 "$tmp/noise/white.wav" synth 5 whitenoise vol 0.3
sox -n -r 16000 -c 1 -b 16 "$tmp/noise/pink.wav" synth 5 pinknoise vol 0.3
# keyword-free sentences of two "speakers"; speaker 3 is held out by --neg-holdout 3
mkdir -p "$tmp/neg"
espeak-ng -v en-us -w "$tmp/neg/speaker0001_1.wav" "the weather was fine for a walk along the river"
espeak-ng -v en-gb -w "$tmp/neg/speaker0003_1.wav" "nobody knew what happened after that"
OPENBLAS_NUM_THREADS=1 "$py" "$here/train.py" --data "$tmp/data" --noise "$tmp/noise" \
	--run "$tmp/run" --cache "$tmp/cache" --out "$tmp/model.safetensors" --steps 3 --threads 2 --ema 0.99 \
	--pair-p 0.5 --eq-p 0.5 --mask-p 0.5 --negatives "$tmp/neg" --neg-per-batch 2 --pos-per-batch 2 \
	--vtlp-p 0.5
	# band-limited twins with the consistency loss, microphone colouring, SpecAugment-style
	# masks, keyword-free streams and streams with a keyword inside, with the per-hop losses,
	# vocal-tract length perturbation of the synthetic clips: the code paths run
grep -q "1 negative recordings" "$tmp/run/train.log"  # the held-out speaker was left out
"$bin" info --model "$tmp/model.safetensors"
clip=$(find "$tmp/data/yes" -name '*.wav' | head -n 1)
out=$("$bin" classify --model "$tmp/model.safetensors" --format json "$clip")
echo "$out"
# twelve_scores JSON WHAT: a classify output with twelve scores that sum to one
twelve_scores() {
	"$py" - "$1" "$2" <<'PY'
import json, sys
o = json.loads(sys.argv[1].splitlines()[0])
s = o["scores"]
assert len(s) == 12, s
assert abs(sum(s.values()) - 1) < 1e-3, s
print("smoke: C binary ran the %s:" % sys.argv[2], o["label"], round(o["score"], 3))
PY
}
twelve_scores "$out" "freshly trained model"
# compare_eval.py on the C binary's CSV of the tiny set: a model against itself differs on no
# clip (p = 1); a CSV missing clips is refused (exit 2)
"$bin" classify --model "$tmp/model.safetensors" --format csv "$tmp/data" > "$tmp/a.csv"
cmp_out=$("$py" "$here/../bench/compare_eval.py" "$tmp/a.csv" "$tmp/a.csv")
echo "$cmp_out"
grep -q "only A right: 0, only B right: 0" <<<"$cmp_out"
grep -q "McNemar p = 1$" <<<"$cmp_out"
# exits N CMD...: CMD fails with status N (its stderr in $tmp/err). One check per statement:
# set -e ignores a failure left of &&
exits() { local want=$1 rc=0; shift; "$@" 2> "$tmp/err" || rc=$?; [ "$rc" = "$want" ]; }
head -n 3 "$tmp/a.csv" > "$tmp/short.csv"
exits 2 "$py" "$here/../bench/compare_eval.py" "$tmp/a.csv" "$tmp/short.csv"
printf 'x,y\n1,2\n' > "$tmp/other.csv"  # not a classify CSV: one line, exit 2
exits 2 "$py" "$here/../bench/compare_eval.py" "$tmp/a.csv" "$tmp/other.csv"
[ "$(wc -l < "$tmp/err")" = 1 ]
# same_scores JSON_A JSON_B WHAT: the two classify outputs' scores agree within 0.02
same_scores() {
	"$py" - "$1" "$2" "$3" <<'PY'
import json, sys
a, b = (json.loads(x.splitlines()[0])["scores"] for x in sys.argv[1:3])
d = max(abs(a[k] - b[k]) for k in a)
assert d < 0.02, d
print("smoke: %s, max score diff %.2g" % (sys.argv[3], d))
PY
}
# restage RUN OUT INIT WIDTHS POOLS: one training step at a negligible learning rate from INIT
# with the given shape (a growth stage of the default recipe), into $tmp/RUN and $tmp/OUT
restage() {
	OPENBLAS_NUM_THREADS=1 "$py" "$here/train.py" --data "$tmp/data" --noise "$tmp/noise" \
		--run "$tmp/$1" --cache "$tmp/cache" --out "$tmp/$2" --steps 1 --threads 2 \
		--init "$3" --lr 1e-12 --ssm-lr 1e-12 --config "{\"widths\": $4, \"pools\": $5}"
}
# a second stage that grows the model by two identity blocks (as stage 5 of the default recipe):
# after one step at a negligible learning rate it must classify as the model it grew from, up to
# that step's update of the BatchNorm statistics
restage run2 grown.safetensors "$tmp/run/ckpt.pt" '[16, 64, 64, 64, 96, 96, 96, 96]' '[4, 4, 1, 4, 1, 1, 1, 1]'
grep -q "grown from 6 to 8 blocks" "$tmp/run2/train.log"
"$bin" info --model "$tmp/grown.safetensors" | grep -i "blocks\|param"
out2=$("$bin" classify --model "$tmp/grown.safetensors" --format json "$clip")
same_scores "$out" "$out2" "grown model (8 blocks) classifies like its 6-block origin"
# a third stage as stage 6 of the default recipe: from the exported .safetensors (weights and
# BatchNorm statistics, no optimizer state), grown again to 10 blocks; then the tuned
# per-keyword thresholds are stored in its metadata and the C binary must report them
restage run3 grown2.safetensors "$tmp/grown.safetensors" '[16, 64, 64, 64, 96, 96, 96, 96, 96, 96]' '[4, 4, 1, 4, 1, 1, 1, 1, 1, 1]'
grep -q "grown from 8 to 10 blocks" "$tmp/run3/train.log"
grep -q "initialised from .*grown.safetensors" "$tmp/run3/train.log"
"$py" "$here/set_thresholds.py" "$tmp/grown2.safetensors" yes=0.7 stop=0.9
"$bin" info --model "$tmp/grown2.safetensors" | grep -q "thresholds: *yes 0.7 stop 0.9 (tuned"
out3=$("$bin" classify --model "$tmp/grown2.safetensors" --format json "$clip")
same_scores "$out2" "$out3" "regrown model (10 blocks, from the exported file, thresholds set) classifies like its origin"
# a fourth stage as stage 14: block 0 (16 kHz) widened from 16 to 32 channels; the new channels
# enter through zero weights, so it too must classify as its origin; the C binary reads the width
restage run4 wide.safetensors "$tmp/grown2.safetensors" '[32, 64, 64, 64, 96, 96, 96, 96, 96, 96]' '[4, 4, 1, 4, 1, 1, 1, 1, 1, 1]'
grep -q "block 0 widened from 16 to 32 channels" "$tmp/run4/train.log"
"$bin" info --model "$tmp/wide.safetensors" | grep -Eq "^ +0 +32 +64 +4 "
out4=$("$bin" classify --model "$tmp/wide.safetensors" --format json "$clip")
same_scores "$out3" "$out4" "model with block 0 widened to 32 channels classifies like its origin"
# any other change of shape is refused with a message naming it (exit 1 from sys.exit)
exits 1 restage run5 bad.safetensors "$tmp/grown2.safetensors" '[16, 64, 64, 64, 128, 128, 128, 128, 128, 128]' '[4, 4, 1, 4, 1, 1, 1, 1, 1, 1]'
grep -q "widths/pools differ" "$tmp/err"
[ ! -e "$tmp/bad.safetensors" ]
# own keywords (README.md): synth.py speaks them, train.py learns them with no real recordings of
# them (--data is the tiny set, whose _unknown_ clips it shares and whose cached clips were
# stored for the default labels: the cache must not mix label lists), and the C binary reports
# exactly those labels; a keyword no folder holds and a keyword TTS cannot take are refused
"$py" "$here/synth.py" --out "$tmp/own" --seed 4 --tiny --keywords "lights on,computer" --engines espeak
[ -d "$tmp/own/lights-on" ] && [ -d "$tmp/own/computer" ] && [ ! -e "$tmp/own/yes" ]
own_labels="lights-on,computer,_silence_,_unknown_"
OPENBLAS_NUM_THREADS=1 "$py" "$here/train.py" --data "$tmp/data" --synth "$tmp/own" --noise "$tmp/noise" \
	--run "$tmp/run_own" --cache "$tmp/cache" --out "$tmp/own.safetensors" --steps 2 --threads 2 \
	--labels "$own_labels" --name own-keywords
grep -q "'lights-on': (0, 5)" "$tmp/run_own/train.log"
"$bin" info --model "$tmp/own.safetensors" | grep -q "labels (4): *lights-on computer _silence_ _unknown_"
own_clip=$(find "$tmp/own/computer" -name '*.wav' | head -n 1)
"$py" - "$("$bin" classify --model "$tmp/own.safetensors" --format json "$own_clip")" <<'PY'
import json, sys
s = json.loads(sys.argv[1].splitlines()[0])["scores"]
assert list(s) == ["lights-on", "computer", "_silence_", "_unknown_"], s
assert abs(sum(s.values()) - 1) < 1e-3, s
print("smoke: C binary ran the own-keywords model:", s)
PY
exits 2 "$py" "$here/synth.py" --out "$tmp/bad" --keywords 'say "hi"'
exits 1 env OPENBLAS_NUM_THREADS=1 "$py" "$here/train.py" --synth "$tmp/own" --noise "$tmp/noise" \
	--run "$tmp/run_bad" --cache "$tmp/cache" --out "$tmp/bad.safetensors" --steps 1 \
	--labels "lights-on,kitchen,_silence_,_unknown_"
grep -q "no clips for label(s) kitchen" "$tmp/err"
[ ! -e "$tmp/bad.safetensors" ]
echo "smoke: own keywords synthesized, trained and run; unknown labels and unsafe words refused"
