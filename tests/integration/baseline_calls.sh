#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The call API of the HTTP baseline (bench/knative/adapter.c, used by bench/call):
# http-callbench calling http-echo over HTTP/1.1 (--call echo=URL):
#   bad --call / --max-call-depth / --timeout -> exit 2
#   n=0, n=1, n=8 parallel and sequential, n=64 -> "ok N" (callbench checks each answer is
#   its body), a 64 KiB body, the same through an nginx sidecar in front of echo;
#   connections are pooled (no connection closed after many calls)
#   an undeclared callee -> 403; a callee that is down -> 502 (also once pooled
#   connections to it existed); a callee that never answers -> 504 at --timeout, or at the
#   pd-deadline-ms the request carries; pd-call-depth at --max-call-depth -> 508, a bad
#   one -> 400; a function that calls itself with one thread -> 504, not a hang
source "$(dirname "$0")/lib.sh"
init_test

KNATIVE_DIR=${KNATIVE_DIR:-$(dirname "$PALLADIUM")/bench/knative}
NGINX=${NGINX:-/usr/sbin/nginx}
for fn in callbench echo; do
	[[ -x "$KNATIVE_DIR/http-$fn" ]] || fail "$KNATIVE_DIR/http-$fn is not built"
done
need_cmd python3 ss # the callee that never answers; listening sockets
log "adapters in $KNATIVE_DIR"

declare -A PID=() PORT=()

listening() { [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }
up_or_exited() { ! pid_alive "${PID[$1]}" || listening "${PORT[$1]}"; }

# start_proc NAME LOG CMD...: CMD in the background (it listens on PORT[NAME]); waits
# until it listens. Returns 1 if it exited first.
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

# start_adapter NAME FUNCTION [ARGS...]: http-FUNCTION on a free port (PORT[NAME]); an
# argument @NAME is replaced by http://127.0.0.1:PORT[NAME] (PORT[NAME] picked first if
# unset, which lets an adapter call itself).
start_adapter() {
	local name=$1 fn=$2 attempt a
	shift 2
	for attempt in 1 2 3; do
		[[ -n "${PORT[$name]:-}" && $attempt == 1 ]] || pick_port "PORT[$name]"
		local -a args=()
		for a in "$@"; do
			if [[ $a =~ ^(.*)@([a-z0-9]+)$ ]]; then
				[[ -n "${PORT[${BASH_REMATCH[2]}]:-}" ]] || pick_port "PORT[${BASH_REMATCH[2]}]"
				a="${BASH_REMATCH[1]}http://127.0.0.1:${PORT[${BASH_REMATCH[2]}]}"
			fi
			args+=("$a")
		done
		if start_proc "$name" "$TMP/comp.$name.log" "$KNATIVE_DIR/http-$fn" \
			--listen "127.0.0.1:${PORT[$name]}" "${args[@]}"; then
			log "started $name: http-$fn :${PORT[$name]} ${args[*]} (pid ${PID[$name]})"
			return 0
		fi
		grep -qi 'in use' "$TMP/comp.$name.log" || fail "$name exited at start: $(cat "$TMP/comp.$name.log")"
	done
	fail "$name: no free port in 3 attempts"
}

exited() { ! pid_alive "$1"; }
stop() {
	local name=$1 pid=${PID[$1]} rc
	kill -TERM "$pid" || fail "kill $pid ($name)"
	wait_for 5 exited "$pid" || fail "$name (pid $pid) still runs $((5 * TIME_SCALE)) s after SIGTERM"
	bg_wait "$pid"
	rc=$?
	assert_eq 0 "$rc" "$name stopped by SIGTERM: exit status"
	unset 'PID[$name]'
}

# shellcheck disable=SC2034 # read by the helpers of lib.sh
to() { HTTP_PORT=${PORT[$1]}; }

# --- bad command lines: exit 2 and a message
cli_rc() {
	"$KNATIVE_DIR/http-callbench" --listen 127.0.0.1:1 "$@" >"$TMP/cli.out" 2>"$TMP/cli.err" </dev/null
	echo $?
}
for args in "--call echo" "--call =http://127.0.0.1:1" "--call echo=ftp://127.0.0.1:1" \
	"--call echo=http://" "--call echo=http://127.0.0.1:1/p?q" \
	"--call echo=http://127.0.0.1:1 --call echo=http://127.0.0.1:2" \
	"--max-call-depth 0" "--max-call-depth 65" "--max-call-depth x" "--timeout 0" \
	"--timeout 3600001"; do
	# shellcheck disable=SC2086 # split on purpose
	rc=$(cli_rc $args)
	assert_eq 2 "$rc" "command line '$args': exit status"
	[[ -s "$TMP/cli.err" ]] || fail "command line '$args': nothing on stderr"
done

# --- callbench -> echo
start_adapter e echo
start_adapter c callbench --call echo=@e
to c
for q in "n=0" "" "n=1" "n=8" "n=8&mode=par" "n=8&mode=seq" "n=64" "n=64&mode=seq"; do
	n=${q#n=}
	n=${n%%&*}
	post "/call?$q" "hello $q"
	assert_status 200 "callbench ?$q"
	assert_eq "ok ${n:-1}" "$(resp_body)" "callbench ?$q: answer"
done
post "/call?n=65" x
assert_status 400 "n=65"
head -c 65536 /dev/urandom >"$TMP/b64k"
post_file "/call?n=8" "$TMP/b64k"
assert_status 200 "n=8 with a 64 KiB body"
assert_eq "ok 8" "$(resp_body)" "n=8 with a 64 KiB body: every answer is the body"
flood "/call?n=4" hi 8
assert_eq "8 x 200; " "$FLOOD_SUMMARY" "8 clients at once, 4 calls each"
# c keeps its connections to e for the next calls: none was closed (a closed connection
# leaves a TIME_WAIT on the side that closed it).
closed=$(ss -Htn state time-wait "( dport = :${PORT[e]} or sport = :${PORT[e]} )" | wc -l)
assert_eq 0 "$closed" "c -> e: connections closed after the calls above"

# --- through an nginx sidecar in front of echo (as bench/call runs it)
if [[ -x "$NGINX" ]]; then
	pick_port "PORT[ne]"
	d=$TMP/ne
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<NGX
daemon off;
worker_processes 1;
user $(id -un) $(id -gn);
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	client_max_body_size 1m;
	client_body_buffer_size 1m;
	upstream function { server 127.0.0.1:${PORT[e]}; keepalive 16; }
	server {
		listen 127.0.0.1:${PORT[ne]};
		location / { proxy_pass http://function; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
NGX
	start_proc ne "$d/nginx.out" "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" ||
		fail "nginx: $(cat "$d/nginx.out" "$d/error.log" 2>/dev/null)"
	start_adapter cs callbench --call echo=@ne
	to cs
	for q in "n=1" "n=8&mode=par" "n=8&mode=seq"; do
		post "/call?$q" "via nginx"
		assert_status 200 "callbench -> nginx -> echo ?$q"
		assert_eq "ok ${q:2:1}" "$(resp_body)" "callbench -> nginx -> echo ?$q: answer"
	done
	post_file "/call?n=4" "$TMP/b64k"
	assert_eq "200 ok 4" "$HTTP_STATUS $(resp_body)" "64 KiB through nginx, 4 calls"
	stop cs
	stop ne
else
	log "no nginx ($NGINX): the sidecar case is not run"
fi

# --- depth: pd-call-depth is the caller's; a call deeper than --max-call-depth -> 508
to c
post "/call?n=1" x -H 'pd-call-depth: 15'
assert_status 200 "pd-call-depth 15 (the call is 16 deep)"
post "/call?n=1" x -H 'pd-call-depth: 16'
assert_status 508 "pd-call-depth 16 (the call would be 17 deep)"
assert_contains "$(resp_body)" "max-call-depth" "508: the body says why"
post "/call?n=0" x -H 'pd-call-depth: 16'
assert_status 200 "pd-call-depth 16 without a call"
post "/call?n=1" x -H 'pd-call-depth: nope'
assert_status 400 "pd-call-depth not a number"
post "/call?n=1" x -H 'pd-deadline-ms: -1'
assert_status 400 "pd-deadline-ms not a number"
start_adapter c2 callbench --call echo=@e --max-call-depth 2
to c2
post "/call?n=1" x -H 'pd-call-depth: 1'
assert_status 200 "--max-call-depth 2, pd-call-depth 1"
post "/call?n=1" x -H 'pd-call-depth: 2'
assert_status 508 "--max-call-depth 2, pd-call-depth 2"

# --- undeclared callee -> 403, never sent
start_adapter u callbench
to u
post "/call?n=1" x
assert_status 403 "a callee not given with --call"
assert_contains "$(resp_body)" "echo" "403: the body names the callee"
post "/call?n=3&mode=seq" x
assert_status 403 "a callee not given with --call, 3 sequential"

# --- callee down -> 502: never up, and stopped while c has pooled connections to it
pick_port "PORT[nobody]"
start_adapter d callbench --call echo=@nobody
to d
post "/call?n=1" x
assert_status 502 "a callee that does not listen"
post "/call?n=8" x
assert_status 502 "8 calls to a callee that does not listen"
stop e
to c
post "/call?n=1" x
assert_status 502 "the callee stopped after earlier calls"
post "/call?n=8&mode=seq" x
assert_status 502 "the callee stopped, 8 sequential"
pid_alive "${PID[c]}" || fail "c died"

# --- a callee that takes the request and never answers -> 504
pick_port "PORT[mute]"
start_proc mute "$TMP/mute.log" python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
time.sleep(600)' "${PORT[mute]}" || fail "mute listener: $(cat "$TMP/mute.log")"
start_adapter m callbench --call echo=@mute --timeout 1000
to m
post "/call?n=1" x
assert_status 504 "a callee that never answers, --timeout 1000"
assert_contains "$(resp_body)" "deadline" "504: the body says why"
post "/call?n=8" x -H 'pd-deadline-ms: 300'
assert_status 504 "8 calls to a callee that never answers, pd-deadline-ms 300"
kill "${PID[mute]}"
bg_wait "${PID[mute]}"
unset 'PID[mute]'

# --- a function that calls itself on its only thread: every thread waits on a call that
# no thread is left to serve; the deadline ends it (504), not a hang
start_adapter self callbench --call echo=@self --timeout 1500
to self
CURL_MAX_TIME=$((20 * TIME_SCALE)) post "/call?n=1" x
assert_status 504 "callbench calling itself with one thread"
post "/call?n=0" x
assert_status 200 "the self-caller still serves after its deadline"

for name in c c2 u d m self; do
	stop "$name"
done
finish
