# held_wav.sh - sourced by det.sh and proxy.sh: held_wav NEGATIVES_DIR OUT_DIR makes
# OUT_DIR/held.wav (once): the held-out keyword-free real speech, every speechocean762 recording
# whose speaker number is divisible by 3 (weights/train.py --neg-holdout 3 never trains on
# them), in TSV order, 0.5 s of silence after each (about 10.5 min).
held_wav() {
	local neg=$1 out=$2
	[ -s "$out/held.wav" ] && return 0
	sox -n -r 16000 -c 1 -b 16 "$out/gap.wav" trim 0 0.5
	local args=() file speaker n
	while IFS=$'\t' read -r file speaker _; do
		n=$((10#${speaker//[!0-9]/}))
		[ $((n % 3)) = 0 ] && args+=("$neg/speechocean762/$file" "$out/gap.wav")
	done < <(tail -n +2 "$neg/speechocean762.tsv")
	sox "${args[@]}" -r 16000 -c 1 -b 16 "$out/held.wav"
}
