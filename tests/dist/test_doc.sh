#!/bin/sh
# test_doc.sh - the man page and the bash completion list every option that --help lists.
# usage: test_doc.sh S4KWS MAN_PAGE COMPLETION
# Every long option at the start of an option line (and in a command's usage line) of
# `s4kws COMMAND --help` must appear in the man page as rendered by man -l (or, without man,
# in its source) and in that command's completion list; completing "classify --sh" gives
# --shard, and a command name completes. Fails on the first difference, naming it.
set -eu
bin=$1
page=$2
comp=$3
if command -v man >/dev/null 2>&1; then
	text=$(MANWIDTH=200 man -l "$page" 2>/dev/null)
else
	text=$(sed 's/\\-/-/g' "$page")
fi
[ -n "$text" ] || { echo "the man page renders to nothing"; exit 1; }
fail=0
for c in listen classify devices info; do
	echo "$text" | grep -q "s4kws $(echo $c | tr a-z A-Z)" || { echo "man page: no section for $c"; fail=1; }
	line=$(grep -E "^	$c\) opts=" "$comp" || true)
	[ -n "$line" ] || { echo "completion: no case for $c"; fail=1; }
	for o in $("$bin" $c --help | grep -oE -- '^ +--[a-z][a-z0-9-]*|^usage:.*' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
		echo "$text" | grep -qe "$o" || { echo "man page: $c $o missing"; fail=1; }
		echo "$line" | grep -qe " $o \| $o\"\|\"$o " || { echo "completion: $c $o missing"; fail=1; }
	done
done
got=$(bash -c '. "$1"; COMP_WORDS=(s4kws classify --sh); COMP_CWORD=2; _s4kws; echo "${COMPREPLY[*]}"' _ "$comp")
[ "$got" = "--shard" ] || { echo "completing 'classify --sh' gave '$got'"; fail=1; }
got=$(bash -c '. "$1"; COMP_WORDS=(s4kws cla); COMP_CWORD=1; _s4kws; echo "${COMPREPLY[*]}"' _ "$comp")
[ "$got" = "classify" ] || { echo "completing 'cla' gave '$got'"; fail=1; }
[ $fail = 0 ] && echo "man page and completion list every option of every command"
exit $fail
