#!/usr/bin/env bash
# fa_readtext.sh - false alarms per hour on read text without keywords (synthetic speech).
#
# usage: bench/fa_readtext.sh S4KWS [MODEL] [CLASSIFY_ARGS...]
#   e.g. bench/fa_readtext.sh build/s4kws "" --threshold 0.5 --verify 0.7
#
# espeak-ng (en-us, 160 words per minute) reads the GPL-3 text of /usr/share/common-licenses
# with the ten keyword words deleted (whole words, any case), about 34 minutes of speech; the
# 16 kHz recording is scanned with `s4kws classify --summary` (the live post-processing, in
# convolution mode) and every detection on it is a false alarm. Prints the summary: detections
# per hour per keyword. The recording is kept in $FA_DIR (default /tmp/s4kws-fa) and reused.
# Needs espeak-ng and sox. Not a test: it only reports. Synthetic speech, not a conversation.
set -euo pipefail
bin=$(readlink -f "$1")
model=${2:-}
shift $(($# < 2 ? $# : 2))
dir=${FA_DIR:-/tmp/s4kws-fa}
mkdir -p "$dir"
wav=$dir/gpl16.wav
if [ ! -s "$wav" ]; then
	sed -E 's/\b([Yy][Ee][Ss]|[Nn][Oo]|[Uu][Pp]|[Dd][Oo][Ww][Nn]|[Ll][Ee][Ff][Tt]|[Rr][Ii][Gg][Hh][Tt]|[Oo][Nn]|[Oo][Ff][Ff]|[Ss][Tt][Oo][Pp]|[Gg][Oo])\b//g' \
		/usr/share/common-licenses/GPL-3 > "$dir/gpl.txt"
	espeak-ng -v en-us -s 160 -f "$dir/gpl.txt" -w "$dir/gpl.wav"
	sox "$dir/gpl.wav" -r 16000 -c 1 -b 16 "$wav"
	rm -f "$dir/gpl.wav"
fi
margs=()
[ -n "$model" ] && margs=(--model "$model")
echo "$(soxi -D "$wav") s of read text, classify args: ${*:-(defaults)}"
"$bin" classify "${margs[@]}" "$@" --summary "$wav" >/dev/null
