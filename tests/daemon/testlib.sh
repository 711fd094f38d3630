# testlib.sh - what the shell tests of tests/daemon share; sourced, after setting $name:
#   . "$(dirname "$0")/testlib.sh"
# needs TOOL...    fail unless each tool is installed (.ci/packages-test has them)
# $tmp             a fresh folder /tmp/s4kws-test-$name-XXXXXX, removed at exit when ok=1,
#                  else kept and named (its logs are what to read)
# pids             processes to kill -9 at exit (append with pids="$pids $!")
# fail MSG         print FAIL: MSG and exit 1
# wait_for S CMD   run CMD every 0.1 s until it succeeds (0) or S seconds pass (1)
# secret PREFIX    a random string PREFIX-<16 hex digits>
needs() {
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || { echo "FAIL: $p is needed (.ci/packages-test)"; exit 1; }
	done
}
tmp=$(mktemp -d "/tmp/s4kws-test-$name-XXXXXX")
pids=""
ok=0
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
	if [ $ok = 1 ]; then rm -rf "$tmp"; else echo "kept $tmp (the daemon's log and the test's files)"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
wait_for() {
	n=$(($1 * 10)); shift
	while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
	return 1
}
secret() { echo "$1-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }
