#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Credits never overcommit an engine's receives: one tenant with a small pool (1 MiB of
# 16 KiB buffers, about 62) runs on 6 nodes, so each engine has 6 links for it (the
# ingress's and 5 peers') that need at least 3 credits each, more than the quarter of
# the pool an engine posts by default. Each engine has posted at least the credits it
# granted (rx_credits <= rx_depth). Under load over chains that cross every node, every
# receive is posted again afterwards and nothing failed: no fabric send error, nothing
# dropped, no error answer from an engine; the only non-200 answers are the ingress's
# own load shedding (503, no credit to send at once).
source "$(dirname "$0")/lib.sh"
init_test
need_cmd wrk

NODES=(a b c d e f)
cluster_yaml() {
	local i
	yaml_common 4 | sed '/^  - { name: /d'
	for ((i = 0; i < ${#NODES[@]}; i++)); do
		echo "  - { name: ${NODES[$i]}, address: \"127.0.0.1\", port: ${NODE_PORTS[$i]} }"
	done
	echo "tenants:"
	echo "  - { name: small, pool: 1MiB, buffer_size: 16KiB, max_inflight: 256 }"
	echo "functions:"
	for n in "${NODES[@]}"; do
		echo "  - { name: hop_$n, tenant: small, exec: relay, node: $n }"
	done
	cat <<YAML
routes:
  - { path: /forward, tenant: small, chain: [hop_a, hop_b, hop_c, hop_d, hop_e, hop_f], timeout: 10s }
  - { path: /backward, tenant: small, chain: [hop_f, hop_e, hop_d, hop_c, hop_b, hop_a], timeout: 10s }
  - { path: /across, tenant: small, chain: [hop_a, hop_d, hop_b, hop_e, hop_c, hop_f, hop_a], timeout: 10s }
YAML
}

# alloc_ports gives NODE_PORTS for the 6 nodes; yaml_common writes only 4 of them (its
# node names stop at d), which the generator replaces with all 6.
start_cluster cluster_yaml ${#NODES[@]}
for n in "${NODES[@]}"; do
	grep -q "name: $n," "$CFG" || fail "the cluster file has no node $n: $(grep -n 'name:' "$CFG")"
done
wait_ready /forward '{}'
wait_ready /backward '{}'
wait_ready /across '{}'

post /forward '{}'
assert_status 200 "POST /forward"
assert_eq '[{"fn":"hop_a","node":"a"},{"fn":"hop_b","node":"b"},{"fn":"hop_c","node":"c"},{"fn":"hop_d","node":"d"},{"fn":"hop_e","node":"e"},{"fn":"hop_f","node":"f"}]' \
	"$(resp_body)" "/forward trace crosses all 6 nodes"

# per_node NODE KEY: KEY of tenant small on NODE (last fetch_stats).
per_node() {
	awk -v n="$1" -v k="$2" '$1 == "node" { node = $2 } $1 == "tenant" && node == n {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$TMP/stats"
}
fabric_field() {
	awk -v n="$1" -v k="$2" '$1 == "node" { node = $2 } $1 == "fabric" && node == n {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$TMP/stats"
}

fetch_stats
for n in "${NODES[@]}"; do
	depth=$(per_node "$n" rx_depth)
	credits=$(per_node "$n" rx_credits)
	total=$(per_node "$n" buffers_total)
	assert_int -gt "${depth:-0}" 0 "node $n: rx_depth in palladium stats"
	assert_int -gt "${credits:-0}" 0 "node $n: rx_credits in palladium stats"
	# 6 links of at least 3 credits: more than a quarter of this pool.
	assert_int -ge "$credits" 18 "node $n: 6 links of at least 3 credits ($credits in all)"
	assert_int -gt "$((credits * 4))" "$total" "node $n: the links need more than a quarter of the $total buffers"
	assert_int -le "$credits" "$depth" "node $n: credits granted ($credits) within the receives posted ($depth)"
done

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "{}"
LUA
pids=()
for path in /forward /backward /across; do
	bg pid timeout $((60 * TIME_SCALE)) wrk -t1 -c8 -d3s --timeout 10s -s "$TMP/post.lua" \
		"http://127.0.0.1:$HTTP_PORT$path" >"$TMP/wrk${path//\//.}.out" 2>&1
	pids+=("$pid")
done
all=0
for i in 0 1 2; do
	bg_wait "${pids[$i]}"
	rc=$?
	path=(/forward /backward /across)
	out=$TMP/wrk${path[$i]//\//.}.out
	cat "$out" >&2
	assert_eq 0 "$rc" "wrk ${path[$i]} exit status"
	total=$(awk '/requests in/ { print $1 }' "$out")
	assert_int -gt "${total:-0}" 0 "wrk ${path[$i]} completed requests"
	grep -q 'Socket errors' "$out" && fail "wrk ${path[$i]}: $(grep 'Socket errors' "$out")"
	all=$((all + total))
done
# With 3 credits on its link to each engine the ingress sheds what it cannot send at
# once: 503 "no free buffer at the engine", counted as rejected{reason="no_buffer"},
# before anything crosses the fabric. Every other answer is a 200: nothing failed on the
# way through the engines.
fetch_metrics
grep '^palladium_ingress_\(requests\|rejected\)_total' "$TMP/metrics" >&2
n_all=$(metric_sum palladium_ingress_requests_total)
n_503=$(metric_sum palladium_ingress_requests_total 'status="503"')
for path in /forward /backward /across; do
	assert_int -gt "$(metric_sum palladium_ingress_requests_total "route=\"$path\"" 'status="200"')" 0 "$path: 200s under load"
done
n_200=$(metric_sum palladium_ingress_requests_total 'status="200"')
assert_int -ge "$n_all" "$all" "/metrics counted every answer wrk saw"
assert_eq "$n_all" "$((n_200 + n_503))" "every answer is a 200 or a 503 ($n_200 + $n_503)"
assert_eq "$n_503" "$(metric_sum palladium_ingress_rejected_total 'reason="no_buffer"')" "every 503 is the ingress shedding load (no credit to send)"
pass "$all requests under load: $n_200 answered 200, $n_503 shed by the ingress, no socket error"

# Every receive is posted again once the load is over.
all_posted() {
	"$PALLADIUM" stats "$CFG" >"$TMP/stats" 2>&1 || return 1
	local n
	for n in "${NODES[@]}"; do
		[[ "$(per_node "$n" buffers_rx_posted)" == "$(per_node "$n" rx_depth)" ]] || return 1
	done
}
wait_for 10 all_posted || fail "receives not all posted again after the load: $(grep -E '^(node|tenant)' "$TMP/stats")"
pass "every engine has all its receives posted again"
fetch_stats
for n in "${NODES[@]}"; do
	assert_eq 0 "$(per_node "$n" dropped)" "node $n: nothing dropped"
	assert_eq 0 "$(per_node "$n" errors_sent)" "node $n: no error answers"
	assert_eq 0 "$(per_node "$n" lost_with_peer)" "node $n: nothing lost with a peer"
	assert_eq 0 "$(fabric_field "$n" send_errors)" "node $n: no fabric send errors"
	assert_int -le "$(per_node "$n" rx_credits)" "$(per_node "$n" rx_depth)" "node $n: credits within receives after the load"
done

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
