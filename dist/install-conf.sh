#!/bin/sh
# install-conf.sh - meson install script: the documented config to SYSCONFDIR/s4kws/s4kws.conf,
# only when none is there (a reinstall or upgrade keeps the administrator's file).
# usage (from meson): install-conf.sh SOURCE SYSCONFDIR
set -eu
dir="${DESTDIR:-}$2/s4kws"
mkdir -p "$dir"
if [ -e "$dir/s4kws.conf" ]; then
	echo "keeping $dir/s4kws.conf"
else
	install -m 644 "$1" "$dir/s4kws.conf"
	echo "installed $dir/s4kws.conf"
fi
