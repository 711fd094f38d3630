# held_wav.sh - sourced by det.sh, proxy.sh and weights/train_wake.sh: the two sides of the
# keyword-free real speech (speechocean762), split by speaker as weights/train.py --neg-holdout 3
# splits it, as one 16 kHz mono file each, in TSV order with 0.5 s of silence after every
# recording.
#   held_wav NEGATIVES_DIR OUT_DIR   OUT_DIR/held.wav (once): the held-out side, speakers whose
#                                    number is divisible by 3 (never trained on; about 10.5 min)
#   neg_wav NEGATIVES_DIR OUT.wav held|train [KEYWORDS]   OUT.wav (once): that side, leaving out
#                                    the recordings whose transcript says one of the
#                                    comma-separated KEYWORDS as whole words ('-' as a space,
#                                    as train.py leaves them out of its negatives)
neg_wav() {
	local neg=$1 out=$2 side=$3 kws=${4:-}
	[ -s "$out" ] && return 0
	local gap="${out%.wav}.gap.wav"
	sox -n -r 16000 -c 1 -b 16 "$gap" trim 0 0.5
	local args=() file speaker text n t k said want=0
	[ "$side" = held ] && want=1
	while IFS=$'\t' read -r file speaker _ text; do
		n=$((10#${speaker//[!0-9]/}))
		(((n % 3 == 0) == want)) || continue
		t=" ${text^^} "
		t=${t//[!A-Z\']/ }
		said=0
		for k in ${kws//,/ }; do
			k=${k//-/ }
			[[ $t == *" ${k^^} "* ]] && said=1
		done
		((said)) || args+=("$neg/speechocean762/$file" "$gap")
	done < <(tail -n +2 "$neg/speechocean762.tsv")
	sox "${args[@]}" -r 16000 -c 1 -b 16 "$out"
	rm -f "$gap"
}

held_wav() {
	neg_wav "$1" "$2/held.wav" held
}
