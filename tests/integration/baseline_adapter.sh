#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The HTTP baseline of bench/knative: the example functions, unchanged, served over
# HTTP/1.1 by bench/knative/adapter.c (build/bench/knative/http-<fn>):
#   bad command line -> exit 2
#   two http-relay chained with --next -> a trace of 2 entries
#   the same chain behind an nginx sidecar per adapter -> the same trace
#   http-pass: a 64 KiB random body comes back unchanged, alone and chained
#   next hop down -> 502, silent -> 504; body over --max-body -> 413; malformed HTTP ->
#   400 or closed, and the adapter still serves; SIGTERM/SIGINT -> exit 0
source "$(dirname "$0")/lib.sh"
init_test

KNATIVE_DIR=${KNATIVE_DIR:-$(dirname "$PALLADIUM")/bench/knative}
NGINX=${NGINX:-/usr/sbin/nginx}
for fn in echo pass relay; do
	[[ -x "$KNATIVE_DIR/http-$fn" ]] || fail "$KNATIVE_DIR/http-$fn is not built"
done
[[ -x "$NGINX" ]] || skip "needs nginx ($NGINX)"
need_cmd python3 # the next hop that never answers (504)
log "adapters in $KNATIVE_DIR, nginx $NGINX"

declare -A PID=() PORT=()

# listening PORT: something listens on 127.0.0.1:PORT.
listening() { [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }

# up_or_exited NAME
up_or_exited() { ! pid_alive "${PID[$1]}" || listening "${PORT[$1]}"; }

# start_proc NAME LOG CMD...: run CMD (its --listen port is PORT[NAME]) in the background,
# wait until it listens. Returns 1 if it exited first (its log is in LOG).
start_proc() {
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 </dev/null &
	PID[$name]=$!
	BG_PIDS+=("${PID[$name]}")
	wait_for 10 up_or_exited "$name" || fail "$name (pid ${PID[$name]}) does not listen on :${PORT[$name]}"
	pid_alive "${PID[$name]}" && return 0
	wait "${PID[$name]}"
	return 1
}

# start_adapter NAME FUNCTION [ARGS...]: http-FUNCTION on a random port (PORT[NAME]) with
# PD_FUNCTION=NAME and PD_NODE=node-NAME, logging to $TMP/comp.NAME.log.
start_adapter() {
	local name=$1 fn=$2 attempt
	shift 2
	for attempt in 1 2 3; do
		pick_port "PORT[$name]"
		if start_proc "$name" "$TMP/comp.$name.log" env PD_FUNCTION="$name" PD_NODE="node-$name" \
			"$KNATIVE_DIR/http-$fn" --listen "127.0.0.1:${PORT[$name]}" "$@"; then
			log "started $name: http-$fn :${PORT[$name]} $* (pid ${PID[$name]})"
			return 0
		fi
		grep -qi 'in use' "$TMP/comp.$name.log" || fail "$name exited at start: $(cat "$TMP/comp.$name.log")"
	done
	fail "$name: no free port in 3 attempts"
}

# start_nginx NAME UPSTREAM_PORT: nginx on a random port (PORT[NAME]) proxying to
# 127.0.0.1:UPSTREAM_PORT over keep-alive connections, as a Knative sidecar does.
start_nginx() {
	local name=$1 upstream=$2 dir=$TMP/$1 attempt
	mkdir -p "$dir"
	for attempt in 1 2 3; do
		pick_port "PORT[$name]"
		cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user $(id -un) $(id -gn);
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	client_max_body_size 1m;
	client_body_buffer_size 1m;
	upstream function {
		server 127.0.0.1:$upstream;
		keepalive 16;
	}
	server {
		listen 127.0.0.1:${PORT[$name]};
		location / {
			proxy_pass http://function;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
		if start_proc "$name" "$dir/nginx.out" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"; then
			log "started $name: nginx :${PORT[$name]} -> :$upstream (pid ${PID[$name]})"
			return 0
		fi
		grep -qi 'in use' "$dir/error.log" "$dir/nginx.out" ||
			fail "$name exited at start: $(cat "$dir/nginx.out" "$dir/error.log" 2>/dev/null)"
	done
	fail "$name: no free port in 3 attempts"
}

# stop NAME [SIGNAL]: SIGNAL (TERM) to NAME; it must exit with status 0.
exited() { ! pid_alive "$1"; }
stop() {
	local name=$1 sig=${2:-TERM} pid=${PID[$1]} t0 rc
	t0=$(now_ms)
	kill "-$sig" "$pid" || fail "kill -$sig $pid ($name)"
	wait_for 5 exited "$pid" || fail "$name (pid $pid) still runs $((5 * TIME_SCALE)) s after SIG$sig"
	bg_wait "$pid"
	rc=$?
	assert_eq 0 "$rc" "$name stopped by SIG$sig in $(($(now_ms) - t0)) ms: exit status"
	unset 'PID[$name]'
}

# to NAME: the helpers of lib.sh (post, req, flood) talk to NAME.
to() { HTTP_PORT=${PORT[$1]}; }

# --- bad command lines: exit 2 and a message
cli_rc() {
	"$KNATIVE_DIR/http-echo" "$@" >"$TMP/cli.out" 2>"$TMP/cli.err" </dev/null
	echo $?
}
for args in "" "--threads 2" "--listen" "--listen 127.0.0.1" "--listen 127.0.0.1:0" \
	"--listen 127.0.0.1:70000" "--listen 127.0.0.1:x" "--listen 127.0.0.1:1 --threads 0" \
	"--listen 127.0.0.1:1 --threads x" "--listen 127.0.0.1:1 --max-body 0" \
	"--listen 127.0.0.1:1 --max-body 1Q" "--listen 127.0.0.1:1 --next ftp://x/" \
	"--listen 127.0.0.1:1 --next http://" "--listen 127.0.0.1:1 --bogus" \
	"--listen 127.0.0.1:1 extra"; do
	# shellcheck disable=SC2086 # split on purpose
	rc=$(cli_rc $args)
	assert_eq 2 "$rc" "command line '$args': exit status"
	[[ -s "$TMP/cli.err" ]] || fail "command line '$args': nothing on stderr"
done
assert_eq 0 "$(cli_rc --help)" "--help: exit status"
assert_contains "$(cat "$TMP/cli.out")" "--listen" "--help: usage on stdout"

# --- two relays chained: a -> b
start_adapter b relay
start_adapter a relay --next "http://127.0.0.1:${PORT[b]}/relay"
trace='[{"fn":"a","node":"node-a"},{"fn":"b","node":"node-b"}]'
to a
post / '{}'
assert_status 200 "a -> b"
assert_eq "$trace" "$(resp_body)" "a -> b: trace of 2 entries"
assert_eq application/json "$(resp_header content-type)" "a -> b: content-type"
for i in 1 2 3; do
	post "/again/$i?x=$i" '{}'
	assert_status 200 "a -> b, request $i more on pooled connections"
	assert_eq "$trace" "$(resp_body)" "a -> b, request $i more: trace"
done
flood / '{}' 16
assert_eq "16 x 200; " "$FLOOD_SUMMARY" "a -> b: 16 at once"
# a keeps its connections to b open for the next requests: none was closed (a closed
# socket leaves a TIME_WAIT on the side that closed it).
closed=$(ss -Htn state time-wait "( dport = :${PORT[b]} or sport = :${PORT[b]} )" | wc -l)
assert_eq 0 "$closed" "a -> b: connections closed after 20 requests"
# a passes x-pd-hop on plus one: b takes 65534 (the last valid hop), refuses 65535.
post / '{}' -H 'x-pd-hop: 65533'
assert_status 200 "x-pd-hop 65533 at a"
post / '{}' -H 'x-pd-hop: 65534'
assert_status 400 "x-pd-hop 65534 at a: b gets 65535, out of range"
assert_contains "$(resp_body)" x-pd-hop "x-pd-hop 65534 at a: b's answer"
post / '{}' -H 'x-pd-hop: nope'
assert_status 400 "x-pd-hop not a number"

# --- the same behind an nginx sidecar each: client -> nc -> c -> nd -> d
start_adapter d relay
start_nginx nd "${PORT[d]}"
start_adapter c relay --next "http://127.0.0.1:${PORT[nd]}/relay"
start_nginx nc "${PORT[c]}"
to nc
for i in 1 2 3; do
	post / '{}'
	assert_status 200 "nginx -> c -> nginx -> d, request $i"
	assert_eq '[{"fn":"c","node":"node-c"},{"fn":"d","node":"node-d"}]' "$(resp_body)" \
		"nginx -> c -> nginx -> d, request $i: trace"
done
flood / '{}' 16
assert_eq "16 x 200; " "$FLOOD_SUMMARY" "nginx -> c -> nginx -> d: 16 at once"

# --- http-pass: 64 KiB of random bytes come back unchanged, alone and chained
start_adapter q pass
start_adapter p pass --next "http://127.0.0.1:${PORT[q]}/" --threads 2
head -c 65536 /dev/urandom >"$TMP/b64k"
want=$(sha256sum <"$TMP/b64k")
for name in q p; do
	to "$name"
	post_file / "$TMP/b64k" -H 'content-type: application/octet-stream'
	assert_status 200 "64 KiB to $name"
	assert_eq "$want" "$(sha256sum <"$TMP/resp.body")" "64 KiB to $name: same sha256"
	post_file / "$TMP/b64k" -H 'Transfer-Encoding: chunked'
	assert_status 200 "64 KiB chunked to $name"
	assert_eq "$want" "$(sha256sum <"$TMP/resp.body")" "64 KiB chunked to $name: same sha256"
done

# --- body over --max-body -> 413, at the limit -> 200
start_adapter e echo --max-body 1024
to e
head -c 1024 /dev/urandom >"$TMP/b1k"
head -c 1025 /dev/urandom >"$TMP/b1k1"
post_file / "$TMP/b1k"
assert_status 200 "1024 bytes with --max-body 1024"
cmp -s "$TMP/b1k" "$TMP/resp.body" || fail "1024 bytes: echoed differently"
pass "1024 bytes echoed byte-exactly"
post_file / "$TMP/b1k1"
assert_status 413 "1025 bytes with --max-body 1024"
post_file / "$TMP/b64k" -H 'Transfer-Encoding: chunked'
assert_status 413 "64 KiB chunked with --max-body 1024"
# Over a chain: e refuses what r passes on, r answers with e's 413.
start_adapter r pass --next "http://127.0.0.1:${PORT[e]}/"
to r
post_file / "$TMP/b1k1"
assert_status 413 "1025 bytes through r to e (--max-body 1024)"
post / '{"k":1}' -H 'content-type: application/x-test'
assert_status 200 "r -> e"
assert_eq '{"k":1}' "$(resp_body)" "r -> e: body"
assert_eq application/x-test "$(resp_header content-type)" "r -> e: content-type passed on"

# --- malformed HTTP: 400 or closed, and the adapter still serves
# raw REQUEST: send bytes on a new connection to e, read until the adapter closes it.
raw() { raw_exchange "${PORT[e]}" "$1" "$TMP/raw.out"; }
for garbage in 'THIS IS NOT HTTP\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: t\r\nno colon here\r\nContent-Length: 2\r\n\r\nhi' \
	'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' \
	'\x00\x01\x02\xff\xfe\r\n\r\n'; do
	raw "$garbage"
	rc=$?
	[[ $rc == 124 ]] && fail "malformed request '$garbage': connection still open after $((10 * TIME_SCALE)) s"
	first=$(head -n 1 "$TMP/raw.out" | tr -d '\r')
	[[ -z "$first" || "$first" == *" 400"* ]] ||
		fail "malformed request '$garbage': expected 400 or a closed connection, got '$first'"
	pass "malformed request '$garbage': ${first:-closed}"
	pid_alive "${PID[e]}" || fail "e died on malformed request '$garbage'"
done
post / still-fine
assert_status 200 "request after the malformed ones"
assert_eq still-fine "$(resp_body)" "request after the malformed ones: body"

# --- next hop down -> 502 (and SIGTERM stops an adapter cleanly)
stop b
to a
post / '{}'
assert_status 502 "a with b stopped"
stop d INT
to nc
post / '{}'
assert_status 502 "nginx -> c -> nginx -> d with d stopped"

# --- a next hop that takes the connection but never answers -> 504 (after 10 s)
pick_port "PORT[mute]"
start_proc mute "$TMP/mute.log" python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
time.sleep(600)' "${PORT[mute]}" || fail "mute listener: $(cat "$TMP/mute.log")"
start_adapter m echo --next "http://127.0.0.1:${PORT[mute]}/"
to m
CURL_MAX_TIME=40 post / '{}'
assert_status 504 "next hop that never answers"
stop m
kill "${PID[mute]}"
bg_wait "${PID[mute]}"

# --- the rest stops cleanly
for name in nc c nd a p q r e; do
	stop "$name"
done
finish
