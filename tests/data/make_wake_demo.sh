#!/bin/sh
# make_wake_demo.sh - tests/data/wake_demo.flac, the wake-word model's demo (README.md): the three
# wake words, each followed by a request, spoken by Debian's TTS engines (espeak-ng, flite) with
# 0.8 s of silence around every phrase, 16 kHz mono FLAC. Synthetic speech of the same engines the
# model learned from: it shows the model running, it measures nothing (bench/proxy.sh does).
# usage: sh tests/data/make_wake_demo.sh OUT.flac
set -eu
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en-us+f3 -s 150 -w "$tmp/1.wav" "computer"
espeak-ng -v en-gb -s 160 -w "$tmp/2.wav" "what is the weather like today"
flite -voice slt -t "jarvis" -o "$tmp/3.wav"
flite -voice kal -t "turn on the kitchen lights please" -o "$tmp/4.wav"
espeak-ng -v en-us-nyc -s 140 -w "$tmp/5.wav" "alexa"
espeak-ng -v en-gb-scotland+m3 -s 150 -w "$tmp/6.wav" "play some music in the living room"
sox -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 0.8
set --
for i in 1 2 3 4 5 6; do
	sox "$tmp/$i.wav" -r 16000 -c 1 -b 16 "$tmp/r$i.wav"
	set -- "$@" "$tmp/gap.wav" "$tmp/r$i.wav"
done
sox "$@" "$tmp/gap.wav" "$tmp/gap.wav" -C 8 "$out"
