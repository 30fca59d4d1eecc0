#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A process running as tenant a's uid - what a hostile function of tenant a is - must
# not be able to join the fabric as "the ingress, for tenant b": the engine would then
# send b's answers to it and run requests of its choosing through b's functions. The
# fabric refuses peers without the cluster key, which `palladium up` hands to the
# engines and the ingress and never to functions (docs/security.md).
#
# The impostor is tests/integration/fabric_probe (a real libfabric client that connects
# the way the ingress does), run with setpriv as tenant a's default uid, no_new_privs.
source "$(dirname "$0")/lib.sh"
init_test
[[ $(id -u) == 0 ]] || skip "needs root: tenants get uids of their own only when the engine runs as root"
need_cmd setpriv
[[ -x "$FABRIC_PROBE" ]] || fail "FABRIC_PROBE=$FABRIC_PROBE is not built"

UID_A=61000 # tenant a (tenants[0]) runs as its default identity

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: a, pool: 8MiB }
  - { name: b, pool: 8MiB }
functions:
  - { name: echo, tenant: a, exec: echo, node: a }
  - { name: upper, tenant: b, exec: upper, node: a }
routes:
  - { path: /a, tenant: a, chain: [echo], timeout: 2s }
  - { path: /b, tenant: b, chain: [upper], timeout: 2s }
EOF
}

start_cluster cluster_yaml 1
wait_ready /a
wait_ready /b
post /b before
assert_status 200 "tenant b answers"

# fabric_probe exits 0 when refused, 1 when accepted (see its header).
probe_out=$(timeout -k 5 $((30 * TIME_SCALE)) setpriv --reuid "$UID_A" --regid "$UID_A" \
	--clear-groups --no-new-privs "$FABRIC_PROBE" 127.0.0.1 "${NODE_PORTS[0]}" 0 --version 1 \
	--primitive "$PRIMITIVE" --tenant 1 --timeout-ms $((10000 * TIME_SCALE)) 2>&1)
probe_rc=$?
log "fabric_probe as uid $UID_A, claiming to be ingress 0 for tenant b: exit $probe_rc: $probe_out"
[[ $probe_rc == 0 ]] || soft_fail "the engine accepted uid $UID_A as the ingress for tenant b (fabric_probe exit $probe_rc)"
[[ $probe_rc == 0 ]] && pass "the impostor was refused"

for i in 1 2 3; do
	post /b "after-$i"
	if [[ "$HTTP_STATUS" != 200 || "$(resp_body)" != "AFTER-$i" ]]; then
		soft_fail "tenant b after the impostor #$i: HTTP $HTTP_STATUS '$(resp_body)'"
	else
		pass "tenant b after the impostor #$i"
	fi
done

stop_cluster TERM
finish
