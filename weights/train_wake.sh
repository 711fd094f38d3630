#!/usr/bin/env bash
# The command that builds the shipped wake-word model (weights/s4kws-wake.safetensors): the
# keywords computer, jarvis and alexa, of which no recording exists here, from synthetic speech
# only, with real speech as everything else.
# usage: weights/train_wake.sh SPEECH_COMMANDS_DIR NEGATIVES_DIR CACHE_DIR [MINUTES] [OUT]
#   SPEECH_COMMANDS_DIR  train/ and _background_noise_/ in the Speech Commands layout: every real
#                        clip there (all 35 words) is `_unknown_`, the noise makes `_silence_`
#   NEGATIVES_DIR        keyword-free real speech (speechocean762/): the files of speakers whose
#                        number is not divisible by 3 are negative streams in training and set the
#                        thresholds; those divisible by 3 are never used here (they are for
#                        measuring false detections per hour, bench/det.sh)
#   CACHE_DIR            outside the work tree: synthetic clips, clip cache, checkpoints, log
#   MINUTES              training time (default 75; a wall-clock cosine schedule)
#   OUT                  default weights/s4kws-wake.safetensors
# Steps: 1. synth.py speaks the three keywords with every espeak-ng, flite and festival voice
# (1,000 clips each) and ~200 other words, near-misses of the keywords among them (--near);
# 2. train.py from scratch with vocal-tract length perturbation of the synthetic clips
# (--vtlp-p), 1.5 s of audio before each example's window (--context 24000: a live stepper
# runs for hours, and a model that only ever heard 0.5 s before a window drifted towards its
# keyword after about 2 s of silence) and four keyword-free real-speech streams per batch
# (--neg-per-batch); 3. bench/det --pick 2: per keyword the lowest threshold with no more than
# 2 false detections per hour on the training side of the negatives, written into the file
# (set_thresholds.py). Re-running resumes an interrupted run (a finished one only re-exports).
set -euo pipefail
sc=$(readlink -f "$1"); neg=$(readlink -f "$2"); cache=$(readlink -f "$3"); minutes=${4:-75}
here=$(cd "$(dirname "$0")" && pwd)
out=$(readlink -f "${5:-$here/s4kws-wake.safetensors}")
det=${DET:-$here/../build/bench/det}
[ -x "$det" ] || { echo "train_wake.sh: build the project first (ninja -C build): $det" >&2; exit 2; }
mkdir -p "$cache"
[ -f "$cache/synth/manifest.json" ] ||
	/usr/bin/python3 "$here/synth.py" --out "$cache/synth" --seed 29 --keywords computer,jarvis,alexa \
		--per-keyword 1000 --per-unknown-word 20 \
		--near "commuter,compute,computing,competer,come here,jar,service,harvest,nervous,travis,alex,alexander,election,a lexus,texas,lexa,alexis"
# every real Speech Commands clip as `_unknown_`, named WORD_FILE so that training draws a word
# first and then a clip of it (train.py: one word with many clips must not become "unknown")
if [ ! -d "$cache/real/_unknown_" ]; then
	mkdir -p "$cache/real.tmp/_unknown_"
	for d in "$sc"/train/*/; do
		w=$(basename "$d")
		case $w in _silence_ | _background_noise_) continue ;; esac
		for f in "$d"*; do
			b=$(basename "$f")
			[ "$w" = _unknown_ ] && ln -s "$f" "$cache/real.tmp/_unknown_/$b" ||
				ln -s "$f" "$cache/real.tmp/_unknown_/${w}_$b"
		done
	done
	ln -s "$sc/train/_silence_" "$cache/real.tmp/_silence_"
	mv "$cache/real.tmp" "$cache/real"
fi
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -f "$jemalloc" ] && export LD_PRELOAD=$jemalloc MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true"
export OPENBLAS_NUM_THREADS=1
/usr/bin/python3 "$here/train.py" --labels computer,jarvis,alexa,_silence_,_unknown_ --name s4kws-wake \
	--synth "$cache/synth" --data "$cache/real" --noise "$sc/_background_noise_" \
	--negatives "$neg" --neg-holdout 3 --neg-per-batch 4 --vtlp-p 0.8 --context 24000 \
	--cache "$cache/clips" --run "$cache/run" --out "$out" --minutes "$minutes" --seed 29 \
	--threads "${THREADS:-2}"
unset LD_PRELOAD
# the operating point: the training side of the negatives (speakers not divisible by 3), one
# file, without the sentences that say a wake word (train.py leaves them out of training too)
. "$here/../bench/held_wav.sh"
neg_wav "$neg" "$cache/tune.wav" train computer,jarvis,alexa
pairs=$("$det" --model wake="$out" --negative "$cache/tune.wav" --pick 2 |
	sed -n 's/.*per keyword: //p' | sed 's/(never that quiet)//g')
echo "thresholds: $pairs"
# shellcheck disable=SC2086
/usr/bin/python3 "$here/set_thresholds.py" "$out" $pairs
