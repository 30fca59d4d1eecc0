#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engine.link_rate: engines that may send only 2 MiB/s still carry every byte intact,
# queue what the link cannot take yet (backpressure, no loss), and stop cleanly with
# hundreds of sends still queued and in flight.
# No timing is asserted: the rate itself is measured by `make bench-fairness`.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd sha256sum

export ENGINE_EXTRA=", link_rate: 2MiB/s"
BODY=$((48 * 1024))

cluster_yaml() {
	yaml_common 2
	cat <<EOF
tenants:
  - { name: slow, pool: 64MiB, buffer_size: 64KiB, max_inflight: 1024 }
functions:
  - { name: pass, tenant: slow, exec: pass, node: a }
  - { name: echo, tenant: slow, exec: echo, node: b }
routes:
  - { path: /slow, tenant: slow, chain: [pass, echo], timeout: 30s }
EOF
}

start_cluster cluster_yaml 2
wait_ready /slow ready

sha() { sha256sum "$1" | cut -d' ' -f1; }

head -c "$BODY" /dev/urandom >"$TMP/body"
post_file /slow "$TMP/body" -H 'content-type: application/octet-stream'
assert_status 200 "POST 48 KiB across the rate-capped link"
assert_eq "$(sha "$TMP/body")" "$(sha "$TMP/resp.body")" "48 KiB: sha256 of the response equals the body's"

# 40 at once: about 2 MiB each way, more than the bucket holds; all of them answered.
head -c "$BODY" /dev/zero | tr '\0' 'r' >"$TMP/rbody"
flood /slow "@$TMP/rbody" 40 60
assert_eq "40" "$(grep -c '^200$' "$TMP/flood.out")" "40 concurrent 48 KiB requests all answered 200 ($FLOOD_SUMMARY)"
fetch_stats
assert_eq 0 "$(stat_sum slow dropped)" "nothing dropped"
node_field() { awk -v k="$2" '$1 == "node" && $2 == "'"$1"'" { for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$TMP/stats"; }
for n in a b; do
	assert_eq $((2 * 1024 * 1024)) "$(node_field $n link_rate)" "node $n's engine runs with link_rate 2MiB/s"
done
assert_int -gt "$(node_field a paced)" 0 "node a's pacer held sends back"

# Stop while node a's engine still has sends queued behind the cap.
bg FLOOD_PID flood /slow "@$TMP/rbody" 300 120
wait_for 30 stat_is -gt slow pending_sends 0 || fail "no sends ever queued behind the link rate"
pass "sends are queued behind the link rate ($(stat_sum slow pending_sends) pending)"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status (every engine stopped cleanly with sends queued)"
bg_wait "$FLOOD_PID"
exit 0
