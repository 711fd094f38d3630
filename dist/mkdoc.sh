#!/bin/sh
# mkdoc.sh - the man page s4kws(1) or the bash completion, written from the --help text of the
# built binary (run by meson at build time), so that neither can drift from the option tables
# that --help is printed from.
#
# usage: dist/mkdoc.sh S4KWS man|bash > OUT
set -eu
bin=$1
what=$2
commands="listen classify devices info"
version=$("$bin" --version | sed 's/^s4kws //')

# option names of a command's --help: those of its usage line, the long options at the start
# of its option lines, and the paragraph that lists the detection settings classify shares
opts() {
	"$bin" "$1" --help | awk '
		NR == 1 || /^Detection settings/, /;$/ { print; next }
		/^ +-/ { sub(/^ +/, ""); split($0, a, /  +/); print a[1] }' |
		grep -oE -- '--[a-z][a-z0-9-]*' | sort -u | tr '\n' ' '
}

# troff from help text: option lines become tagged paragraphs (continuation lines, indented
# deeper, join them), other lines text; '\' and '-' escaped, leading '.' and "'" protected
troff() {
	awk '
	function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); if (s ~ /^[.'"'"']/) s = "\\&" s; return s }
	/^usage:/ { next }
	/^$/ { if (tp) tp = 0; print ".PP"; next }
	/^ +-/ {
		line = $0; sub(/^ +/, "", line)
		n = split(line, a, /  +/)
		print ".TP"; print ".B " esc(a[1])
		d = ""; for (i = 2; i <= n; i++) d = d (i > 2 ? " " : "") a[i]
		if (d != "") print esc(d)
		tp = 1; next
	}
	tp && /^          +/ { line = $0; sub(/^ +/, "", line); print esc(line); next }
	{ tp = 0; line = $0; sub(/^ +/, "", line); print esc(line) }
	'
}

case $what in
man)
	cat <<HEAD
.TH S4KWS 1 "" "s4kws $version" "User Commands"
.SH NAME
s4kws \\- spot spoken keywords in live audio and files with S4 state-space models
.SH SYNOPSIS
.B s4kws
.I command
.RI [ options ]
.PP
.B s4kws
.B listen
.RI [ options ]
.br
.B s4kws
.B classify
.RI [ options ]
.I file|dir|@list|\\-
\\&...
.br
.B s4kws devices
.br
.B s4kws info
.RI [ options ]
.SH DESCRIPTION
HEAD
	"$bin" --help | sed -n '/^commands:/,/^$/p' | grep '^  ' | while read -r c rest; do
		printf '.TP\n.B %s\n%s\n' "$c" "$rest" | sed 's/-/\\-/g'
	done
	for c in $commands; do
		printf '.SH "s4kws %s"\n' "$(echo "$c" | tr a-z A-Z)"
		"$bin" "$c" --help | sed -n '1p' | sed 's/^usage: //; s/-/\\-/g' | sed 's/^/.B /'
		"$bin" "$c" --help | troff
	done
	cat <<TAIL
.SH FILES
.TP
.I /etc/s4kws/s4kws.conf
the daemon's configuration (\\fB\\-\\-config\\fR); every listen option as \\fIname = value\\fR
.SH SEE ALSO
.BR curl (1),
.BR systemctl (1);
the HTTP API in /usr/share/doc/s4kws/http.md, the model card in MODEL_CARD.md.
TAIL
	;;
bash)
	cat <<HEAD
# bash completion for s4kws $version (written from its --help by dist/mkdoc.sh)
_s4kws() {
	local cur=\${COMP_WORDS[COMP_CWORD]} cmd=\${COMP_WORDS[1]} opts
	if [ "\$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=(\$(compgen -W "$commands --help --version" -- "\$cur"))
		return
	fi
	case \$cmd in
HEAD
	for c in $commands; do
		printf '\t%s) opts="%s";;\n' "$c" "$(opts "$c")"
	done
	cat <<'TAIL'
	*) opts="";;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _s4kws s4kws
TAIL
	;;
*)
	echo "usage: dist/mkdoc.sh S4KWS man|bash" >&2
	exit 2
	;;
esac
