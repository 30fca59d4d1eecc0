#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two nodes on this machine (two engines, fabric between them): a chain that crosses
# nodes (/shout = upper on a -> exclaim on b) answers right, a function on both nodes
# serves from both, no engine copies payload, and SIGTERM stops every process.
source "$(dirname "$0")/lib.sh"
init_test

cluster_yaml() {
	yaml_common 2
	cat <<EOF
tenants:
  - { name: demo, pool: 16MiB, buffer_size: 16KiB }
functions:
  - { name: upper, tenant: demo, exec: upper, node: a }
  - { name: exclaim, tenant: demo, exec: exclaim, node: b }
  - { name: echo, tenant: demo, exec: echo, nodes: [a, b] }
routes:
  - { path: /shout, tenant: demo, chain: [upper, exclaim], timeout: 5s }
  - { path: /echo, tenant: demo, chain: [echo], timeout: 5s }
EOF
}

start_cluster cluster_yaml 2
wait_ready /shout hello
wait_ready /echo

post /shout hello
assert_status 200 "POST /shout across nodes"
assert_eq 'HELLO!' "$(resp_body)" "/shout across nodes: hello -> HELLO!"

head -c 10000 /dev/urandom >"$TMP/b10k"
post_file /shout "$TMP/b10k"
assert_status 200 "POST /shout across nodes, 10000 random bytes"
assert_eq 10001 "$(stat -c %s "$TMP/resp.body")" "/shout across nodes: 10000 bytes in, 10001 out"

# Many requests to /echo, concurrently: both nodes' instances take some.
flood /echo two-nodes 40 20
assert_eq "40 x 200; " "$FLOOD_SUMMARY" "40 concurrent requests to /echo (on a and b)"

fetch_stats
handled() {
	awk -v n="$1" '$1 == "node" { node = $2 } $1 == "tenant" && node == n {
		for (i = 3; i <= NF; i++) if ($i ~ /^function_handled=/) { sub(/.*=/, "", $i); print $i } }' "$TMP/stats"
}
ha=$(handled a)
hb=$(handled b)
log "function_handled: node a $ha, node b $hb"
assert_int -ge "${ha:-0}" 1 "node a handled requests"
assert_int -ge "${hb:-0}" 1 "node b handled requests"
assert_eq 0 "$(stat_sum demo engine_payload_copied_bytes)" "no engine copied payload (both nodes)"
assert_eq 0 "$(stat_sum demo function_payload_copied_bytes)" "no function runtime copied payload (both nodes)"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
