#!/usr/bin/env bash
# vs_pocketsphinx.sh - CPU cost of `s4kws listen --input FILE` against pocketsphinx keyword
# spotting on the same file, run alternately, as a ratio.
#
# usage: bench/vs_pocketsphinx.sh S4KWS_BINARY FILE.wav [ROUNDS] [LISTEN_ARGS...]
#   e.g. bench/vs_pocketsphinx.sh build/s4kws /tmp/stream.wav 5
#
# FILE: 16 kHz mono 16-bit WAV (what pocketsphinx_continuous reads), for example a 10-minute
# stream from bench/e2e_streams.sh. Each round runs both on FILE, in alternating order, and
# takes each process's CPU time (user + system, GNU time) over the file's duration:
#   - s4kws: `listen --input FILE` as fast as the CPU allows (the shipped model, its default
#     settings), from start until /v1/status says eof, then SIGTERM (start-up and HTTP included);
#   - pocketsphinx: `pocketsphinx_continuous -infile FILE -kws LIST` with the same ten keywords
#     at threshold 1e-20 (Debian's pocketsphinx and pocketsphinx-en-us, 0.8+5prealpha); its cost
#     grows with the list: KEYWORDS="yes" bench/vs_pocketsphinx.sh ... spots one keyphrase.
# Prints each round's CPU-s per audio-s and the ratio s4kws / pocketsphinx, then the median
# ratio. Paired rounds make the ratio hold on a busy machine better than either figure does.
# Needs sox, curl, GNU time, pocketsphinx. Not a test: it only reports.
set -euo pipefail
. "$(dirname "$0")/listen_eof.sh"
bin=$(readlink -f "$1")
file=$(readlink -f "$2")
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
command -v pocketsphinx_continuous >/dev/null ||
	{ echo "vs_pocketsphinx: pocketsphinx_continuous not found (apt install pocketsphinx pocketsphinx-en-us)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/s4kws-vsps-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
audio=$(soxi -D "$file")
for k in ${KEYWORDS:-yes no up down left right on off stop go}; do echo "$k /1e-20/"; done >"$tmp/kws.txt"

run_s4kws() {
	rm -f "$tmp/port"
	/usr/bin/time -f "%U %S" -o "$tmp/t_s4kws" "$bin" listen "$@" --input "$file" --port 0 \
		--port-file "$tmp/port" --log-level warn 2>"$tmp/err_s4kws" &
	local pid=$!
	listen_eof "$tmp/port" >/dev/null
	# GNU time's child is s4kws: signal it, not time
	pkill -TERM -P "$pid" -x s4kws || true
	wait "$pid" || true
}

run_ps() {
	/usr/bin/time -f "%U %S" -o "$tmp/t_ps" pocketsphinx_continuous -infile "$file" -kws "$tmp/kws.txt" \
		-logfn /dev/null >"$tmp/out_ps" 2>&1
}

cpu() { awk '{printf "%.4f", ($1 + $2) / '"$audio"'}' "$1"; }

echo "pocketsphinx keywords: $(cut -d' ' -f1 "$tmp/kws.txt" | tr '\n' ' ')"
printf "%6s %14s %14s %8s\n" round s4kws_cpu/s ps_cpu/s ratio
ratios=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then run_s4kws "$@"; run_ps; else run_ps; run_s4kws "$@"; fi
	a=$(cpu "$tmp/t_s4kws")
	b=$(cpu "$tmp/t_ps")
	q=$(awk "BEGIN{printf \"%.3f\", $a / $b}")
	ratios+=("$q")
	printf "%6d %14s %14s %8s\n" "$r" "$a" "$b" "$q"
done
printf "%s\n" "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{printf "median ratio s4kws/pocketsphinx: %s over %d rounds (%.0f s of audio)\n", v[int((NR+1)/2)], NR, '"$audio"'}'
echo "pocketsphinx keyword hits in the last round: $(grep -c . "$tmp/out_ps" || true)"
