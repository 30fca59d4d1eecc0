#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bounded load: wrk (1 thread, 16 connections, 3 s) posting 64 bytes to /echo gets only
# 2xx answers and no socket error, and afterwards every buffer is back and nothing is in
# flight; then h2load (HTTP/2 with prior knowledge, 4 connections x 16 streams) gets only
# 2xx too. Not a benchmark: nothing here is timed (see bench/echo for numbers).
source "$(dirname "$0")/lib.sh"
init_test
need_cmd wrk h2load
need_curl_http2

cluster_yaml() {
	yaml_common 1
	cat <<YAML
tenants:
  - { name: demo, pool: 16MiB, buffer_size: 16KiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo], timeout: 10s }
YAML
}

start_cluster cluster_yaml 1
wait_ready /echo
fetch_stats
idle=$(stat_sum demo buffers_in_use)
[[ -n "$idle" ]] || fail "palladium stats has no buffers_in_use: $(cat "$TMP/stats")"

cat >"$TMP/post64.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 64)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
timeout $((60 * TIME_SCALE)) wrk -t1 -c16 -d3s --timeout 10s -s "$TMP/post64.lua" \
	"http://127.0.0.1:$HTTP_PORT/echo" >"$TMP/wrk.out" 2>&1
rc=$?
cat "$TMP/wrk.out" >&2
assert_eq 0 "$rc" "wrk exit status"
total=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
assert_int -gt "${total:-0}" 0 "wrk completed requests"
if grep -q 'Socket errors' "$TMP/wrk.out"; then
	fail "wrk saw socket errors: $(grep 'Socket errors' "$TMP/wrk.out")"
fi
pass "no socket errors"
if grep -q 'Non-2xx or 3xx' "$TMP/wrk.out"; then
	fail "wrk saw non-2xx answers: $(grep 'Non-2xx or 3xx' "$TMP/wrk.out")"
fi
pass "all $total answers 2xx"

wait_for 10 stat_is -le demo buffers_in_use "$idle" ||
	fail "buffers_in_use did not come back to (at most) $idle: $(grep '^tenant demo ' "$TMP/stats")"
pass "buffers_in_use back to (at most) $idle"
fetch_metrics
assert_int -eq "$(metric_sum palladium_ingress_inflight)" 0 "nothing in flight after the load"
n200=$(metric_sum palladium_ingress_requests_total 'status="200"')
assert_int -ge "$n200" "$total" "/metrics counted every 200"
fetch_stats
assert_eq 0 "$(stat_sum demo dropped)" "palladium stats: nothing dropped"

# HTTP/2 with many streams per connection (h2load): the ingress speaks HTTP/2 (h2c).
h2=$(curl -sS --max-time "$CURL_MAX_TIME" --http2-prior-knowledge -o /dev/null \
	-w '%{http_code} %{http_version}' --data-binary x "http://127.0.0.1:$HTTP_PORT/echo" 2>"$TMP/h2.err")
[[ "$h2" == "200 2" ]] ||
	fail "HTTP/2 with prior knowledge on /echo: expected '200 2', got '$h2' (curl: $(head -c 200 "$TMP/h2.err"))"
pass "HTTP/2 with prior knowledge on /echo: 200 over HTTP/2"
head -c 64 /dev/zero | tr '\0' y >"$TMP/body64"
timeout $((60 * TIME_SCALE)) h2load -n 2000 -c 4 -m 16 -d "$TMP/body64" \
	"http://127.0.0.1:$HTTP_PORT/echo" >"$TMP/h2load.out" 2>&1
rc=$?
grep -E '^(requests|status codes):' "$TMP/h2load.out" >&2
assert_eq 0 "$rc" "h2load exit status"
assert_contains "$(cat "$TMP/h2load.out")" "2000 succeeded, 0 failed, 0 errored, 0 timeout" "h2load: 2000 requests on 4 connections x 16 streams succeeded"
assert_contains "$(cat "$TMP/h2load.out")" "status codes: 2000 2xx" "h2load: all 2xx"
wait_for 10 stat_is -le demo buffers_in_use "$idle" ||
	fail "after h2load: buffers_in_use did not come back to (at most) $idle"
pass "after h2load: buffers_in_use back to (at most) $idle"

# Still answers correctly after the load.
post /echo after-load
assert_status 200 "request after the load"
assert_eq after-load "$(resp_body)" "request after the load: body"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
