#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A peer that speaks another protocol version is refused, the engine logs the refusal
# with the peer's id and version, and keeps serving. The peer is fabric_probe: a real
# libfabric (tcp) client that connects to the engine as the ingress would (peer id
# PD_FABRIC_PEER_INGRESS|0, tenant 0) but announces the version it is told.
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$FABRIC_PROBE" ]] || fail "FABRIC_PROBE=$FABRIC_PROBE is not built"

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: demo, pool: 8MiB, buffer_size: 16KiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo], timeout: 2s }
EOF
}

INGRESS_ID=32768 # PD_FABRIC_PEER_INGRESS | 0

alloc_ports 1
cluster_yaml >"$CFG"
start_engine a
elog=${COMP_LOG[a]}

# probe VERSION: run fabric_probe against node a; PROBE_RC, PROBE_OUT.
probe() {
	PROBE_OUT=$(timeout -k 5 $((30 * TIME_SCALE)) "$FABRIC_PROBE" 127.0.0.1 "${NODE_PORTS[0]}" 0 \
		--version "$1" --primitive "$PRIMITIVE" --tenant 0 --timeout-ms $((10000 * TIME_SCALE)) 2>&1)
	PROBE_RC=$?
	log "fabric_probe --version $1: exit $PROBE_RC: $PROBE_OUT"
}

# Control: the right version (2) is accepted, so the probe itself reaches the engine
# and is what the engine expects of an ingress. (The ingress is not running yet: the
# probe would take over its connection.)
probe 2
if [[ $PROBE_RC == 0 ]] && grep -q "refused connection from peer $INGRESS_ID .*primitive" "$elog"; then
	fail "the engine refused a $PRIMITIVE peer of the right version: it does not run fabric.primitive $PRIMITIVE: $(grep 'refused connection' "$elog" | tail -n 1)"
fi
assert_eq 1 "$PROBE_RC" "a peer with protocol version 2 is accepted (fabric_probe exit 1)"

# The wrong versions: the next one, the previous one (the key in the hello), and 0.
refused_before=$(grep -c "refused connection from peer" "$elog")
for v in 3 1 0; do
	probe "$v"
	assert_eq 0 "$PROBE_RC" "a peer with protocol version $v is refused (fabric_probe exit 0: on_down -ECONNREFUSED)"
	logged() { grep -q "refused connection from peer $INGRESS_ID (version $1, tenant 0).*protocol version $1 unsupported" "$elog"; }
	wait_for 10 logged "$v" ||
		fail "the engine did not log the refusal of version $v: $(grep -i refused "$elog" | tail -n 3)"
	pass "the engine logged: $(grep "refused connection from peer $INGRESS_ID (version $v" "$elog" | tail -n 1 | sed 's/^[0-9:.]* //')"
done
assert_int -ge "$(grep -c "refused connection from peer" "$elog")" $((refused_before + 3)) "three refusals logged"
fetch_stats_node a
refused=$(awk '$1 == "fabric" { for (i = 2; i <= NF; i++) if ($i ~ /^refused=/) { sub(/.*=/, "", $i); print $i } }' "$TMP/stats")
assert_int -ge "${refused:-missing}" 3 "engine stats: fabric refused"

# The engine keeps serving: the real ingress connects and requests are answered.
comp_running a
start_ingress
wait_ready /echo
disconnects_before=$(grep -c "ingress 0 disconnected" "$elog")
post /echo hello
assert_status 200 "POST /echo after the refusals"
assert_eq hello "$(resp_body)" "/echo body"
# A refused peer with the ingress's id does not disturb the ingress's live connection.
probe 3
assert_eq 0 "$PROBE_RC" "version 3 refused while the ingress is connected"
post /echo again
assert_status 200 "POST /echo after a refusal, same ingress connection"
assert_eq "$disconnects_before" "$(grep -c "ingress 0 disconnected" "$elog")" \
	"the refused peer did not replace the ingress's connection"
comp_running a

stop_comp ingress
assert_eq 0 "$COMP_RC" "ingress exit status after SIGTERM"
stop_comp a
assert_eq 0 "$COMP_RC" "a exit status after SIGTERM"
exit 0
