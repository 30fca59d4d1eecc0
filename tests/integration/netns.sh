#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `palladium up --netns` (root): the ingress and each node of examples/two-node.yaml in a
# network namespace of their own. /relay answers from inside the ingress's namespace;
# Ctrl-C (SIGINT to the process group) removes every namespace; so does a kill -9 of
# `up` itself (its janitor), and no process is left behind. Without root, --netns says
# why and exits 1.
source "$(dirname "$0")/lib.sh"
init_test
need_root_ip
need_cmd setpriv
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

EXPECTED='[{"fn":"hop1","node":"a"},{"fn":"hop2","node":"b"},{"fn":"hop3","node":"a"},{"fn":"hop4","node":"b"}]'
USE_NETNS=1

namespaces_of_up() { netns_with_prefix "pd$UP_PID-" | sort | tr '\n' ' '; }

# --- run 1: relay in namespaces, then Ctrl-C
start_cluster two_node_yaml 2
prefix=pd$UP_PID-
assert_eq "${prefix}ingress ${prefix}node-a ${prefix}node-b ${prefix}switch " "$(namespaces_of_up)" \
	"namespaces of up (pid $UP_PID)"
wait_ready /relay '{}'
post /relay '{}'
assert_status 200 "POST {} to /relay inside ${prefix}ingress"
assert_eq "$EXPECTED" "$(resp_body)" "/relay trace across namespaces: a -> b -> a -> b"
# The HTTP listener is in the ingress's namespace only.
if curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$HTTP_PORT/relay" -d '{}' 2>/dev/null; then
	fail "the HTTP listener answers outside the ingress's namespace"
fi
pass "the HTTP listener is not reachable from the root namespace"
# Each engine runs in its node's namespace and listens on the node's address there.
fetch_stats
for n in a b; do
	epid=$(awk -v n="$n" '$1 == "node" && $2 == n { print $4 }' "$TMP/stats")
	[[ -n "$epid" ]] || fail "no engine pid for node $n in stats: $(head -c 400 "$TMP/stats")"
	assert_eq "${prefix}node-$n" "$(ip netns identify "$epid" 2>/dev/null)" "engine of node $n runs in ${prefix}node-$n"
done
assert_int -gt "$(stat_sum demo to_peers)" 0 "engines sent to each other across namespaces (to_peers)"

stop_cluster INT-GROUP
assert_eq 0 "$UP_RC" "palladium up exit status after Ctrl-C"
wait_for 10 netns_gone "$prefix" || fail "namespaces left $((10 * TIME_SCALE)) s after Ctrl-C: $(netns_with_prefix "$prefix" | tr '\n' ' ')"
pass "Ctrl-C: every ${prefix}* namespace removed"

# --- run 2: kill -9 of up itself
start_cluster two_node_yaml 2
prefix=pd$UP_PID-
wait_ready /relay '{}'
[[ -n "$(netns_with_prefix "$prefix")" ]] || fail "run 2: no ${prefix}* namespace"
record_pids
nrec=${#RECORDED[@]}
kill -KILL "$UP_PID" || fail "kill -KILL $UP_PID"
wait_for 10 up_exited || fail "palladium up (pid $UP_PID) still runs after SIGKILL"
wait "$UP_PID"
UP_RC=$?
assert_eq 137 "$UP_RC" "palladium up died of SIGKILL"
killed_up=$UP_PID
UP_PID=""
wait_for 15 none_alive || {
	for p in $(recorded_alive); do
		log "left: pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
	done
	UP_PID=$killed_up # so that the cleanup kills them
	fail "processes of the cluster still alive $((15 * TIME_SCALE)) s after kill -9 of up"
}
pass "kill -9 of up: all $nrec processes of the cluster gone"
wait_for 15 netns_gone "$prefix" || fail "namespaces left $((15 * TIME_SCALE)) s after kill -9 of up: $(netns_with_prefix "$prefix" | tr '\n' ' ')"
pass "kill -9 of up: every ${prefix}* namespace removed (janitor)"
RECORDED=()

# --- not root: --netns says why and exits 1
# Run by uid 65534 from a copy of the executable it can read (the build tree may not be
# readable by that uid); needs setpriv (util-linux), checked at the start.
pub=$TMP/pub
mkdir -p "$pub" && chmod 755 "$TMP" "$pub" && cp "$CFG" "$pub/cluster.yaml" && chmod 644 "$pub/cluster.yaml" ||
	fail "cannot prepare $pub for uid 65534"
nonroot_exe=$PALLADIUM
if ! "${as_nobody[@]}" test -x "$nonroot_exe"; then
	cp "$PALLADIUM" "$pub/palladium" && chmod 755 "$pub/palladium" || fail "cannot copy $PALLADIUM to $pub"
	nonroot_exe=$pub/palladium
fi
"${as_nobody[@]}" test -x "$nonroot_exe" || fail "uid 65534 cannot run $nonroot_exe"
"${as_nobody[@]}" "$nonroot_exe" up --netns "$pub/cluster.yaml" >"$TMP/nonroot.out" 2>&1 </dev/null
rc=$?
assert_eq 1 "$rc" "up --netns as uid 65534: exit status"
assert_contains "$(cat "$TMP/nonroot.out")" "needs root" "up --netns as uid 65534 says why"
port_listening "$HTTP_PORT" && fail "up --netns as uid 65534 started an HTTP listener"
pass "up --netns as uid 65534 started nothing"
exit 0
