#!/bin/sh
# test_page.sh - the live page at / in a real browser: Debian's chromium, headless, against
# `s4kws listen` with a token (from S4KWS_TOKEN) and the demo recording.
# usage: test_page.sh S4KWS DEMO.flac SCREENSHOT.png
#
# The page is opened as /#token=..., so it signs in through POST /v1/session and its
# EventSource runs on the session cookie. The audio is held back (raw S16_LE through a FIFO)
# until the page's event stream is open (s4kws_sse_clients in /metrics), so every detection
# reaches the page through /v1/events. Headless chromium dumps the DOM and takes the screenshot
# when its virtual time budget is spent, which an open event stream holds back: the daemon is
# stopped once the detections are made, the stream ends, and the page is written out. The test
# needs the five demo detections in the DOM as live ("sse") entries. Skipped (77) without
# chromium; the temporary folder is kept on failure.
set -eu
bin=$1
demo=$2
shot=$3
command -v chromium >/dev/null 2>&1 || { echo "SKIP: chromium is not installed"; exit 77; }
name=page
. "$(dirname "$0")/testlib.sh"
needs curl sox

sox "$demo" -t raw -e signed -b 16 -c 1 -r 16000 "$tmp/demo.raw" || fail "sox could not convert $demo"
mkfifo "$tmp/audio"
token=$(secret tok)
# <>: the daemon holds the FIFO open for writing too, so it waits for audio instead of EOF
S4KWS_TOKEN=$token "$bin" listen --input - --port 0 --port-file "$tmp/port" --log-level debug \
	<> "$tmp/audio" 2> "$tmp/daemon.log" &
dpid=$!
pids="$pids $dpid"
wait_for 10 test -s "$tmp/port" || fail "the daemon wrote no port file (see $tmp/daemon.log)"
port=$(cat "$tmp/port")
url="http://127.0.0.1:$port"

# the page needs no token; the API does
code=$(curl -s -o "$tmp/page.html" -w '%{http_code} %{content_type}' "$url/")
[ "$code" = "200 text/html; charset=utf-8" ] || fail "GET / answered $code"
grep -q '<title>s4kws</title>' "$tmp/page.html" || fail "GET / is not the page"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/status")" = 401 ] || fail "/v1/status answered without the token"

timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/chromium" \
	--window-size=1200,1000 --virtual-time-budget=30000 --screenshot="$shot" --dump-dom \
	"$url/#token=$token" > "$tmp/dom.html" 2> "$tmp/chromium.log" &
cpid=$!
pids="$pids $cpid"
streaming() { curl -s -H "Authorization: Bearer $token" "$url/metrics" | grep -q '^s4kws_sse_clients 1'; }
wait_for 60 streaming || fail "the page did not open /v1/events (see $tmp/chromium.log)"
cat "$tmp/demo.raw" > "$tmp/audio"
five() { curl -s -H "Authorization: Bearer $token" "$url/v1/status" | grep -q '"detections":5,'; }
wait_for 30 five || fail "the daemon did not make the demo's 5 detections"
sleep 1 # the stream delivers them
case $(ps -o args= -p $dpid) in *"$token"*) fail "the token shows in ps" ;; esac
kill -TERM $dpid
wait $dpid || fail "the daemon did not stop cleanly"
rc=0
wait $cpid || rc=$?
[ $rc = 0 ] || fail "chromium exited with $rc (see $tmp/chromium.log)"

n=$(grep -o 'class="detection[^"]*" data-id="[0-9]*" data-src="sse"' "$tmp/dom.html" | wc -l)
[ "$n" = 5 ] || fail "$n live detections in the page's DOM, not 5 (see $tmp/dom.html)"
for kw in yes stop on no right; do
	grep -q "<span class=\"kw\">$kw</span>" "$tmp/dom.html" || fail "the page does not show the detection of '$kw'"
done
grep -q 'name="yes"' "$tmp/dom.html" || fail "the page shows no threshold inputs"
n=$(grep -o 'class="bar"' "$tmp/dom.html" | wc -l)
[ "$n" = 10 ] || fail "$n score bars, not one per keyword (10)"
n=$(grep -o '<td class="dim">[01]\.[0-9][0-9][0-9]</td>' "$tmp/dom.html" | wc -l)
[ "$n" = 10 ] || fail "$n scores shown from /v1/scores, not 10"
grep -q 's4kws-sc12, 12 labels' "$tmp/dom.html" || fail "the page shows no model"
[ -s "$shot" ] || fail "chromium wrote no screenshot"
grep -F "$token" "$tmp/daemon.log" && fail "the token shows in the daemon's log"
echo "the page showed the 5 demo detections live (screenshot: $shot)"
ok=1
