#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The quickstart cluster (examples/quickstart.yaml on random ports) answers its three
# routes over HTTP/1.1 (keep-alive, pipelining, chunked bodies), and SIGTERM or a
# Ctrl-C to its process group stops every process it started, leaving no orphan.
source "$(dirname "$0")/lib.sh"
init_test
need_curl_http2

shm_entries() {
	find /dev/shm -maxdepth 1 -iname '*palladium*' 2>/dev/null | sort
}

"$PALLADIUM" check "$SOURCE_ROOT/examples/quickstart.yaml" >"$TMP/check.out" 2>&1 ||
	fail "palladium check examples/quickstart.yaml: $(cat "$TMP/check.out")"
pass "examples/quickstart.yaml passes palladium check"

shm_before=$(shm_entries)
start_cluster quickstart_yaml 1
for p in "$HTTP_PORT" "$ADMIN_PORT" "${NODE_PORTS[0]}"; do
	grep -q "$p" "$CFG" || fail "examples/quickstart.yaml changed: port $p not substituted"
done
wait_ready /echo

# --- the three routes
post /shout hello
assert_status 200 "POST /shout"
assert_eq 'HELLO!' "$(resp_body)" "/shout: hello -> HELLO!"

head -c 64 /dev/urandom >"$TMP/b64"
post_file /echo "$TMP/b64" -H 'content-type: application/octet-stream'
assert_status 200 "POST /echo 64 B"
cmp -s "$TMP/b64" "$TMP/resp.body" || fail "/echo: the 64-byte body came back different ($(stat -c %s "$TMP/resp.body") bytes)"
pass "/echo: 64 random bytes echoed byte-exactly"

head -c 10240 /dev/urandom >"$TMP/b10k"
post_file /echo "$TMP/b10k" -H 'content-type: application/octet-stream'
assert_status 200 "POST /echo 10 KiB"
cmp -s "$TMP/b10k" "$TMP/resp.body" || fail "/echo: the 10 KiB body came back different ($(stat -c %s "$TMP/resp.body") bytes)"
pass "/echo: 10 KiB of random bytes echoed byte-exactly"

printf 'one two three\nfour  five\n' >"$TMP/words"
post_file /wordcount "$TMP/words"
assert_status 200 "POST /wordcount"
assert_eq '{"bytes":25,"words":5,"lines":2}' "$(resp_body | tr -d '\n')" "/wordcount JSON"
assert_contains "$(resp_header content-type)" "application/json" "/wordcount content-type"

# --- keep-alive: two requests on one connection (curl reuses it: num_connects 0)
out=$(curl -sS --max-time "$CURL_MAX_TIME" --data-binary keep \
	-w '%{http_code}:%{num_connects}\n' -o /dev/null -o /dev/null \
	"http://127.0.0.1:$HTTP_PORT/echo" "http://127.0.0.1:$HTTP_PORT/shout" 2>"$TMP/ka.err")
assert_eq $'200:1\n200:0' "$out" "keep-alive: second request reused the connection"

# --- pipelining: two requests in one write; both answers, in order
pipeline() {
	exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT" || return 1
	printf 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nping1POST /shout HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nping2' >&3
	timeout $((10 * TIME_SCALE)) cat <&3 >"$TMP/pipe.out"
	local rc=$?
	exec 3<&-
	return $rc
}
pipeline || fail "pipelining: the server did not answer both and close within $((10 * TIME_SCALE)) s (got: $(head -c 400 "$TMP/pipe.out" | tr '\r' ' '))"
n200=$(grep -ao 'HTTP/1\.1 200' "$TMP/pipe.out" | wc -l)
assert_eq 2 "$n200" "pipelining: two 200 answers"
# Bodies in order: ping1 (echo) before PING2! (shout).
order=$(grep -ao 'ping1\|PING2!' "$TMP/pipe.out" | tr '\n' ' ')
assert_eq 'ping1 PING2! ' "$order" "pipelining: answers in request order"

# --- chunked request body
head -c 5000 /dev/urandom >"$TMP/b5k"
post_file /echo "$TMP/b5k" -H 'Transfer-Encoding: chunked' -H 'content-type: application/octet-stream'
assert_status 200 "POST /echo chunked"
cmp -s "$TMP/b5k" "$TMP/resp.body" || fail "/echo: chunked 5000-byte body came back different ($(stat -c %s "$TMP/resp.body") bytes)"
pass "/echo: chunked request body echoed byte-exactly"

# --- HTTP/2 with prior knowledge (h2c): the ingress speaks it, then HTTP/1.1 still
h2=$(curl -sS --max-time "$CURL_MAX_TIME" --http2-prior-knowledge --data-binary hello \
	-w '\n%{http_code} %{http_version}' "http://127.0.0.1:$HTTP_PORT/shout" 2>"$TMP/h2.err")
[[ "$h2" == $'HELLO!\n200 2' ]] ||
	fail "HTTP/2 prior knowledge: expected HELLO! with 200 over HTTP/2, got '$(tr '\n' ' ' <<<"$h2")' (curl: $(head -c 200 "$TMP/h2.err"))"
pass "HTTP/2 prior knowledge: /shout -> HELLO! over HTTP/2"
post /shout hello
assert_status 200 "HTTP/1.1 after HTTP/2"

# --- SIGTERM stops everything within 5 s, no orphan, no listener, no shared memory left
stop_cluster TERM 5
assert_eq 0 "$UP_RC" "palladium up exit status after SIGTERM"
for p in "$HTTP_PORT" "$ADMIN_PORT" "${NODE_PORTS[0]}"; do
	port_listening "$p" && fail "port $p still has a listener after the stop"
done
pass "no listener left on the cluster's ports"
assert_eq "$shm_before" "$(shm_entries)" "no palladium shared memory left in /dev/shm"

# --- Ctrl-C: SIGINT to the whole process group
start_cluster quickstart_yaml 1
wait_ready /shout hello
post /shout bye
assert_status 200 "second cluster answers"
stop_cluster INT-GROUP 5
assert_eq 0 "$UP_RC" "palladium up exit status after Ctrl-C"
for p in "$HTTP_PORT" "$ADMIN_PORT" "${NODE_PORTS[0]}"; do
	port_listening "$p" && fail "port $p still has a listener after Ctrl-C"
done
pass "no listener left after Ctrl-C"
assert_eq "$shm_before" "$(shm_entries)" "no palladium shared memory left after Ctrl-C"
exit 0
