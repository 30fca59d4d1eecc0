#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# examples/two-node.yaml itself (nodes a and b on 127.0.0.2 and 127.0.0.3, moved to free
# ports) under `palladium up`: POST '{}' to /relay crosses a -> b -> a -> b and returns
# exactly that trace; both engines sent messages to the other (to_peers > 0) and
# neither copied payload.
source "$(dirname "$0")/lib.sh"
init_test

EXPECTED='[{"fn":"hop1","node":"a"},{"fn":"hop2","node":"b"},{"fn":"hop3","node":"a"},{"fn":"hop4","node":"b"}]'

start_cluster two_node_yaml 2
if ! grep -q '"127.0.0.2"' "$CFG" || ! grep -q '"127.0.0.3"' "$CFG"; then
	fail "the cluster file lost the example's node addresses: $(grep -n address "$CFG")"
fi
wait_ready /relay '{}'

# The engines run the primitive the file asks for (the engine logs it at start).
logged_primitive() { grep -q "node $1: listening on .*$PRIMITIVE" "$UP_LOG"; }
for n in a b; do
	wait_for 10 logged_primitive "$n" || fail "engine $n did not log that it runs $PRIMITIVE: $(grep -m3 listening "$UP_LOG")"
done
pass "both engines run fabric.primitive $PRIMITIVE"

post /relay '{}'
assert_status 200 "POST {} to /relay"
assert_eq "$EXPECTED" "$(resp_body)" "/relay trace: a -> b -> a -> b"
assert_eq application/json "$(resp_header content-type)" "/relay content-type"

# A few more, one after the other: the same trace every time.
for i in 1 2 3 4 5; do
	post /relay '{}'
	assert_status 200 "/relay #$i"
	[[ "$(resp_body)" == "$EXPECTED" ]] || fail "/relay #$i: trace '$(resp_body)'"
done
pass "5 more /relay requests: the same trace"

fetch_stats
per_node() {
	awk -v n="$1" -v k="$2" '$1 == "node" { node = $2 } $1 == "tenant" && node == n {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$TMP/stats"
}
for n in a b; do
	assert_int -gt "$(per_node "$n" to_peers)" 0 "node $n sent messages to the other node (to_peers)"
	assert_int -gt "$(per_node "$n" from_peers)" 0 "node $n received messages from the other node (from_peers)"
	assert_eq 0 "$(per_node "$n" engine_payload_copied_bytes)" "node $n: engine_payload_copied_bytes"
done
assert_eq 0 "$(stat_sum demo function_payload_copied_bytes)" "no function runtime copied payload"
# Which primitive really moved the messages: RMA writes (one-sided) or none (two-sided),
# as the `writes=` field of each engine's "fabric" stats line says.
fabric_writes() {
	awk -v n="$1" '$1 == "node" { node = $2 } $1 == "fabric" && node == n {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "writes") print kv[2] } }' "$TMP/stats"
}
for n in a b; do
	w=$(fabric_writes "$n")
	if [[ -z "$w" ]]; then
		fail "node $n's stats have no fabric writes= counter: $(grep '^fabric' "$TMP/stats")"
	elif [[ "$PRIMITIVE" == one-sided ]]; then
		assert_int -gt "$w" 0 "node $n moved messages with RMA writes (one-sided)"
	else
		assert_eq 0 "$w" "node $n made no RMA writes (two-sided)"
	fi
done

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
