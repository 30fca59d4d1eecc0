#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Start order does not matter. Three runs of the components started one by one, each
# waiting only for the previous one to answer (engine: its stats socket; ingress:
# /healthz): b, a, ingress (the node that accepts first) / ingress, a, b (the ingress
# first, nodes last) / a, ingress, b (the ingress between the nodes). Every run
# converges: /relay (a -> b -> a -> b) answers 200 within a deadline, /echo too; then
# every component is stopped by its pid and leaves no process behind.
source "$(dirname "$0")/lib.sh"
init_test

cluster_yaml() {
	yaml_common 2
	cat <<EOF
tenants:
  - { name: demo, pool: 16MiB, buffer_size: 16KiB }
functions:
  - { name: hop1, tenant: demo, exec: relay, node: a }
  - { name: hop2, tenant: demo, exec: relay, node: b }
  - { name: hop3, tenant: demo, exec: relay, node: a }
  - { name: hop4, tenant: demo, exec: relay, node: b }
  - { name: echo, tenant: demo, exec: echo, nodes: [a, b] }
routes:
  - { path: /relay, tenant: demo, chain: [hop1, hop2, hop3, hop4], timeout: 2s }
  - { path: /echo, tenant: demo, chain: [echo], timeout: 2s }
EOF
}

TRACE='[{"fn":"hop1","node":"a"},{"fn":"hop2","node":"b"},{"fn":"hop3","node":"a"},{"fn":"hop4","node":"b"}]'

run_order() {
	local what=$*
	log "--- start order: $what"
	# Fresh ports for every run: nothing of the previous run's connections in the way.
	alloc_ports 2
	cluster_yaml >"$CFG"
	local c
	for c in "$@"; do
		case $c in
		ingress) start_ingress ;;
		*) start_engine "$c" ;;
		esac
	done
	relay_ok() { route_ok /relay '{}'; }
	wait_for 30 relay_ok || fail "order $what: /relay did not answer 200 within $((30 * TIME_SCALE)) s"
	post /relay '{}'
	assert_status 200 "order $what: /relay"
	assert_eq "$TRACE" "$(resp_body)" "order $what: /relay trace"
	wait_ready /echo
	flood /echo order 20 20
	assert_eq "20 x 200; " "$FLOOD_SUMMARY" "order $what: 20 concurrent /echo"
	for c in "$@"; do
		comp_running "$c"
	done
	for c in ingress a b; do
		stop_comp "$c"
		assert_eq 0 "$COMP_RC" "order $what: $c exit status"
	done
	RECORDED=()
}

run_order b a ingress
run_order ingress a b
run_order a ingress b
exit 0
