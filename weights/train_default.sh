#!/usr/bin/env bash
# The command that trains the shipped default model (weights/s4kws-sc12.safetensors).
# usage: weights/train_default.sh SPEECH_COMMANDS_DIR CACHE_DIR [MINUTES1 [MINUTES2 [MINUTES3 [MINUTES4 [MINUTES5 [MINUTES6 [MINUTES7]]]]]]]
#   SPEECH_COMMANDS_DIR  folder with train/ val/ _background_noise_/ (Speech Commands layout)
#   CACHE_DIR            outside the work tree: synthetic clips, clip cache, checkpoints, log
# Seven stages of wall-clock cosine schedules (a session on this machine lasts at most 3 hours):
#   stage 1  CACHE_DIR/run   MINUTES1 (default 65) from scratch
#   stage 2  CACHE_DIR/run2  MINUTES2 (default 135) from stage 1's weights, fresh schedule
#   stage 3  CACHE_DIR/run3  MINUTES3 (default 125) from stage 2's weights, peak lr 2e-3, with
#            1.5 s of preceding audio (--context 24000) so that live mode's history hurts less
#   stage 4  CACHE_DIR/run4  MINUTES4 (default 120) from stage 3's weights, peak lr 1e-3 (SSM 5e-4),
#            same context, real clips drawn more often (0.8), more band-limited examples (0.2),
#            exporting the moving average of the weights (--ema 0.999)
#   stage 5  CACHE_DIR/run5  MINUTES5 (default 125) from stage 4's weights grown by two blocks of
#            width 96 at 250 Hz that start as the identity (8 blocks), stage 4's recipe with
#            more band-limited examples (0.3)
#   stage 6  CACHE_DIR/run6  MINUTES6 (default 110) from stage 5's exported (EMA) weights grown by
#            two more identity blocks of width 96 at 250 Hz (10 blocks), stage 5's recipe with
#            band-limited examples 0.35
#   stage 7  CACHE_DIR/run7  MINUTES7 (default 120) from stage 6's exported (EMA) weights grown by
#            two more identity blocks of width 96 at 250 Hz (12 blocks), stage 6's recipe with
#            band-limited examples 0.4
# Re-running the same command resumes whichever stage was interrupted (a finished stage only
# re-exports). MINUTES2=0 stops after stage 1, MINUTES3=0 after stage 2, MINUTES4=0 after stage 3,
# MINUTES5=0 after stage 4, MINUTES6=0 after stage 5,
# MINUTES7=0 after stage 6.
set -euo pipefail
sc=$(readlink -f "$1"); cache=$(readlink -f "$2"); minutes1=${3:-65}; minutes2=${4:-135}; minutes3=${5:-125}; minutes4=${6:-120}; minutes5=${7:-125}; minutes6=${8:-110}; minutes7=${9:-120}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
[ -d "$cache/synth" ] || /usr/bin/python3 "$here/synth.py" --out "$cache/synth" --seed 1
# jemalloc keeps freed pages: torch allocates large tensors per op and fresh pages are slow
# on some virtual machines (6x per elementwise op measured here).
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -f "$jemalloc" ] && export LD_PRELOAD=$jemalloc MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true"
export OPENBLAS_NUM_THREADS=1
common=(--data "$sc/train" --noise "$sc/_background_noise_" --synth "$cache/synth"
	--val "$sc/val" --cache "$cache/clips" --out "$here/s4kws-sc12.safetensors")
/usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run" --minutes "$minutes1" --seed 1
[ "$minutes2" = 0 ] && exit 0
/usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run2" --init "$cache/run/ckpt.pt" \
	--minutes "$minutes2" --seed 2
[ "$minutes3" = 0 ] && exit 0
/usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run3" --init "$cache/run2/ckpt.pt" \
	--minutes "$minutes3" --lr 2e-3 --context 24000 --seed 3
[ "$minutes4" = 0 ] && exit 0
/usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run4" --init "$cache/run3/ckpt.pt" \
	--minutes "$minutes4" --lr 1e-3 --ssm-lr 5e-4 --context 24000 --seed 4 --ema 0.999 --real-p 0.8 --band-p 0.2
[ "$minutes5" = 0 ] && exit 0
/usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run5" --init "$cache/run4/ckpt.pt" \
	--minutes "$minutes5" --lr 1e-3 --ssm-lr 5e-4 --context 24000 --seed 5 --ema 0.999 --real-p 0.8 --band-p 0.3 \
	--config '{"widths": [16, 64, 64, 64, 96, 96, 96, 96], "pools": [4, 4, 1, 4, 1, 1, 1, 1]}'
[ "$minutes6" = 0 ] && exit 0
# stage 6 starts from what stage 5 exported (its EMA), not from its last weights in ckpt.pt
cp "$here/s4kws-sc12.safetensors" "$cache/run5/export.safetensors"
/usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run6" --init "$cache/run5/export.safetensors" \
	--minutes "$minutes6" --lr 1e-3 --ssm-lr 5e-4 --context 24000 --seed 6 --ema 0.999 --real-p 0.8 --band-p 0.35 \
	--config '{"widths": [16, 64, 64, 64, 96, 96, 96, 96, 96, 96], "pools": [4, 4, 1, 4, 1, 1, 1, 1, 1, 1]}'
[ "$minutes7" = 0 ] && exit 0
# stage 7 likewise starts from stage 6's export
cp "$here/s4kws-sc12.safetensors" "$cache/run6/export.safetensors"
exec /usr/bin/python3 "$here/train.py" "${common[@]}" --run "$cache/run7" --init "$cache/run6/export.safetensors" \
	--minutes "$minutes7" --lr 1e-3 --ssm-lr 5e-4 --context 24000 --seed 7 --ema 0.999 --real-p 0.8 --band-p 0.4 \
	--config '{"widths": [16, 64, 64, 64, 96, 96, 96, 96, 96, 96, 96, 96], "pools": [4, 4, 1, 4, 1, 1, 1, 1, 1, 1, 1, 1]}'
