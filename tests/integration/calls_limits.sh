#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Calls refused with 503 (issue 13), with engine.ring_size 16, which sizes both an
# instance's inbound ring and its process's call table (tests/functions/callprobe):
#   - the callee's queue is full: a single-threaded callee is held by a slow request,
#     one caller queues 10 calls to it, another tries 10 more: 6 fit, 4 get 503 at once,
#     and all that fit are answered once the callee is free;
#   - too many calls out: a fan-out of 17 from one process: 16 answered, the 17th 503.
# The callers see the statuses (they answer 200 with a summary); nothing leaks.
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$CALLPROBE" ]] || fail "test function $CALLPROBE is not built"

RING=16

cluster_yaml() {
	ENGINE_EXTRA=", ring_size: $RING" yaml_common 1
	cat <<EOF
tenants:
  - { name: t, pool: 16MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: busy, tenant: t, exec: "$CALLPROBE", node: a, threads: 1 }
  - { name: c1, tenant: t, exec: "$CALLPROBE", node: a, calls: [busy] }
  - { name: c2, tenant: t, exec: "$CALLPROBE", node: a, calls: [busy] }
  - { name: c3, tenant: t, exec: "$CALLPROBE", node: a, calls: [back] }
  - { name: back, tenant: t, exec: "$CALLPROBE", node: a, threads: 4 }
routes:
  - { path: /busy, tenant: t, chain: [busy], timeout: 5s }
  - { path: /c1, tenant: t, chain: [c1], timeout: 5s }
  - { path: /c2, tenant: t, chain: [c2], timeout: 5s }
  - { path: /c3, tenant: t, chain: [c3], timeout: 5s }
EOF
}

start_cluster cluster_yaml 1
for r in /busy /c1 /c2 /c3; do
	wait_ready "$r"
done
fetch_stats
idle=$(stat_sum t buffers_in_use)
busy_handled0=$(fn_stat busy handled)
to_functions0=$(stat_sum t to_functions)

# bg_post NAME PATH BODY [CURL ARGS...]: a POST in the background; status and body in
# $TMP/NAME.status and $TMP/NAME.body.
bg_post() {
	local name=$1 path=$2 body=$3
	shift 3
	curl -sS --max-time $((15 * TIME_SCALE)) -o "$TMP/$name.body" -w '%{http_code}' "$@" \
		--data-binary "$body" "http://127.0.0.1:$HTTP_PORT$path" >"$TMP/$name.status" 2>"$TMP/$name.err"
}
# statuses FILE: the first two columns (index, status) of a summary, one call a line.
statuses() { awk '{ print $1, $2 }' "$1"; }

# --- the callee's queue is full
# busy's only thread takes a 2 s request: delivered (to_functions) and taken from its
# ring (ring=0).
busy_pid=""
bg busy_pid bg_post busy '/busy?do=sleep&ms=2000' hold
busy_taken() {
	fetch_stats
	(($(stat_sum t to_functions) == to_functions0 + 1)) &&
		grep -Eq '^ +instance busy/[0-9]+ .* ring=0$' "$TMP/stats"
}
wait_for 10 busy_taken || fail "busy never took the slow request: $(grep -E '^ +instance busy/' "$TMP/stats")"
pass "busy's only thread is held"

c1_pid=""
bg c1_pid bg_post c1 '/c1?do=call&to=busy&n=10&wait=all' one
wait_for 10 fn_stat_is -eq c1 calls_started 10 || fail "c1's 10 calls never went out"
queued_10() { fetch_stats && grep -Eq '^ +instance busy/[0-9]+ .* ring=10$' "$TMP/stats"; }
wait_for 10 queued_10 || fail "busy's ring does not hold c1's 10 calls: $(grep -E '^ +instance busy/' "$TMP/stats")"
pass "c1's 10 calls wait in busy's ring"

post '/c2?do=call&to=busy&n=10&wait=all' two
assert_status 200 "c2 answers"
expect2=$(for i in 0 1 2 3 4 5; do echo "$i 200"; done; for i in 6 7 8 9; do echo "$i 503"; done)
assert_eq "$expect2" "$(statuses "$TMP/resp.body")" "c2: the $((RING - 10)) calls that fit answered, the 4 others got 503"
assert_eq "$(for i in 0 1 2 3 4 5; do echo "$i 200 two-$i"; done)" "$(head -n 6 "$TMP/resp.body")" "c2: the answers that fit are the callee's"
bg_wait "$c1_pid"
assert_eq 200 "$(cat "$TMP/c1.status")" "c1 answers"
assert_eq "$(for i in 0 1 2 3 4 5 6 7 8 9; do echo "$i 200 one-$i"; done)" "$(cat "$TMP/c1.body")" "c1: all 10 queued calls answered"
bg_wait "$busy_pid"
assert_eq 200 "$(cat "$TMP/busy.status")" "the slow request was answered"
expect_fn_stats c2 "calls_started=10 calls_answered=6 calls_failed=4 calls_timed_out=0 calls_late=0" "callee queue full"
expect_fn_stats busy "handled=$((busy_handled0 + 1 + RING))" "busy ran the slow request and the $RING calls that fit"
expect_within 10 "callee queue full: buffers_in_use back to $idle" stat_is -eq t buffers_in_use "$idle"

# --- too many calls out
post "/c3?do=call&to=back&n=$((RING + 1))&wait=all" many
assert_status 200 "c3 answers"
expect3=$(for ((i = 0; i < RING; i++)); do echo "$i 200"; done; echo "$RING 503")
assert_eq "$expect3" "$(statuses "$TMP/resp.body")" "c3: $RING calls out at once, the next one got 503"
expect_fn_stats c3 "calls_started=$((RING + 1)) calls_answered=$RING calls_failed=1 calls_timed_out=0 calls_late=0" "too many calls out"
expect_within 10 "too many calls out: buffers_in_use back to $idle" stat_is -eq t buffers_in_use "$idle"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
