# listen_eof.sh - sourced by the benchmarks that run `s4kws listen --input FILE --port 0
# --port-file PORTFILE`: listen_eof PORTFILE waits for the port, then polls /v1/status until the
# input is used up (state eof, at most 10 min) and prints that last status (JSON).
listen_eof() {
	local pf=$1 port st=""
	for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.1; done
	port=$(cat "$pf")
	for _ in $(seq 6000); do
		st=$(curl -s "http://127.0.0.1:$port/v1/status")
		case "$st" in *'"state":"eof"'*) break ;; esac
		sleep 0.1
	done
	printf '%s\n' "$st"
}
