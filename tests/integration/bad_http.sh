#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad HTTP input gets a clear answer and breaks nothing:
#   malformed request -> 400 and the connection is closed
#   headers over ingress.max_header_bytes -> 431
#   body over what the tenant's buffers hold -> 413, never truncated
#   unknown path -> 404 naming the path
#   a request without a body -> 200, empty answer
source "$(dirname "$0")/lib.sh"
init_test

cluster_yaml() {
	INGRESS_EXTRA=$'\n  max_header_bytes: 8KiB' yaml_common 1
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

# raw REQUEST: send bytes on a new connection, read until the server closes it.
raw() { raw_exchange "$HTTP_PORT" "$1" "$TMP/raw.out"; }

# closed_check WHAT RC: RC of raw(): 0 = closed (EOF), 124 = still open at the deadline,
# else the read failed, i.e. the server reset the connection: closed too.
closed_check() {
	case $2 in
	0) pass "$1: connection closed" ;;
	124) fail "$1: the connection was not closed within $((10 * TIME_SCALE)) s" ;;
	*) pass "$1: connection closed (reset by the server, unread bytes left)" ;;
	esac
}

# --- malformed request line: 400, then the server closes the connection
raw 'THIS IS NOT HTTP\r\n\r\n'
rc=$?
first=$(head -n 1 "$TMP/raw.out" | tr -d '\r')
assert_contains "$first" " 400" "malformed request line: status line"
closed_check "malformed request line" "$rc"

# A broken header line in an otherwise good request.
raw 'POST /echo HTTP/1.1\r\nHost: t\r\nthis header has no colon\r\nContent-Length: 2\r\n\r\nhi'
rc=$?
first=$(head -n 1 "$TMP/raw.out" | tr -d '\r')
assert_contains "$first" " 400" "malformed header line: status line"
closed_check "malformed header line" "$rc"

# --- a 10 KiB header (limit 8 KiB) -> 431
big=$(head -c 10240 /dev/zero | tr '\0' 'x')
post /echo hi -H "x-big: $big"
assert_status 431 "10 KiB request header"

# A header just under the limit still works.
post /echo hi -H "x-medium: ${big:0:4096}"
assert_status 200 "4 KiB request header"
assert_eq hi "$(resp_body)" "4 KiB request header: body echoed"

# --- body over the tenant's limit -> 413 (Content-Length and chunked)
head -c 65536 /dev/urandom >"$TMP/b64k"
post_file /echo "$TMP/b64k"
assert_status 413 "64 KiB body with Content-Length (buffer_size 16KiB)"
cmp -s <(head -c 1000 "$TMP/b64k") <(head -c 1000 "$TMP/resp.body") &&
	fail "64 KiB body: the answer carries the (truncated) body"
pass "64 KiB body: not echoed truncated"

post_file /echo "$TMP/b64k" -H 'Transfer-Encoding: chunked'
assert_status 413 "64 KiB chunked body (buffer_size 16KiB)"
cmp -s <(head -c 1000 "$TMP/b64k") <(head -c 1000 "$TMP/resp.body") &&
	fail "64 KiB chunked body: the answer carries the (truncated) body"
pass "64 KiB chunked body: not echoed truncated"

# Well under the limit: byte-exact.
head -c 8192 /dev/urandom >"$TMP/b8k"
post_file /echo "$TMP/b8k"
assert_status 200 "8 KiB body"
cmp -s "$TMP/b8k" "$TMP/resp.body" || fail "8 KiB body came back different"
pass "8 KiB body echoed byte-exactly"

# --- unknown path -> 404 with a body naming the path
path="/no-such-route-$RANDOM"
req GET "$path"
assert_status 404 "GET $path"
assert_contains "$(resp_body)" "$path" "404 body names the path"
post "$path/deeper" x
assert_status 404 "POST $path/deeper"

# --- no body -> 200, empty
req GET /echo
assert_status 200 "GET /echo without a body"
assert_eq 0 "$(stat -c %s "$TMP/resp.body")" "GET /echo: empty answer"

# After all that, the cluster is healthy and serving.
healthy || fail "/healthz after the bad requests"
post /echo still-fine
assert_status 200 "request after the bad ones"
assert_eq still-fine "$(resp_body)" "request after the bad ones: body"

fetch_metrics
n404=$(metric_sum palladium_ingress_requests_total 'status="404"')
assert_int -ge "$n404" 2 "/metrics counts the 404s"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
