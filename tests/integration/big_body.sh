#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Big bodies cross nodes intact: a tenant with 1 MiB buffers, route pass@a -> echo@b.
# A 256 KiB random binary body comes back byte for byte (sha256), engines copy no
# payload, and a body just over the tenant's limit (buffer_size - 256) gets 413.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd sha256sum

BUFFER=$((1024 * 1024))
MAX_BODY=$((BUFFER - 256)) # docs/config.md: the tenant's body limit

cluster_yaml() {
	yaml_common 2
	cat <<EOF
tenants:
  - { name: big, pool: 128MiB, buffer_size: 1MiB, max_inflight: 16 }
functions:
  - { name: pass, tenant: big, exec: pass, node: a }
  - { name: echo, tenant: big, exec: echo, node: b }
routes:
  - { path: /big, tenant: big, chain: [pass, echo], timeout: 5s }
EOF
}

start_cluster cluster_yaml 2
wait_ready /big ready

sha() { sha256sum "$1" | cut -d' ' -f1; }

head -c $((256 * 1024)) /dev/urandom >"$TMP/body"
post_file /big "$TMP/body" -H 'content-type: application/octet-stream'
assert_status 200 "POST 256 KiB of random bytes to /big (pass@a -> echo@b)"
assert_eq $((256 * 1024)) "$(stat -c %s "$TMP/resp.body")" "256 KiB: response length"
assert_eq "$(sha "$TMP/body")" "$(sha "$TMP/resp.body")" "256 KiB: sha256 of the response equals the body's"

# A second, different body (buffers are reused: nothing of the first one shows).
head -c $((256 * 1024 - 17)) /dev/urandom >"$TMP/body2"
post_file /big "$TMP/body2" -H 'content-type: application/octet-stream'
assert_status 200 "POST 256 KiB - 17 bytes"
assert_eq "$(sha "$TMP/body2")" "$(sha "$TMP/resp.body")" "256 KiB - 17: sha256 of the response equals the body's"

fetch_stats
assert_int -gt "$(stat_sum big to_peers)" 0 "the bodies crossed nodes (to_peers)"
assert_eq 0 "$(stat_sum big engine_payload_copied_bytes)" "no engine copied payload"
assert_eq 0 "$(stat_sum big function_payload_copied_bytes)" "no function runtime copied payload (pass forwards in place)"

# Just over the limit: 413 from the ingress, and the cluster goes on.
head -c $((MAX_BODY + 1)) /dev/urandom >"$TMP/over"
post_file /big "$TMP/over" -H 'content-type: application/octet-stream'
assert_status 413 "POST $((MAX_BODY + 1)) bytes (limit $MAX_BODY)"
post_file /big "$TMP/body"
assert_status 200 "256 KiB again after the 413"
assert_eq "$(sha "$TMP/body")" "$(sha "$TMP/resp.body")" "256 KiB again: sha256"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
