#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# HTTP/1.1 framing and the request line (RFC 9112, RFC 9110), on raw connections: each
# case writes its bytes on a new connection, reads until the server closes it, and
# counts the answers, so that a request hidden behind ambiguous framing shows up as a
# second answer.
#   Content-Length with Transfer-Encoding, two Content-Lengths, two Transfer-Encodings,
#   Transfer-Encoding in HTTP/1.0, obs-fold, no Host or two Hosts in HTTP/1.1
#       -> 400, Connection: close, nothing after it answered
#   a chunked body (whatever its chunk lines said, e.g. "0x3")
#       -> answered, then the connection is closed: nothing after it answered
#   a chunk size of 2^64-1 -> 413 once the body passes the limit, closed; 17 hex digits
#       -> h2o's own 400
#   over 100 header lines -> h2o's own 400, closed (431 is unreachable: see security.md)
#   absolute-form target -> routed on its path; other target forms -> 400
#   a method outside GET HEAD POST PUT PATCH DELETE OPTIONS -> 405 with Allow
#       (HTTP/1.1: closed after it), over HTTP/2 and h2c too; OPTIONS * -> 200 with Allow
#   pipelined requests with plain Content-Length framing -> all answered
source "$(dirname "$0")/lib.sh"
init_test

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: web, pool: 16MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: echo, tenant: web, exec: echo, node: a }
routes:
  - { path: /echo, tenant: web, chain: [echo], timeout: 5s }
EOF
}

start_cluster cluster_yaml 1
wait_ready /echo

# The request a smuggler hides behind the framing: any answer to it is an answer too many.
SMUGGLED='GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'

# conv BYTES: write BYTES (printf %b) on a new connection and read until the server
# closes it, for at most 10 s. Sets CONV_RC (0: closed; 124: still open at the deadline;
# else the read failed: reset by the server, closed too) and CONV_STATUSES (the status
# codes of all answers on the connection, space-separated: status lines found anywhere,
# since an answer may follow a body that ends without a newline); the bytes in
# $TMP/conv.out.
conv() {
	exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT" || fail "connect to 127.0.0.1:$HTTP_PORT"
	# The server may close before it has read everything (it answers 400 and stops
	# reading): a write to a closed connection must not end the test with SIGPIPE.
	(
		trap '' PIPE
		printf '%b' "$1" >&3
	) 2>/dev/null
	timeout $((10 * TIME_SCALE)) cat <&3 >"$TMP/conv.out"
	CONV_RC=$?
	exec 3<&-
	CONV_STATUSES=$(grep -a -E -o 'HTTP/1\.[01] [0-9]{3} [A-Z]' "$TMP/conv.out" |
		awk '{ print $2 }' | paste -sd ' ')
}

# expect WHAT STATUSES [close]: the answers on the last connection were exactly STATUSES;
# with "close", the first answer said Connection: close and the server closed.
# Soft failures: every case runs (and shows) even if one fails.
expect() {
	local what=$1 statuses=$2
	if [[ "$CONV_STATUSES" != "$statuses" ]]; then
		soft_fail "$what: expected the answers '$statuses', got '$CONV_STATUSES' ($(head -c 400 "$TMP/conv.out" | tr '\r\n' '  '))"
	else
		pass "$what: answers '$statuses'"
	fi
	if [[ "${3:-}" == close ]]; then
		if ! awk '/^\r?$/ { exit 1 } tolower($0) ~ /^connection: *close\r?$/ { found = 1; exit 0 } END { exit !found }' "$TMP/conv.out"; then
			soft_fail "$what: the answer has no 'Connection: close'"
		fi
		case $CONV_RC in
		0) pass "$what: connection closed" ;;
		124) soft_fail "$what: the connection was still open after $((10 * TIME_SCALE)) s" ;;
		*) pass "$what: connection closed (reset by the server)" ;;
		esac
	fi
	if grep -a -q 'smuggled' "$TMP/conv.out"; then
		soft_fail "$what: the hidden request was answered"
	fi
}

# ---------------------------------------------------------------- ambiguous framing: 400

# The issue's reproduction: h2o takes Transfer-Encoding, reads "0\r\n\r\n" as the whole
# body, and (before the fix) served the rest as a second request.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$SMUGGLED"
expect "Content-Length with Transfer-Encoding" 400 close

conv "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n$SMUGGLED"
expect "Transfer-Encoding with Content-Length" 400 close

# Two lengths: h2o takes the first (4: "abcd"), a front end that takes the last sees the
# GET as body.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 39\r\n\r\nabcd$SMUGGLED"
expect "two Content-Length values" 400 close

conv "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd$SMUGGLED"
expect "the same Content-Length twice" 400 close

# Two Transfer-Encodings: h2o checks only the last one.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$SMUGGLED"
expect "two Transfer-Encoding fields" 400 close

# HTTP/1.0 has no chunked coding (RFC 9112 6.1: faulty framing).
conv "POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$SMUGGLED"
expect "Transfer-Encoding in HTTP/1.0" 400 close

# A folded line (obs-fold): h2o keeps "4" and drops the continuation.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n 0\r\n\r\nabcd$SMUGGLED"
expect "obs-fold continuation line" 400 close

# ------------------------------------------------------------------ chunked bodies: close

# "0x3" is chunk size 0 with the extension "x3" for h2o: an empty body, "abc" and "0" are
# read as trailer lines. The ingress cannot see chunk lines (h2o decodes them in place),
# so it cannot refuse this one; it answers and closes, so nothing after is served.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n$SMUGGLED"
expect "chunk size 0x3" 200 close
body=$(awk 'b { print } /^\r?$/ { b = 1 }' "$TMP/conv.out")
[[ -z "$body" ]] && pass "chunk size 0x3: an empty body" ||
	soft_fail "chunk size 0x3: expected an empty body, got '$body'"

# A well-formed chunked body is echoed, and the connection closed after it.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n$SMUGGLED"
expect "chunked body with a pipelined request after it" 200 close
grep -a -q '^abcde$' "$TMP/conv.out" && pass "chunked body echoed" ||
	soft_fail "chunked body: 'abcde' not echoed: $(tr '\r\n' '  ' <"$TMP/conv.out" | head -c 400)"

# 2^64-1: h2o has no early check on the chunk size; it refuses once the decoded body
# passes max_request_entity_size (the largest tenant body limit + 1 = 16129 bytes here).
big=$(head -c 16200 /dev/zero | tr '\0' 'x')
conv "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n$big"
expect "chunk size 2^64-1" 413 close
# 17 hex digits: h2o's decoder refuses the line itself.
conv "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n$SMUGGLED"
expect "chunk size of 17 hex digits" 400 close

# ------------------------------------------------------------------------ Host: 400

conv "GET /echo HTTP/1.1\r\n\r\n$SMUGGLED"
expect "HTTP/1.1 without Host" 400 close

conv "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n$SMUGGLED"
expect "HTTP/1.1 with two Hosts" 400 close

# HTTP/1.0 needs no Host.
conv 'POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello'
expect "HTTP/1.0 without Host" 200 close
grep -a -q '^hello$' "$TMP/conv.out" && pass "HTTP/1.0 without Host: echoed" ||
	soft_fail "HTTP/1.0 without Host: not echoed"

# ----------------------------------------------------------------- header count: 400

# picohttpparser in h2o takes at most 100 header lines; h2o answers 400 and closes
# before the ingress sees the request.
many=$(for ((i = 0; i < 10000; i++)); do printf 'x-h%d: v\\r\\n' "$i"; done)
conv "GET /echo HTTP/1.1\r\nHost: x\r\n$many\r\n$SMUGGLED"
expect "10000 header lines" 400 close
many=$(for ((i = 0; i < 101; i++)); do printf 'x-h%d: v\\r\\n' "$i"; done)
conv "GET /echo HTTP/1.1\r\nHost: x\r\n$many\r\n$SMUGGLED"
expect "101 header lines" 400 close

# ------------------------------------------------------------------ request targets

conv 'POST http://example.com/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
expect "absolute-form target" 200
grep -a -q '^hi$' "$TMP/conv.out" && pass "absolute-form target: routed to /echo" ||
	soft_fail "absolute-form target: not routed to /echo: $(tr '\r\n' '  ' <"$TMP/conv.out" | head -c 300)"

conv 'POST HTTPS://example.com:8443/echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
expect "absolute-form target, upper-case scheme, port and query" 200

conv 'GET http://example.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
expect "absolute-form target without a path" 404
grep -a -q '^no route for /$' "$TMP/conv.out" && pass "absolute-form without a path: the path is /" ||
	soft_fail "absolute-form without a path: expected 'no route for /': $(tr '\r\n' '  ' <"$TMP/conv.out" | head -c 300)"

conv "GET echo HTTP/1.1\r\nHost: x\r\n\r\n$SMUGGLED"
expect "target without a leading slash" 400 close

conv "GET ftp://example.com/echo HTTP/1.1\r\nHost: x\r\n\r\n$SMUGGLED"
expect "absolute-form target of another scheme" 400 close

conv "GET http:///echo HTTP/1.1\r\nHost: x\r\n\r\n$SMUGGLED"
expect "absolute-form target without a host" 400 close

# --------------------------------------------------------------------------- methods

for m in TRACE CONNECT PROPFIND get; do
	conv "$m /echo HTTP/1.1\r\nHost: x\r\n\r\n$SMUGGLED"
	expect "$m /echo" 405 close
	grep -a -q -i '^allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'$'\r''$' "$TMP/conv.out" &&
		pass "$m /echo: Allow header" || soft_fail "$m /echo: no Allow header listing the methods"
done
conv "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n$SMUGGLED"
expect "CONNECT example.com:443" 405 close

conv 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
expect "OPTIONS *" 200
grep -a -q -i '^allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'$'\r''$' "$TMP/conv.out" &&
	pass "OPTIONS *: Allow header" || soft_fail "OPTIONS *: no Allow header"

for m in GET POST PUT PATCH DELETE OPTIONS; do
	req "$m" /echo --data-binary "m-$m"
	[[ "$HTTP_STATUS" == 200 && "$(resp_body)" == "m-$m" ]] && pass "$m /echo: 200, echoed" ||
		soft_fail "$m /echo: expected 200 and 'm-$m', got $HTTP_STATUS '$(resp_body)'"
done
req HEAD /echo
[[ "$HTTP_STATUS" == 200 ]] && pass "HEAD /echo: 200" || soft_fail "HEAD /echo: got $HTTP_STATUS"

# HTTP/2: the same rule.
for m in TRACE PROPFIND; do
	req "$m" /echo --http2-prior-knowledge
	[[ "$HTTP_STATUS" == 405 ]] && pass "HTTP/2 $m /echo: 405" ||
		soft_fail "HTTP/2 $m /echo: expected 405, got $HTTP_STATUS '$(resp_body)'"
	[[ "$(resp_header allow)" == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" ]] &&
		pass "HTTP/2 $m /echo: Allow header" || soft_fail "HTTP/2 $m /echo: Allow is '$(resp_header allow)'"
done
req PUT /echo --http2-prior-knowledge --data-binary h2put
[[ "$HTTP_STATUS" == 200 && "$(resp_body)" == h2put ]] && pass "HTTP/2 PUT /echo: 200, echoed" ||
	soft_fail "HTTP/2 PUT /echo: expected 200 and 'h2put', got $HTTP_STATUS '$(resp_body)'"

# HTTP/1.1 upgraded to HTTP/2 (h2c): the first request is answered over HTTP/2 (the
# ingress does not read its HTTP/1 head again, see security.md); methods as above.
h2c() {
	http_curl -sS --max-time "$CURL_MAX_TIME" --http2 -o "$TMP/resp.body" \
		-w '%{http_code} %{http_version}' "$@" "http://127.0.0.1:$HTTP_PORT/echo" 2>"$TMP/resp.err"
}
got=$(h2c --data-binary h2c-up)
[[ "$got" == "200 2" && "$(resp_body)" == h2c-up ]] && pass "POST /echo upgraded to h2c: 200 over HTTP/2, echoed" ||
	soft_fail "POST /echo upgraded to h2c: expected '200 2' and 'h2c-up', got '$got' '$(resp_body)' $(head -c 300 "$TMP/resp.err")"
got=$(h2c -X TRACE)
[[ "$got" == "405 2" ]] && pass "TRACE /echo upgraded to h2c: 405 over HTTP/2" ||
	soft_fail "TRACE /echo upgraded to h2c: expected '405 2', got '$got'"

# ------------------------------------------------- what must keep working: keep-alive

conv 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none'"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"'GET /no-route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
expect "three pipelined requests framed by Content-Length" "200 200 404"

healthy || soft_fail "/healthz after the bad requests"
post /echo still-fine
[[ "$HTTP_STATUS" == 200 && "$(resp_body)" == still-fine ]] && pass "request after all that" ||
	soft_fail "request after all that: $HTTP_STATUS '$(resp_body)'"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
