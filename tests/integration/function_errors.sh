#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A function that misbehaves (tests/functions/misbehave) gets the right answer at the
# ingress and never takes the platform down:
#   error -> its status and message; fail -> 500; big -> 413; headers -> passed on
#   garbage descriptors/headers -> counted in stats, dropped, everything keeps working
#   crash -> 502, restarted, buffers reclaimed
#   hang  -> 504 at the route timeout, the hung process killed, buffers freed
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$MISBEHAVE" ]] || fail "test function $MISBEHAVE is not built"

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: t, pool: 8MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: misbehave, tenant: t, exec: "$MISBEHAVE", node: a, instances: 1, threads: 1 }
  - { name: echo, tenant: t, exec: echo, node: a }
routes:
  - { path: /mis, tenant: t, chain: [misbehave], timeout: 2s }
  - { path: /echo, tenant: t, chain: [echo], timeout: 2s }
EOF
}

start_cluster cluster_yaml 1
wait_ready /mis hello
wait_ready /echo

fetch_stats
idle_in_use=$(stat_sum t buffers_in_use)
[[ -n "$idle_in_use" ]] || fail "palladium stats has no buffers_in_use for tenant t: $(cat "$TMP/stats")"
log "idle buffers_in_use=$idle_in_use"

# --- the simple ones
post /mis error
assert_status 418 "error"
assert_contains "$(resp_body)" teapot "error: the function's message"

post /mis fail
assert_status 500 "fail (handler returned -1)"

post /mis big
assert_status 413 "big (answer larger than a buffer)"

post /mis headers
assert_status 200 "headers"
assert_eq 1 "$(resp_header x-test)" "headers: x-test passed on"
assert_eq ok "$(resp_body)" "headers: body"

post /mis plain-echo
assert_status 200 "misbehave echoes"
assert_eq plain-echo "$(resp_body)" "misbehave echo body"

# --- garbage: forged descriptors and headers are counted and dropped
engine_pids() { awk '$1 == "node" { print $4 }' "$TMP/stats" | sort; }
engines_before=$(engine_pids)
post /mis garbage
assert_status 200 "garbage: the request itself is answered"
assert_eq ok "$(resp_body)" "garbage: body"
bad_counted() {
	stat_is -ge t bad_descriptors 0 || return 1
	local d h
	d=$(stat_sum t bad_descriptors)
	h=$(stat_sum t bad_headers)
	((d + h > 0))
}
wait_for 10 bad_counted || fail "garbage: no bad_descriptors or bad_headers counted: $(grep '^tenant t ' "$TMP/stats")"
pass "garbage: counted (bad_descriptors=$(stat_sum t bad_descriptors) bad_headers=$(stat_sum t bad_headers))"
assert_eq "$engines_before" "$(engine_pids)" "garbage: the engine kept running (same pid)"
for i in 1 2 3; do
	post /mis "after-garbage-$i"
	assert_status 200 "misbehave after garbage #$i"
	assert_eq "after-garbage-$i" "$(resp_body)" "misbehave after garbage #$i: body"
	post /echo "echo-$i"
	assert_status 200 "echo after garbage #$i"
done
wait_for 10 stat_is -le t buffers_in_use "$idle_in_use" ||
	fail "garbage: buffers_in_use did not come back to (at most) $idle_in_use: $(grep '^tenant t ' "$TMP/stats")"
pass "garbage: buffers_in_use back to $idle_in_use"

# --- crash: 502, restart, reclaim
post /mis crash
assert_status 502 "crash mid-request"
mis_ok() { route_ok /mis after-crash; }
wait_for 30 mis_ok || fail "crash: /mis did not answer 200 again within $((30 * TIME_SCALE)) s"
pass "crash: the function was restarted and answers"
wait_for 10 stat_is -ge t restarts 1 || fail "crash: restarts not counted: $(grep '^tenant t ' "$TMP/stats")"
pass "crash: restarts=$(stat_sum t restarts)"
wait_for 10 stat_is -ge t reclaimed 1 || fail "crash: reclaimed not counted: $(grep '^tenant t ' "$TMP/stats")"
pass "crash: reclaimed=$(stat_sum t reclaimed)"
wait_for 10 stat_is -le t buffers_in_use "$idle_in_use" ||
	fail "crash: buffers_in_use did not come back to (at most) $idle_in_use: $(grep '^tenant t ' "$TMP/stats")"
pass "crash: buffers_in_use back to $idle_in_use"

# --- hang: 504 at the route timeout; others keep working; the hung process is killed
killed_before=$(stat_now t hung_killed)
hang_req() {
	curl -sS --max-time $((15 * TIME_SCALE)) -o "$TMP/hang.body" -w '%{http_code}' \
		--data-binary hang "http://127.0.0.1:$HTTP_PORT/mis" >"$TMP/hang.status" 2>"$TMP/hang.err"
}
bg hang_pid hang_req
# While misbehave hangs, another function of the same tenant still answers.
# The hanging request shows in flight at the ingress (before its 2 s route timeout).
inflight_one() {
	fetch_metrics
	metric_present palladium_ingress_inflight || fail "/metrics has no palladium_ingress_inflight"
	(($(metric_sum palladium_ingress_inflight) >= 1))
}
wait_for 10 inflight_one ||
	fail "palladium_ingress_inflight never showed the hanging request (last: $(metric_sum palladium_ingress_inflight); hang: '$(cat "$TMP/hang.status" 2>/dev/null)')"
pass "the hanging request is in flight at the ingress"
post /echo during-hang
assert_status 200 "echo while misbehave hangs"
assert_eq during-hang "$(resp_body)" "echo while misbehave hangs: body"
bg_wait "$hang_pid"
assert_eq 504 "$(cat "$TMP/hang.status")" "hang: answered at the route timeout"
wait_for 30 stat_is -gt t hung_killed "$killed_before" ||
	fail "hang: the hung instance was not killed (hung_killed stays $killed_before): $(grep '^tenant t ' "$TMP/stats")"
pass "hang: hung_killed=$(stat_sum t hung_killed)"
mis_ok2() { route_ok /mis after-hang; }
wait_for 30 mis_ok2 || fail "hang: /mis did not answer 200 again within $((30 * TIME_SCALE)) s"
pass "hang: later requests succeed"
# One process hung and was killed once: the counter says 1, not one per buffer it held.
killed=$(($(stat_now t hung_killed) - killed_before))
if ((killed != 1)); then
	soft_fail "hang: one hung process killed, but hung_killed grew by $killed"
else
	pass "hang: hung_killed grew by exactly 1"
fi
wait_for 10 stat_is -le t buffers_in_use "$idle_in_use" ||
	fail "hang: buffers_in_use did not come back to (at most) $idle_in_use: $(grep '^tenant t ' "$TMP/stats")"
pass "hang: buffers_in_use back to $idle_in_use"

fetch_metrics
metric_present palladium_ingress_inflight || fail "/metrics has no palladium_ingress_inflight"
assert_int -eq "$(metric_sum palladium_ingress_inflight)" 0 "nothing in flight at the end"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
