#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Zero copy, shown by the counters: through /shout (upper -> exclaim, one node) the
# ingress copies each request body exactly once (socket -> registered buffer), writes
# each response straight from its receive buffer (0 bytes copied), and neither the
# engine nor the function runtime copies payload.
source "$(dirname "$0")/lib.sh"
init_test

cluster_yaml() {
	yaml_common 1
	cat <<YAML
tenants:
  - { name: demo, pool: 16MiB, buffer_size: 16KiB }
functions:
  - { name: upper, tenant: demo, exec: upper, node: a }
  - { name: exclaim, tenant: demo, exec: exclaim, node: a }
routes:
  - { path: /shout, tenant: demo, chain: [upper, exclaim], timeout: 5s }
YAML
}

start_cluster cluster_yaml 1
wait_ready /shout hello

N=25
SIZE=1000
head -c $SIZE /dev/zero | tr '\0' 'a' >"$TMP/body"
expect="$(head -c $SIZE /dev/zero | tr '\0' 'A')!"

fetch_metrics
for m in palladium_ingress_copied_bytes_total palladium_ingress_response_copied_bytes_total; do
	metric_present "$m" || fail "/metrics has no $m"
done
copied0=$(metric_sum palladium_ingress_copied_bytes_total)
resp_copied0=$(metric_sum palladium_ingress_response_copied_bytes_total)

# N requests on one keep-alive connection; every answer checked.
{
	echo "data-binary = \"@$TMP/body\""
	echo "max-time = $((20 * TIME_SCALE))"
	echo 'write-out = "\n%{http_code}\n"'
	for _ in $(seq $N); do echo "url = \"http://127.0.0.1:$HTTP_PORT/shout\""; done
} >"$TMP/zc.curl"
curl -sS -K "$TMP/zc.curl" >"$TMP/zc.out" 2>"$TMP/zc.err" || fail "curl: $(cat "$TMP/zc.err")"
ok=$(grep -cx -- "$expect" "$TMP/zc.out")
n200=$(grep -cx 200 "$TMP/zc.out")
assert_eq "$N" "$n200" "$N x 200 from /shout"
assert_eq "$N" "$ok" "$N correct answers from /shout"

fetch_metrics
copied=$(($(metric_sum palladium_ingress_copied_bytes_total) - copied0))
resp_copied=$(($(metric_sum palladium_ingress_response_copied_bytes_total) - resp_copied0))
assert_eq $((N * SIZE)) "$copied" "ingress copied each request body once ($N x $SIZE bytes)"
assert_eq 0 "$resp_copied" "ingress copied no response bytes"
assert_eq 0 "$resp_copied0" "ingress copied no response bytes (readiness probes included)"

fetch_stats
for k in engine_payload_copied_bytes function_payload_copied_bytes; do
	v=$(stat_sum demo $k)
	[[ -n "$v" ]] || fail "palladium stats has no $k: $(cat "$TMP/stats")"
	assert_eq 0 "$v" "palladium stats: $k"
done
h=$(stat_sum demo function_handled)
[[ -z "$h" ]] || assert_int -ge "$h" $((2 * N)) "both functions handled every request (function_handled)"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
