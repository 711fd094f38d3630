#!/bin/sh
# test_mqtt.sh - `s4kws listen --mqtt` against a real broker: Debian's mosquitto on a free
# loopback port with password authentication, read with mosquitto_sub.
# usage: test_mqtt.sh S4KWS DEMO.flac
#
# Checks: the Home Assistant discovery configs (retained, one per keyword, the keys Home
# Assistant's MQTT event schema needs, distinct unique_ids, the availability topic, the device);
# availability "online" (retained); a detection on PREFIX/detection equal to /v1/detections'
# item and on its per-keyword topic; the Hermes message; status and metrics figures; a broker
# that freezes, then dies and comes back (the detection it never acknowledged is sent again,
# detections made while it is down are queued, the oldest dropped beyond --mqtt-queue, and
# published once the daemon is back); the last will "offline" after kill -9; a new topic
# prefix from the config file on SIGHUP; "offline" after a clean SIGTERM; and that neither the
# token (from --token-file, then from S4KWS_TOKEN) nor the MQTT password shows in ps or the log.
# Skipped (77) when mosquitto is not installed. The temporary folder is kept on failure.
set -eu
bin=$1
demo=$2
for p in /usr/sbin/mosquitto mosquitto_sub mosquitto_pub mosquitto_passwd; do
	command -v "$p" >/dev/null 2>&1 || { echo "SKIP: $p is not installed (Debian: mosquitto mosquitto-clients)"; exit 77; }
done
name=mqtt
. "$(dirname "$0")/testlib.sh"
needs curl jq
chmod 755 "$tmp" # mosquitto started as root reads its password file as user mosquitto

token=$(secret tok)
mqpass=$(secret mq)
printf '%s\n' "$token" > "$tmp/token"
printf '%s\n' "$mqpass" > "$tmp/mqpass"
chmod 600 "$tmp/token" "$tmp/mqpass"
printf 'Authorization: Bearer %s\n' "$token" > "$tmp/auth"
mosquitto_passwd -b -c "$tmp/passwd" reader reader-pw >/dev/null 2>&1
mosquitto_passwd -b "$tmp/passwd" s4kws "$mqpass" >/dev/null 2>&1
chmod 644 "$tmp/passwd"
grep -q '^reader:' "$tmp/passwd" || fail "mosquitto_passwd wrote no password file"
R="-u reader -P reader-pw"
kws="yes no up down left right on off stop go"

# start_broker N PASSWD: the broker on $port (log N.log); 1 when it did not come up
start_broker() {
	printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence false\n' \
		"$port" "$2" > "$tmp/broker.conf"
	/usr/sbin/mosquitto -v -c "$tmp/broker.conf" > "$tmp/broker$1.log" 2>&1 &
	bpid=$!
	pids="$pids $bpid"
	wait_for 5 mosquitto_pub -p "$port" $R -t probe -n 2>/dev/null && return 0
	kill -9 $bpid 2>/dev/null || true
	return 1
}
port=""
for i in 1 2 3 4 5 6 7 8; do
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
	start_broker 1 "$tmp/passwd" && break
	port=""
done
[ -n "$port" ] || fail "mosquitto did not start on a loopback port (see $tmp/broker1.log)"

topic=s4kws/test
disc=homeassistant/event/s4kws_test
# configs a former run left: a keyword and a channel this daemon lacks (to be cleared), and
# another daemon's (to be kept)
for t in "$disc/oldkw_ch0" "$disc/yes_ch3" homeassistant/event/other/yes_ch0; do
	mosquitto_pub -p "$port" $R -r -t "$t/config" -m '{"name":"old"}' || fail "cannot publish to mosquitto"
done
mosquitto_sub -p "$port" $R -i sub1 -F '%r %t %p' -t "$topic/#" -t 'homeassistant/#' -t 'hermes/#' \
	> "$tmp/sub1.txt" 2>&1 &
pids="$pids $!"
wait_for 5 grep -qs "as sub1" "$tmp/broker1.log" || fail "mosquitto_sub did not connect"

"$bin" listen --input "$demo" --realtime --port 0 --port-file "$tmp/port" --token-file "$tmp/token" \
	--mqtt "mqtt://s4kws@127.0.0.1:$port" --mqtt-password-file "$tmp/mqpass" --mqtt-topic "$topic" \
	--mqtt-hermes --mqtt-retry-max 1 --mqtt-queue 1 --log-level debug 2> "$tmp/daemon1.log" &
dpid=$!
pids="$pids $dpid"
wait_for 10 test -s "$tmp/port" || fail "the daemon wrote no port file (see $tmp/daemon1.log)"
hport=$(cat "$tmp/port")
api() { curl -sf -H @"$tmp/auth" "http://127.0.0.1:$hport$1"; }

# secrets given by file: not in ps
args=$(ps -o args= -p $dpid)
case $args in *"$token"* | *"$mqpass"*) fail "a secret shows in ps: $args" ;; esac
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/v1/status")" = 401 ] ||
	fail "/v1/status answered without the token from --token-file"

# discovery and a detection
wait_for 30 grep -qs "^0 $topic/detection {" "$tmp/sub1.txt" || fail "no detection on $topic/detection"
grep -q "^0 $topic/availability online" "$tmp/sub1.txt" || fail "no availability online"
retained() { mosquitto_sub -p "$port" $R -W 1 -C 1 -F '%r %p' -t "$1/config" 2>/dev/null || true; }
for t in "$disc/oldkw_ch0" "$disc/yes_ch3"; do
	[ -z "$(retained "$t")" ] || fail "the stale discovery config $t was not cleared"
done
[ "$(retained homeassistant/event/other/yes_ch0)" = '1 {"name":"old"}' ] ||
	fail "another daemon's discovery config was cleared"
grep -q "removed the Home Assistant entity s4kws_test_oldkw_ch0" "$tmp/daemon1.log" || fail "the removal was not logged"
mosquitto_sub -p "$port" $R -W 3 -C 11 -F '%r %t %p' -t "$disc/#" -t "$topic/availability" \
	> "$tmp/retained.txt" 2>/dev/null || true
grep -q "^1 $topic/availability online$" "$tmp/retained.txt" || fail "availability online is not retained"
for kw in $kws; do
	line=$(grep "^1 homeassistant/event/s4kws_test/${kw}_ch0/config " "$tmp/retained.txt") ||
		fail "no retained discovery config for $kw"
	echo "${line#* * }" | jq -e --arg kw "$kw" --arg t "$topic" '
		(.name | type == "string" and length > 0) and (.unique_id == "s4kws_test_\($kw)_ch0") and
		(.state_topic == "\($t)/detection/\($kw)/0") and (.event_types == [$kw]) and
		(.availability_topic == "\($t)/availability") and (.payload_available == "online") and
		(.payload_not_available == "offline") and (.value_template | contains("event_type")) and
		(.device.identifiers | length == 1) and (.device.name | type == "string")' >/dev/null ||
		fail "discovery config for $kw lacks what Home Assistant needs: ${line#* * }"
done
n=$(grep '^1 homeassistant/' "$tmp/retained.txt" | sed 's/^1 [^ ]* //' | jq -r .unique_id | sort -u | wc -l)
[ "$n" = 10 ] || fail "$n distinct unique_ids, not 10"
first=$(grep -m1 "^0 $topic/detection {" "$tmp/sub1.txt" | sed 's/^0 [^ ]* //')
want=$(api '/v1/detections?limit=1' | jq -c '.detections[0]')
[ "$(echo "$first" | jq -c .)" = "$want" ] || fail "MQTT detection $first is not /v1/detections' $want"
kw=$(echo "$first" | jq -r .keyword)
grep -q "^0 $topic/detection/$kw/0 {" "$tmp/sub1.txt" || fail "nothing on $topic/detection/$kw/0"
wait_for 3 grep -qs "^0 hermes/hotword/$kw/detected " "$tmp/sub1.txt" || fail "no hermes/hotword/$kw/detected"
grep "^0 hermes/hotword/$kw/detected " "$tmp/sub1.txt" | sed 's/^0 [^ ]* //' |
	jq -e --arg kw "$kw" '.modelId == $kw and (.siteId | type == "string")' >/dev/null || fail "bad hermes payload"
api /v1/status | jq -e --arg t "$topic" '.mqtt.connected and .mqtt.published >= 1 and .mqtt.topic == $t and
	.mqtt.dropped == 0' >/dev/null || fail "status: $(api /v1/status | jq -c .mqtt)"
api /metrics | grep -q '^s4kws_mqtt_published_total [1-9]' || fail "metrics lack s4kws_mqtt_published_total"

# a frozen broker: the detection handed over but never acknowledged is sent again after the
# reconnection (libmosquitto keeps QoS 1 messages until their PUBACK)
pub0=$(api /v1/status | jq .mqtt.published)
kill -STOP $bpid
handed() { api /v1/status | jq -e --argjson p "$pub0" '.mqtt.published > $p' >/dev/null; }
wait_for 60 handed || fail "no detection was handed to the frozen broker: $(api /v1/status | jq -c .mqtt)"
unacked=$(api /v1/status | jq .last_id)
# then the broker dies: what is detected while it is down waits in the queue (of 1: the newer
# of two)
kill -9 $bpid
wait $bpid 2>/dev/null || true
down() { api /v1/status | jq -e '.mqtt.connected == false' >/dev/null; }
wait_for 5 down || fail "status still says connected after the broker died"
last=$(api /v1/status | jq .last_id)
queued() { api /v1/status | jq -e --argjson l "$last" '.last_id >= $l + 2' >/dev/null; }
wait_for 60 queued || fail "no two detections while the broker was down: $(api /v1/status | jq -c .)"
api /v1/status | jq -e '.mqtt.queued == 1 and .mqtt.dropped == 1' >/dev/null ||
	fail "two detections while the broker was down, queue of 1: $(api /v1/status | jq -c .mqtt)"
missed=$((last + 2)) # the newest is kept, the oldest dropped
# the broker comes back knowing only the reader, so that the reader subscribes before the
# daemon's queue is published; then the daemon's account is added and the broker reloads it
grep '^reader:' "$tmp/passwd" > "$tmp/passwd2"
chmod 644 "$tmp/passwd2"
start_broker 2 "$tmp/passwd2" || fail "mosquitto did not restart on port $port"
mosquitto_sub -p "$port" $R -i sub2 -F '%r %t %p' -t "$topic/#" > "$tmp/sub2.txt" 2>&1 &
pids="$pids $!"
wait_for 5 grep -qs "as sub2" "$tmp/broker2.log" || fail "mosquitto_sub did not reconnect"
cp "$tmp/passwd" "$tmp/passwd2"
kill -HUP $bpid
seen() { grep -qs "^0 $topic/detection {\"id\":$1," "$tmp/sub2.txt"; }
wait_for 10 seen $missed ||
	fail "the detection made while the broker was down ($missed) was not published after it came back"
seen $unacked || fail "the detection the frozen broker never acknowledged ($unacked) was not sent again"
seen $((last + 1)) && fail "the dropped detection was published"
api /v1/status | jq -e '.mqtt.connected and .mqtt.connects >= 2' >/dev/null ||
	fail "status after the reconnection: $(api /v1/status | jq -c .mqtt)"
grep -q "mqtt: connected to 127.0.0.1:$port again" "$tmp/daemon1.log" || fail "the reconnection was not logged"

# the last will
mosquitto_sub -p "$port" $R -i sub3 -F '%r %p' -t "$topic/availability" > "$tmp/sub3.txt" 2>&1 &
pids="$pids $!"
wait_for 5 grep -qs "^1 online" "$tmp/sub3.txt" || fail "availability is not online before kill -9"
kill -9 $dpid
wait $dpid 2>/dev/null || true
wait_for 5 grep -qs "^0 offline" "$tmp/sub3.txt" || fail "no last will 'offline' after kill -9"
[ "$(mosquitto_sub -p "$port" $R -W 3 -C 1 -F '%r %p' -t "$topic/availability")" = "1 offline" ] ||
	fail "the last will is not retained"

# a new prefix on SIGHUP, a clean stop, with the token from the environment
echo "mqtt-topic = $topic" > "$tmp/s4kws.conf"
S4KWS_TOKEN=$token "$bin" listen --config "$tmp/s4kws.conf" --input none --port 0 --port-file "$tmp/port2" \
	--mqtt "mqtt://s4kws@127.0.0.1:$port" --mqtt-password-file "$tmp/mqpass" --log-level debug \
	2> "$tmp/daemon2.log" &
dpid=$!
pids="$pids $dpid"
wait_for 10 test -s "$tmp/port2" || fail "the second daemon wrote no port file"
hport=$(cat "$tmp/port2")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/v1/status")" = 401 ] ||
	fail "/v1/status answered without the token from S4KWS_TOKEN"
api /v1/status >/dev/null || fail "the token from S4KWS_TOKEN is not accepted"
args=$(ps -o args= -p $dpid)
case $args in *"$token"* | *"$mqpass"*) fail "a secret shows in ps: $args" ;; esac
# availability T STATE: the retained availability of prefix T is STATE
availability() { [ "$(mosquitto_sub -p "$port" $R -W 2 -C 1 -F '%r %p' -t "$1/availability")" = "1 $2" ]; }
wait_for 10 availability "$topic" online || fail "the second daemon did not come online"
echo "mqtt-topic = $topic/2" > "$tmp/s4kws.conf"
kill -HUP $dpid
wait_for 10 availability "$topic/2" online || fail "SIGHUP: not online under the new prefix $topic/2"
availability "$topic" offline || fail "SIGHUP: the old prefix $topic is not offline"
kill -TERM $dpid
rc=0
wait $dpid || rc=$?
[ $rc = 0 ] || fail "the daemon exited with $rc after SIGTERM"
availability "$topic/2" offline || fail "no retained 'offline' after SIGTERM"

# no secret in any log line
if grep -F -e "$token" -e "$mqpass" "$tmp/daemon1.log" "$tmp/daemon2.log"; then
	fail "a secret shows in the daemon's log"
fi
echo "discovery for $(echo $kws | wc -w) keywords, detections, hermes, queue over a broker restart, last will, SIGHUP, clean stop: ok"
ok=1
