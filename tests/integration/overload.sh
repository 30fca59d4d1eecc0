#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Overload is refused at once with 503, never queued without bound, and leaves nothing
# behind:
#   ring full      (engine.ring_size 16, the function stopped)     -> 503
#   no free buffer (a 1 MiB pool of 16 KiB buffers, the function stopped) -> 503
# The function is frozen with SIGSTOP (by its recorded pid) so that requests pile up,
# then resumed with SIGCONT: everything drains, every buffer comes back.
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$MISBEHAVE" ]] || fail "test function $MISBEHAVE is not built"

# overload TENANT PATH N: freeze TENANT's function, send N concurrent requests, expect
# some 503 and nothing but 503/504, thaw, check the recovery.
overload() {
	local tenant=$1 path=$2 n=$3
	wait_ready "$path"
	fetch_stats
	local idle
	idle=$(stat_sum "$tenant" buffers_in_use)
	[[ -n "$idle" ]] || fail "palladium stats has no buffers_in_use for $tenant"
	local errors0
	errors0=$(stat_sum "$tenant" errors_sent)
	local pid
	pid=$(instance_pid fn)
	kill -STOP "$pid" || fail "SIGSTOP $pid"
	wait_for 5 proc_state_is "$pid" T || fail "instance $pid did not stop"
	log "function fn (pid $pid) stopped; $n concurrent requests to $path"
	flood "$path" x "$n" 20
	log "$tenant: $FLOOD_SUMMARY"
	fetch_stats
	grep -E "^tenant $tenant |instance" "$TMP/stats" | while read -r l; do log "  $l"; done
	fetch_metrics
	local n503 n504
	n503=$(grep -c '^503' "$TMP/flood.out")
	n504=$(grep -c '^504' "$TMP/flood.out")
	if ((n503 < 1)); then
		soft_fail "$tenant: expected some 503 (overload refused at once), got $FLOOD_SUMMARY"
	else
		pass "$tenant: $n503 requests refused with 503"
	fi
	if ((n503 + n504 != n)); then
		soft_fail "$tenant: expected only 503 and 504, got $FLOOD_SUMMARY"
	else
		pass "$tenant: every request answered 503 or 504"
	fi
	log "$tenant: engine errors_sent grew by $(($(stat_sum "$tenant" errors_sent) - errors0)); ingress rejected_total{tenant=\"$tenant\"}=$(metric_sum palladium_ingress_rejected_total "tenant=\"$tenant\"")"

	kill -CONT "$pid" || fail "SIGCONT $pid"
	log "function fn (pid $pid) resumed"
	fn_ok() { route_ok "$path" again; }
	wait_for 30 fn_ok || fail "$tenant: $path did not answer 200 again within $((30 * TIME_SCALE)) s after SIGCONT"
	pass "$tenant: answers again after the overload"
	wait_for 30 stat_is -le "$tenant" buffers_in_use "$idle" ||
		fail "$tenant: buffers_in_use did not come back to (at most) $idle: $(grep "^tenant $tenant " "$TMP/stats")"
	pass "$tenant: every buffer came back (buffers_in_use <= $idle)"
	no_inflight() {
		fetch_metrics
		(($(metric_sum palladium_ingress_inflight) == 0))
	}
	wait_for 10 no_inflight || fail "$tenant: requests still in flight: $(grep inflight "$TMP/metrics")"
	pass "$tenant: nothing in flight"
}

# --- ring full: 16-slot rings, plenty of buffers (8 MiB / 16 KiB)
ring_yaml() {
	ENGINE_EXTRA=", ring_size: 16" yaml_common 1
	cat <<EOF
tenants:
  - { name: rt, pool: 8MiB, buffer_size: 16KiB, max_inflight: 1000 }
functions:
  - { name: fn, tenant: rt, exec: "$MISBEHAVE", node: a, instances: 1, threads: 1 }
routes:
  - { path: /ring, tenant: rt, chain: [fn], timeout: 3s }
EOF
}
start_cluster ring_yaml 1
overload rt /ring 100
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"

# --- no free buffer: 1 MiB / 16 KiB = 64 buffers, rings larger than that
tiny_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: tiny, pool: 1MiB, buffer_size: 16KiB, max_inflight: 1000 }
functions:
  - { name: fn, tenant: tiny, exec: "$MISBEHAVE", node: a, instances: 1, threads: 1 }
routes:
  - { path: /tiny, tenant: tiny, chain: [fn], timeout: 3s }
EOF
}
start_cluster tiny_yaml 1
overload tiny /tiny 200
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
