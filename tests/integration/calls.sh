#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions call functions on one node (issue 13), with tests/functions/callprobe as
# caller and callee under several names (each scenario has functions of its own, so that
# every counter can be checked exactly):
#   1. a call is answered with the callee's body and headers, an error status and body
#      reach the caller; fan-out of 8 with wait_all, wait_any and one by one, zero-copy
#      and pd_call_run; a function in a chain that makes calls passes its output on
#   3. a per-call timeout: 504 for the call, the late reply counted; the route deadline
#      without a per-call timeout
#   4. the callee crashes: the caller gets 502; the callee hangs past the route
#      timeout: the caller gets 504, the engine kills the callee
#   5. depth: self-recursion stops with 508 at engine.max_call_depth (3 here);
#      a call outside the caller's `calls:` list gets 403 and is never delivered
#   6. a single-threaded function calling itself (its only thread waits): ends with 504
#      at the deadline, and the function serves afterwards
#   7. the caller dies while its calls are out: the replies are freed, it restarts
# After each, buffers_in_use is back to its idle value (nothing leaks).
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$CALLPROBE" ]] || fail "test function $CALLPROBE is not built"

MAX_DEPTH=3

cluster_yaml() {
	ENGINE_EXTRA=", max_call_depth: $MAX_DEPTH" yaml_common 1
	cat <<EOF
tenants:
  - { name: t, pool: 16MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: front, tenant: t, exec: "$CALLPROBE", node: a, threads: 4, calls: [back] }
  - { name: back, tenant: t, exec: "$CALLPROBE", node: a, instances: 2, threads: 4 }
  - { name: chained, tenant: t, exec: "$CALLPROBE", node: a, calls: [back] }
  - { name: exclaim, tenant: t, exec: exclaim, node: a }
  - { name: timer, tenant: t, exec: "$CALLPROBE", node: a, threads: 2, calls: [sleeper] }
  - { name: sleeper, tenant: t, exec: "$CALLPROBE", node: a, threads: 2 }
  - { name: crashcaller, tenant: t, exec: "$CALLPROBE", node: a, calls: [crashee] }
  - { name: crashee, tenant: t, exec: "$CALLPROBE", node: a }
  - { name: hangcaller, tenant: t, exec: "$CALLPROBE", node: a, calls: [hangee] }
  - { name: hangee, tenant: t, exec: "$CALLPROBE", node: a }
  - { name: rec, tenant: t, exec: "$CALLPROBE", node: a, threads: $((MAX_DEPTH + 2)), calls: [rec] }
  - { name: never, tenant: t, exec: "$CALLPROBE", node: a }
  - { name: selfish, tenant: t, exec: "$CALLPROBE", node: a, instances: 1, threads: 1, calls: [selfish] }
  - { name: dier, tenant: t, exec: "$CALLPROBE", node: a, threads: 1, calls: [slow] }
  - { name: slow, tenant: t, exec: "$CALLPROBE", node: a, threads: 4 }
routes:
  - { path: /front, tenant: t, chain: [front], timeout: 2s }
  - { path: /chain, tenant: t, chain: [chained, exclaim], timeout: 2s }
  - { path: /timer, tenant: t, chain: [timer], timeout: 2s }
  - { path: /deadline, tenant: t, chain: [timer], timeout: 1s }
  - { path: /crash, tenant: t, chain: [crashcaller], timeout: 2s }
  - { path: /hang, tenant: t, chain: [hangcaller], timeout: 1s }
  - { path: /rec, tenant: t, chain: [rec], timeout: 2s }
  - { path: /selfish, tenant: t, chain: [selfish], timeout: 1s }
  - { path: /dier, tenant: t, chain: [dier], timeout: 2s }
EOF
}

start_cluster cluster_yaml 1
for r in /front /chain /timer /crash /hang /rec /selfish /dier; do
	wait_ready "$r"
done

fetch_stats
idle=$(stat_sum t buffers_in_use)
[[ -n "$idle" ]] || fail "palladium stats has no buffers_in_use for tenant t: $(cat "$TMP/stats")"
log "idle buffers_in_use=$idle"
# Every function's line is there, with every call counter, before any call.
for f in front back chained timer sleeper crashcaller crashee hangcaller hangee rec never selfish dier slow; do
	for k in handled calls_started calls_answered calls_failed calls_timed_out calls_late; do
		[[ -n "$(fn_stat $f $k)" ]] || fail "palladium stats has no $k for function $f: $(grep -E "^ +function $f " "$TMP/stats")"
	done
done
for k in calls_routed replies_routed calls_refused replies_dropped; do
	[[ -n "$(stat_sum t $k)" ]] || fail "palladium stats has no $k for tenant t: $(grep '^tenant t ' "$TMP/stats")"
done
# wait_ready's requests went to the routes' first functions, which made no call.
front_handled=$(fn_stat front handled)
assert_fn_stats back "handled=0" "no call before the test"

# idle_again WHAT: buffers_in_use comes back to its idle value. If it does not, a
# soft_fail, and the value it stays at becomes the idle value that the next scenarios
# are checked against (each is checked for its own leaks).
idle_again() {
	if wait_for 10 stat_is -eq t buffers_in_use "$idle"; then
		pass "$1: buffers_in_use back to $idle"
		return
	fi
	soft_fail "$1: buffers_in_use did not come back to $idle: $(grep '^tenant t ' "$TMP/stats")"
	idle=$(stat_sum t buffers_in_use)
	log "idle buffers_in_use is $idle from now on"
}

# ------------------------------------------------------------------ 1. local calls
log "--- 1. local calls"
post '/front?do=call&to=back' hello -H 'x-probe-tag: t1' -H 'x-callee-method: PUT' \
	-H 'x-callee-path: /p/q' -H 'x-callee-query: a=1&b=2'
assert_status 200 "a call answered"
assert_eq hello "$(resp_body)" "the callee's body came back"
assert_eq back "$(resp_header x-probe-fn)" "the callee was back"
assert_eq a "$(resp_header x-probe-node)" "the callee ran on node a"
assert_eq 0/1 "$(resp_header x-probe-hop)" "the callee sees hop 0 of a chain of 1"
assert_eq PUT "$(resp_header x-probe-method)" "the callee got the method set on the call"
assert_eq /p/q "$(resp_header x-probe-path)" "the callee got the path set on the call"
assert_eq 'a=1&b=2' "$(resp_header x-probe-query)" "the callee got the query set on the call"
assert_eq t1 "$(resp_header x-probe-tag)" "a request header reached the callee, a response header came back"

post '/front?do=call&to=back' plain
assert_status 200 "a call with the defaults"
assert_eq POST "$(resp_header x-probe-method)" "default method POST"
assert_eq / "$(resp_header x-probe-path)" "default path /"
assert_eq "" "$(resp_header x-probe-query)" "no query by default"
assert_eq "" "$(resp_header x-probe-tag)" "no header the caller did not set"

post '/front?do=call&to=back&via=zc' zero-copy
assert_status 200 "a call whose body was written in place"
assert_eq zero-copy "$(resp_body)" "zero-copy call: body"

post '/front?do=call&to=back&via=run' one-liner
assert_status 200 "pd_call_run"
assert_eq one-liner "$(resp_body)" "pd_call_run: body"

post '/front?do=call&to=back' teapot -H 'x-callee-query: do=error&status=418'
assert_status 418 "the callee's error status, relayed by the caller"
assert_eq teapot "$(resp_body)" "the callee's error message, relayed by the caller"
post '/front?do=call&to=back&reply=summary' teapot -H 'x-callee-query: do=error&status=418'
assert_status 200 "the caller answers 200 after a call that ended 418"
assert_eq "0 418 teapot" "$(resp_body)" "the caller saw the callee's 418 and its message"

fan_expect=$(for i in 0 1 2 3 4 5 6 7; do echo "$i 200 fan-$i"; done)
for mode in 'wait=all' 'wait=any' 'wait=each' 'wait=all&via=zc'; do
	post "/front?do=call&to=back&n=8&$mode" fan
	assert_status 200 "fan-out of 8 ($mode)"
	assert_eq "$fan_expect" "$(resp_body)" "fan-out of 8 ($mode): every answer, each to its call"
done

post '/chain?do=call&to=back' chained
assert_status 200 "a function in a chain makes a call"
assert_eq 'chained!' "$(resp_body)" "its output (the call's answer) went on down the chain to exclaim"

# 1 + 1 + 1 + 1 + 2 + 4 x 8 calls by front, 1 by chained: 38 answered by back.
assert_fn_stats front "handled=$((front_handled + 10)) calls_started=38 calls_answered=38 calls_failed=0 calls_timed_out=0 calls_late=0" "local calls"
assert_fn_stats chained "calls_started=1 calls_answered=1 calls_failed=0 calls_timed_out=0 calls_late=0" "a call from a chain"
assert_fn_stats back "handled=39 calls_started=0" "every call delivered once"
fetch_stats
assert_eq "0 0 0 0" "$(stat_sum t calls_routed) $(stat_sum t replies_routed) $(stat_sum t calls_refused) $(stat_sum t replies_dropped)" \
	"local calls and replies went over the rings, not through the engine (calls_routed replies_routed calls_refused replies_dropped)"
idle_again "local calls"

# --------------------------------------------------------------------- 3. timeouts
log "--- 3. timeouts"
post '/timer?do=call&to=sleeper&timeout=200&reply=summary' late -H 'x-callee-query: do=sleep&ms=700'
assert_status 200 "a call past its per-call timeout: the caller answers"
assert_eq "0 504" "$(resp_body | cut -d' ' -f1-2)" "the caller got 504 for the call"
expect_fn_stats timer "calls_started=1 calls_answered=0 calls_failed=0 calls_timed_out=1" "per-call timeout"
wait_for 10 fn_stat_is -eq sleeper handled 1 || fail "the sleeping callee never finished: $(grep -E '^ +function sleeper ' "$TMP/stats")"
expect_within 10 "per-call timeout: the callee's late reply was dropped and counted" fn_stat_is -eq timer calls_late 1
expect_fn_stats timer "calls_answered=0 calls_timed_out=1 calls_late=1" "per-call timeout, after the late reply"
idle_again "per-call timeout"

# No per-call timeout: the call has what is left of the route's 1 s. prop=1 makes the
# caller answer the call's status, so the client sees 504 whichever of the ingress and
# the caller answers first; the caller's counters say what the call saw.
post '/deadline?do=call&to=sleeper&prop=1' route-deadline -H 'x-callee-query: do=sleep&ms=1500'
assert_status 504 "a call past the route's deadline"
expect_within 10 "the call timed out at the route's deadline" fn_stat_is -eq timer calls_timed_out 2
wait_for 10 fn_stat_is -eq sleeper handled 2 || fail "the sleeping callee never finished: $(grep -E '^ +function sleeper ' "$TMP/stats")"
expect_within 10 "route deadline: the late reply was dropped and counted" fn_stat_is -eq timer calls_late 2
expect_fn_stats timer "calls_started=2 calls_answered=0 calls_failed=0 calls_timed_out=2 calls_late=2" "route deadline"
idle_again "route deadline"

# --------------------------------------------------------------- 4. crash and hang
log "--- 4. the callee crashes or hangs"
fetch_stats
restarts0=$(stat_sum t restarts)
crashee_pid=$(instance_pid crashee)
post '/crash?do=call&to=crashee&reply=summary' boom -H 'x-callee-query: do=crash'
assert_status 200 "the callee crashed: the caller answers, not the platform"
assert_eq "0 502" "$(resp_body | cut -d' ' -f1-2)" "the caller got 502 for the call"
expect_fn_stats crashcaller "calls_started=1 calls_answered=0 calls_failed=1 calls_timed_out=0 calls_late=0" "callee crash"
wait_for 10 stat_is -eq t restarts $((restarts0 + 1)) || fail "the crashed callee was not restarted: $(grep '^tenant t ' "$TMP/stats")"
crashee_back() {
	[[ "$(http_curl -sS --max-time 5 --data-binary again \
		"http://127.0.0.1:$HTTP_PORT/crash?do=call&to=crashee" 2>/dev/null)" == again ]]
}
wait_for 10 crashee_back || fail "the restarted callee does not answer calls"
assert_ne "$crashee_pid" "$(instance_pid crashee)" "the callee is a new process"
pass "the crashed callee was restarted and answers calls"
idle_again "callee crash"

fetch_stats
killed0=$(stat_sum t hung_killed)
post '/hang?do=call&to=hangee&prop=1' hang -H 'x-callee-query: do=sleep&ms=600000'
assert_status 504 "the callee hangs past the route's timeout"
expect_within 10 "the caller got 504 for the call to the hung callee" fn_stat_is -eq hangcaller calls_timed_out 1
expect_within 20 "the engine killed the hung callee" stat_is -eq t hung_killed $((killed0 + 1))
# The engine answers the dead callee's call with 502, long after the caller gave up.
expect_within 10 "the engine's answer for the killed callee was counted late" fn_stat_is -eq hangcaller calls_late 1
expect_fn_stats hangcaller "calls_started=1 calls_answered=0 calls_failed=0 calls_timed_out=1 calls_late=1" "callee hang"
idle_again "callee hang"

# ------------------------------------------------------------------------ 5. depth
log "--- 5. depth and undeclared calls"
rec_handled0=$(fn_stat_now rec handled)
post '/rec?do=recurse&to=rec' deep
assert_status 200 "self-recursion"
assert_eq "deepest=$MAX_DEPTH status=508" "$(resp_body)" "calls nest $MAX_DEPTH deep, the next one gets 508"
# Handlers at depths 0..MAX_DEPTH each started one call: MAX_DEPTH answered, one 508.
expect_fn_stats rec "handled=$((rec_handled0 + MAX_DEPTH + 1)) calls_started=$((MAX_DEPTH + 1)) calls_answered=$MAX_DEPTH calls_failed=1 calls_timed_out=0 calls_late=0" "recursion to the depth limit"
idle_again "recursion"

front_failed0=$(fn_stat_now front calls_failed)
post '/front?do=call&to=never&reply=summary' sneak
assert_status 200 "a call outside the calls: list"
assert_eq "0 403" "$(resp_body | cut -d' ' -f1-2)" "it got 403"
post '/front?do=call&to=nosuch&reply=summary' sneak
assert_status 200 "a call to a function that does not exist"
assert_eq "0 403" "$(resp_body | cut -d' ' -f1-2)" "it got 403"
post '/front?do=call&to=back&n=3&wait=all' ok
assert_status 200 "declared calls still work"
assert_eq "$(printf '0 200 ok-0\n1 200 ok-1\n2 200 ok-2')" "$(resp_body)" "declared calls' answers"
expect_fn_stats never "handled=0" "the undeclared callee never got the call"
expect_fn_stats front "calls_failed=$((front_failed0 + 2))" "two refused calls counted failed"
idle_again "undeclared calls"

# --------------------------------------------------------------------- 6. deadlock
log "--- 6. a single-threaded function calls itself"
handled0=$(fn_stat_now selfish handled)
post '/selfish?do=recurse&to=selfish&prop=1' loop
assert_status 504 "the call waits for the only thread, which waits for it: 504"
# The self-call waits in the ring until its caller gives up at the deadline. Then it is
# dropped as expired; or, taken within the rounding of its deadline (whole ms, rounded
# up at each call), it runs, and so on for its own call, at most down to the depth limit
# (508). So: every call ends by its deadline (504) but for at most one 508 at depth
# MAX_DEPTH + 1, none is answered, and each self-call that ran (handled, but for the
# request itself) answered after its caller gave up (calls_late). The thread takes the
# late replies only once its ring is empty: when these hold, the loop is over.
self_calls_settled() {
	fetch_stats
	local s t f l h
	s=$(fn_stat selfish calls_started)
	t=$(fn_stat selfish calls_timed_out)
	f=$(fn_stat selfish calls_failed)
	l=$(fn_stat selfish calls_late)
	h=$(($(fn_stat selfish handled) - handled0))
	((s >= 1 && t + f == s && l == h - 1))
}
expect_within 10 "the self-calls ended: calls_timed_out + calls_failed = calls_started, calls_late = the self-calls that ran" self_calls_settled
fetch_stats
log "selfish: $(grep -E '^ +function selfish ' "$TMP/stats"), handled $(($(fn_stat selfish handled) - handled0)) since"
self_started=$(fn_stat selfish calls_started)
self_failed=$(fn_stat selfish calls_failed)
if ((self_failed == 0 && self_started <= MAX_DEPTH)) ||
	((self_failed == 1 && self_started == MAX_DEPTH + 1)); then
	pass "the self-calls ended by their deadline ($self_started calls), or at the depth limit"
else
	soft_fail "self-calls: $self_started started, $self_failed failed: expected 0 failed and at most $MAX_DEPTH started, or 1 failed (508) and $((MAX_DEPTH + 1)) started"
fi
expect_fn_stats selfish "calls_answered=0" "no self-call was answered"
selfish_ok() { route_ok /selfish after; }
wait_for 10 selfish_ok || fail "the function does not serve after the self-call"
pass "the function serves again"
idle_again "self-call"

# ------------------------------------------------------------------ 7. caller dies
log "--- 7. the caller dies while its calls are out"
dier_pid=$(instance_pid dier)
fetch_stats
restarts0=$(stat_sum t restarts)
dropped0=$(stat_sum t replies_dropped)
post '/dier?do=call&to=slow&n=4&then=crash' orphan -H 'x-callee-query: do=sleep&ms=500'
assert_status 502 "the caller crashed with its calls out"
wait_for 10 fn_stat_is -eq slow handled 4 || fail "the callees did not all finish: $(grep -E '^ +function slow ' "$TMP/stats")"
pass "the 4 callees answered"
idle_again "caller died"
wait_for 10 stat_is -eq t restarts $((restarts0 + 1)) || fail "the caller was not restarted: $(grep '^tenant t ' "$TMP/stats")"
dier_ok() { route_ok /dier after; }
wait_for 10 dier_ok || fail "the restarted caller does not serve"
assert_ne "$dier_pid" "$(instance_pid dier)" "the caller is a new process"
pass "the caller was restarted and serves"
# Each of the 4 replies was dropped and counted once: by the engine (its caller was not
# running) or by the restarted caller (an id of the process before it).
replies_counted() {
	fetch_stats
	(($(fn_stat dier calls_late) + $(stat_sum t replies_dropped) - dropped0 == 4))
}
expect_within 10 "the 4 orphaned replies were counted dropped (dier calls_late + replies_dropped = 4)" replies_counted
log "the 4 replies: dier calls_late=$(fn_stat dier calls_late), tenant replies_dropped=$(($(stat_sum t replies_dropped) - dropped0))"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
