#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Calls across nodes (issue 13): callers on one node, callees only on the other, so every
# call goes through both engines and over the fabric, and its reply comes back the same
# way (tests/functions/callprobe as caller and callee). Components run one by one, so
# that node b can be killed at the end.
#   - a call to a -> b is answered: body (also 10000 random bytes), headers, the callee's
#     error status; a fan-out of 8 (wait_all, wait_any); b -> a too
#   - a callee on both nodes is called on the caller's own node only
#   - a per-call timeout: 504, and the reply that crosses the fabric later is counted late
#   - the callee crashes on b: the caller on a gets 502
#   - node b is gone: a call to it gets 502 at once
#   - nothing leaks on either node (buffers_in_use back to idle)
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$CALLPROBE" ]] || fail "test function $CALLPROBE is not built"

cluster_yaml() {
	yaml_common 2
	cat <<EOF
tenants:
  - { name: d, pool: 16MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: ca, tenant: d, exec: "$CALLPROBE", node: a, threads: 4, calls: [cb, both, sleepb, crashb] }
  - { name: cb, tenant: d, exec: "$CALLPROBE", node: b, instances: 2, threads: 4 }
  - { name: both, tenant: d, exec: "$CALLPROBE", nodes: [a, b], threads: 4 }
  - { name: sleepb, tenant: d, exec: "$CALLPROBE", node: b, threads: 2 }
  - { name: crashb, tenant: d, exec: "$CALLPROBE", node: b }
  - { name: cr, tenant: d, exec: "$CALLPROBE", node: b, calls: [ea] }
  - { name: ea, tenant: d, exec: "$CALLPROBE", node: a }
routes:
  - { path: /ca, tenant: d, chain: [ca], timeout: 2s }
  - { path: /cr, tenant: d, chain: [cr], timeout: 2s }
EOF
}

alloc_ports 2
cluster_yaml >"$CFG"
start_engine a
start_engine b
start_ingress
wait_ready /ca
wait_ready /cr
# The engines' link to each other comes up on its own time: wait until a call crosses.
remote_ok() {
	[[ "$(http_curl -sS --max-time 5 --data-binary up \
		"http://127.0.0.1:$HTTP_PORT/ca?do=call&to=cb" 2>/dev/null)" == up ]]
}
wait_for 30 remote_ok || fail "no call from a to b answered within $((30 * TIME_SCALE)) s"
pass "a call from a to b is answered"

idle_a=$(stat_node a d buffers_in_use)
idle_b=$(stat_node b d buffers_in_use)
[[ -n "$idle_a" && -n "$idle_b" ]] || fail "palladium stats has no buffers_in_use for tenant d"
log "idle buffers_in_use: a=$idle_a b=$idle_b"
# idle_again WHAT: buffers_in_use back to its idle value on both nodes; if not, a
# soft_fail, and the values it stays at are what the next steps are checked against.
idle_again() {
	local n v
	for n in a b; do
		v=idle_$n
		if wait_for 10 stat_node_is -eq $n d buffers_in_use "${!v}"; then
			pass "$1: node $n's buffers_in_use back to ${!v}"
			continue
		fi
		soft_fail "$1: node $n's buffers_in_use did not come back to ${!v} (it is $(stat_sum d buffers_in_use)): $(grep '^tenant d ' "$TMP/stats")"
		printf -v "$v" '%s' "$(stat_sum d buffers_in_use)"
		log "node $n's idle buffers_in_use is ${!v} from now on"
	done
}
# fn_node NODE FUNCTION KEY: FUNCTION's KEY on NODE alone.
fn_node() {
	fetch_stats_node "$1"
	fn_stat "$2" "$3"
}

# engine_calls NODE: "calls_routed replies_routed calls_refused replies_dropped" of NODE.
engine_calls() {
	fetch_stats_node "$1"
	echo "$(stat_sum d calls_routed) $(stat_sum d replies_routed) $(stat_sum d calls_refused) $(stat_sum d replies_dropped)"
}
# The engine counters so far (remote_ok's calls), as numbers for arithmetic.
read -r a_calls0 a_replies0 a_refused0 a_dropped0 <<<"$(engine_calls a)"
read -r b_calls0 b_replies0 b_refused0 b_dropped0 <<<"$(engine_calls b)"

fetch_stats
ca0_started=$(fn_stat ca calls_started)
ca0_answered=$(fn_stat ca calls_answered)
# remote_ok's first tries may have failed while the link came up.
ca0_failed=$(fn_stat ca calls_failed)
ca0_timed_out=$(fn_stat ca calls_timed_out)
ca0_late=$(fn_stat ca calls_late)
cb0_handled=$(fn_stat cb handled)

# ------------------------------------------------------------------- answers
post '/ca?do=call&to=cb' remote -H 'x-probe-tag: across' -H 'x-callee-query: k=v'
assert_status 200 "a call from a to b"
assert_eq remote "$(resp_body)" "a -> b: the callee's body came back"
assert_eq cb "$(resp_header x-probe-fn)" "a -> b: answered by cb"
assert_eq b "$(resp_header x-probe-node)" "a -> b: on node b"
assert_eq across "$(resp_header x-probe-tag)" "a -> b: a request header there, a response header back"
assert_eq k=v "$(resp_header x-probe-query)" "a -> b: the query"

head -c 10000 /dev/urandom >"$TMP/b10k"
for via in append zc; do
	post_file "/ca?do=call&to=cb&via=$via" "$TMP/b10k"
	assert_status 200 "a call from a to b with 10000 random bytes ($via)"
	cmp -s "$TMP/b10k" "$TMP/resp.body" || fail "a -> b, 10000 bytes ($via): the answer differs from what was sent ($(stat -c %s "$TMP/resp.body") bytes)"
	pass "a -> b, 10000 bytes ($via): the same bytes came back"
done

post '/ca?do=call&to=cb&reply=summary' teapot -H 'x-callee-query: do=error&status=418'
assert_status 200 "a -> b, the callee answers 418"
assert_eq "0 418 teapot" "$(resp_body)" "a -> b: the caller saw 418 and the message"

fan_expect=$(for i in 0 1 2 3 4 5 6 7; do echo "$i 200 fan-$i"; done)
for mode in all any; do
	post "/ca?do=call&to=cb&n=8&wait=$mode" fan
	assert_status 200 "a -> b, fan-out of 8 (wait=$mode)"
	assert_eq "$fan_expect" "$(resp_body)" "a -> b, fan-out of 8 (wait=$mode): every answer, each to its call"
done

post '/cr?do=call&to=ea' reverse
assert_status 200 "a call from b to a"
assert_eq reverse "$(resp_body)" "b -> a: body"
assert_eq a "$(resp_header x-probe-node)" "b -> a: on node a"

# 1 + 2 + 1 + 16 calls from a to cb on b.
calls=20
assert_fn_stats ca "calls_started=$((ca0_started + calls)) calls_answered=$((ca0_answered + calls)) calls_failed=$ca0_failed calls_timed_out=$ca0_timed_out calls_late=$ca0_late" "calls a -> b"
assert_fn_stats cb "handled=$((cb0_handled + calls))" "every call a -> b delivered once"
assert_fn_stats cr "calls_started=1 calls_answered=1" "a call b -> a"
assert_fn_stats ea "handled=1" "a call b -> a delivered once"
# Each call and its reply went through both engines: a routed the 20 calls to b and
# their replies back to ca, b the other way; and the one call b -> a likewise.
assert_eq "$((a_calls0 + calls + 1)) $((a_replies0 + calls + 1)) $a_refused0 $a_dropped0" "$(engine_calls a)" \
	"node a's engine routed every call and reply once (calls_routed replies_routed calls_refused replies_dropped)"
assert_eq "$((b_calls0 + calls + 1)) $((b_replies0 + calls + 1)) $b_refused0 $b_dropped0" "$(engine_calls b)" \
	"node b's engine routed every call and reply once (calls_routed replies_routed calls_refused replies_dropped)"
idle_again "calls across nodes"

# ---------------------------------------------------------- local first
post '/ca?do=call&to=both&n=8&wait=all' here
assert_status 200 "fan-out of 8 to a function on both nodes"
assert_eq "$(for i in 0 1 2 3 4 5 6 7; do echo "$i 200 here-$i"; done)" "$(resp_body)" "fan-out to both: answers"
assert_eq 8 "$(fn_node a both handled)" "the 8 calls ran on the caller's node"
assert_eq 0 "$(fn_node b both handled)" "none crossed to node b"
assert_eq "$((a_calls0 + calls + 1)) $((a_replies0 + calls + 1))" "$(engine_calls a | cut -d' ' -f1-2)" \
	"the local calls did not go through node a's engine"

# ------------------------------------------------------------ timeout
post '/ca?do=call&to=sleepb&timeout=200&reply=summary' late -H 'x-callee-query: do=sleep&ms=700'
assert_status 200 "a -> b past the per-call timeout: the caller answers"
assert_eq "0 504" "$(resp_body | cut -d' ' -f1-2)" "a -> b: 504 for the call"
wait_for 10 fn_stat_is -eq sleepb handled 1 || fail "the callee on b never finished"
expect_within 10 "the late reply from b was counted at a" fn_stat_is -eq ca calls_late $((ca0_late + 1))
expect_fn_stats ca "calls_timed_out=$((ca0_timed_out + 1)) calls_late=$((ca0_late + 1)) calls_failed=$ca0_failed" "a -> b timeout"
idle_again "a -> b timeout"

# -------------------------------------------------------------- crash
post '/ca?do=call&to=crashb&reply=summary' boom -H 'x-callee-query: do=crash'
assert_status 200 "the callee on b crashed: the caller answers"
assert_eq "0 502" "$(resp_body | cut -d' ' -f1-2)" "a -> b: 502 for the call"
expect_fn_stats ca "calls_failed=$((ca0_failed + 1)) calls_timed_out=$((ca0_timed_out + 1)) calls_late=$((ca0_late + 1))" "a -> b crash"
idle_again "a -> b crash"

# ------------------------------------------------------- node b gone
kill9_comp b
wait_for 20 peer_state_is a d b down || fail "node a did not see node b go down: $(cat "$TMP/stats")"
pass "node a sees node b down"
post '/ca?do=call&to=cb&reply=summary' nobody
assert_status 200 "a call to a function only on a dead node: the caller answers"
assert_eq "0 502" "$(resp_body | cut -d' ' -f1-2)" "the call got 502"
# Node b is gone: stats of node a alone from now on.
fetch_stats_node a
got="$(fn_stat ca calls_failed) $(fn_stat ca calls_timed_out)"
if [[ "$got" == "$((ca0_failed + 2)) $((ca0_timed_out + 1))" ]]; then
	pass "unreachable callee: one more call failed (calls_failed calls_timed_out: $got)"
else
	soft_fail "unreachable callee: calls_failed calls_timed_out: expected $((ca0_failed + 2)) $((ca0_timed_out + 1)), got $got"
fi
expect_within 10 "node a: buffers_in_use back to $idle_a" stat_node_is -eq a d buffers_in_use "$idle_a"

stop_comp ingress
stop_comp a
finish
