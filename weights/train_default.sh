#!/usr/bin/env bash
# The command that trains the shipped default model (weights/s4kws-sc12.safetensors).
# usage: weights/train_default.sh SPEECH_COMMANDS_DIR CACHE_DIR [MINUTES]
#   SPEECH_COMMANDS_DIR  folder with train/ val/ _background_noise_/ (Speech Commands layout)
#   CACHE_DIR            outside the work tree: synthetic clips, clip cache, checkpoints, log
# Re-running the same command resumes from CACHE_DIR/run/ckpt.pt.
set -euo pipefail
sc=$(readlink -f "$1"); cache=$(readlink -f "$2"); minutes=${3:-90}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
[ -d "$cache/synth" ] || /usr/bin/python3 "$here/synth.py" --out "$cache/synth" --seed 1
# jemalloc keeps freed pages: torch allocates large tensors per op and fresh pages are slow
# on some virtual machines (6x per elementwise op measured here).
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -f "$jemalloc" ] && export LD_PRELOAD=$jemalloc MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true"
export OPENBLAS_NUM_THREADS=1
exec /usr/bin/python3 "$here/train.py" --data "$sc/train" --noise "$sc/_background_noise_" \
	--synth "$cache/synth" --val "$sc/val" --run "$cache/run" --cache "$cache/clips" \
	--out "$here/s4kws-sc12.safetensors" --minutes "$minutes" --seed 1
