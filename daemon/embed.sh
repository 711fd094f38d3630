#!/bin/sh
# embed.sh - a file as a C array, for files built into the binary (the web page of `/`).
# usage: embed.sh INPUT OUTPUT.c SYMBOL
# Writes `const unsigned char SYMBOL[]` (the bytes, plus a NUL so it is also a C string) and
# `const size_t SYMBOL_len` (the bytes without the NUL), with od and sed only (xxd is not in
# Debian's base system; gcc 12 has no #embed).
set -eu
in=$1
out=$2
sym=$3
len=$(wc -c < "$in")
{
	echo "/* generated from $(basename "$in") by daemon/embed.sh; do not edit */"
	echo "#include <stddef.h>"
	echo "const unsigned char $sym[] = {"
	od -An -v -tx1 "$in" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/\t/'
	echo "	0x00};"
	echo "const size_t ${sym}_len = $len;"
} > "$out.tmp"
mv "$out.tmp" "$out"
