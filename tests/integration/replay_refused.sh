#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The cluster key never travels on the fabric, so bytes recorded off the wire cannot be
# used to join it: fabric_probe connects to the engine as the ingress would, with the key,
# through a TCP relay that records what it sent before each answer (its connection
# requests). Those bytes replayed on new TCP connections, while the real ingress is
# connected, are refused and counted by the engine, and the ingress keeps being served
# on its own connection. (With the key inside the hello, protocol version 1, the replay
# was accepted and took over the ingress's connection.)
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$FABRIC_PROBE" ]] || fail "FABRIC_PROBE=$FABRIC_PROBE is not built"

# The engine, the ingress and the probe share this key (the environment, as `palladium up`
# hands it to its components).
export PALLADIUM_CLUSTER_KEY=5f1c0a9e2b7d4e6f8a3c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f
OTHER_KEY=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0

cluster_yaml() {
	yaml_common 1
	cat <<EOF2
tenants:
  - { name: demo, pool: 8MiB, buffer_size: 16KiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo], timeout: 2s }
EOF2
}

INGRESS_ID=32768 # PD_FABRIC_PEER_INGRESS | 0

alloc_ports 1
cluster_yaml >"$CFG"
start_engine a
elog=${COMP_LOG[a]}
REC=$TMP/hello.rec

# probe ARGS...: fabric_probe against node a; PROBE_RC, PROBE_OUT.
probe() {
	PROBE_OUT=$(timeout -k 5 $((30 * TIME_SCALE)) "$FABRIC_PROBE" 127.0.0.1 "${NODE_PORTS[0]}" "$@" \
		--timeout-ms $((10000 * TIME_SCALE)) 2>&1)
	PROBE_RC=$?
	log "fabric_probe $*: exit $PROBE_RC: $PROBE_OUT"
}

engine_refused() {
	fetch_stats_node a
	awk '$1 == "fabric" { for (i = 2; i <= NF; i++) if ($i ~ /^refused=/) { sub(/.*=/, "", $i); print $i } }' "$TMP/stats"
}
refused_is() { [[ "$(engine_refused)" == "$1" ]]; }
ups_of_ingress() { grep -c "connection from peer $INGRESS_ID tenant 0 up" "$elog"; }

# A real exchange with the key, recorded. (The ingress is not running yet: the probe,
# which connects as ingress 0, would take over its connection.)
probe 0 --version 2 --primitive "$PRIMITIVE" --tenant 0 --key-env --record "$REC"
assert_eq 1 "$PROBE_RC" "a peer with the cluster key is accepted (fabric_probe exit 1)"
[[ -s "$REC" ]] || fail "fabric_probe recorded nothing in $REC"
pass "recorded $(stat -c %s "$REC") bytes of connection requests"

# A peer with another key: the probe refuses the engine (its challenge does not prove
# the probe's key), and never shows it a proof.
PALLADIUM_CLUSTER_KEY=$OTHER_KEY probe 0 --version 2 --primitive "$PRIMITIVE" --tenant 0 --key-env
assert_eq 3 "$PROBE_RC" "a peer with another key gives up on the engine (fabric_probe exit 3)"
[[ "$PROBE_OUT" == *"Permission denied"* ]] ||
	fail "the probe with another key failed for another reason: $PROBE_OUT"
pass "the probe with another key refused the engine: $PROBE_OUT"

start_ingress
wait_ready /echo
post /echo hello
assert_status 200 "POST /echo before the replay"
assert_eq hello "$(resp_body)" "/echo body"

refused_before=$(engine_refused)
[[ "$refused_before" =~ ^[0-9]+$ ]] || fail "engine stats: no fabric refused= counter: $(head -c 600 "$TMP/stats")"
ups_before=$(ups_of_ingress)
disconnects_before=$(grep -c "ingress 0 disconnected" "$elog")

# The replay: the last recorded request (the proof) alone, then the whole exchange.
probe --replay "$REC"
assert_eq 0 "$PROBE_RC" "the engine answered or closed every replayed connection (fabric_probe exit 0)"
# Two refusals: the proof alone answers no challenge outstanding; after the first request
# replayed (which gets a fresh challenge) the recorded proof does not answer that one.
wait_for 10 refused_is $((refused_before + 2)) ||
	fail "engine fabric refused=$(engine_refused), expected $((refused_before + 2)) after the replay: $(grep "refused connection" "$elog" | tail -n 3)"
pass "the engine refused and counted both replayed proofs (refused $refused_before -> $((refused_before + 2)))"
grep -q "refused connection from peer $INGRESS_ID (version 2, tenant 0).*no challenge outstanding" "$elog" ||
	fail "no refusal of the replayed proof in the engine log"
grep -q "refused connection from peer $INGRESS_ID (version 2, tenant 0).*wrong proof" "$elog" ||
	fail "no refusal of the proof replayed after a fresh challenge in the engine log"
pass "the engine logged: $(grep "refused connection from peer $INGRESS_ID" "$elog" | tail -n 1 | sed 's/^[0-9:.]* //')"
assert_eq "$ups_before" "$(ups_of_ingress)" "no connection from the replayer came up"

# The real cluster keeps serving, on the ingress's own connection.
post /echo again
assert_status 200 "POST /echo after the replay"
assert_eq again "$(resp_body)" "/echo body after the replay"
assert_eq "$disconnects_before" "$(grep -c "ingress 0 disconnected" "$elog")" \
	"the replay did not replace the ingress's connection"
comp_running a

stop_comp ingress
assert_eq 0 "$COMP_RC" "ingress exit status after SIGTERM"
stop_comp a
assert_eq 0 "$COMP_RC" "a exit status after SIGTERM"
exit 0
