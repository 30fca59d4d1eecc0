#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ingress closes its client connections itself when it stops. Idle connections are
# open at SIGTERM: two HTTP/1.1 keep-alive ones on the http listener (h2o 2.2 leaves idle
# HTTP/1 connections alone when asked to shut down), an HTTP/2 one (prior knowledge,
# settings exchanged) and a keep-alive one on the admin listener. The ingress must shut
# them down (shutdown_conns), see h2o close them, and exit 0 soon without "client
# connections still open at exit"; every client sees its connection end.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd python3

alloc_ports 1
{
	yaml_common 1
	cat <<EOF
tenants:
  - { name: demo, pool: 8MiB, buffer_size: 16KiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo], timeout: 5s }
EOF
} >"$CFG"

start_engine a
start_ingress
wait_ready /echo

bg IDLE_PID python3 "$SOURCE_ROOT/tests/integration/idle_clients.py" "$TMP/ready" $((20 * TIME_SCALE)) \
	"h1:$HTTP_PORT" "h1:$HTTP_PORT" "h2:$HTTP_PORT" "h1:$ADMIN_PORT:/healthz" \
	>"$TMP/idle.out" 2>"$TMP/idle.err"
idle_ready() { [[ -e "$TMP/ready" ]]; }
wait_for 10 idle_ready || fail "idle clients not connected: $(cat "$TMP/idle.out" "$TMP/idle.err")"
pass "4 idle client connections open (HTTP/1.1 x2, HTTP/2, admin)"

stop_comp ingress TERM 5
assert_eq 0 "$COMP_RC" "ingress exit status"
assert_not_contains "$(cat "${COMP_LOG[ingress]}")" "client connections still open at exit" \
	"the ingress closed every client connection before it exited"
bg_wait "$IDLE_PID" || fail "idle clients: $(cat "$TMP/idle.out" "$TMP/idle.err")"
pass "idle clients: $(cat "$TMP/idle.out")"

stop_comp a
assert_eq 0 "$COMP_RC" "engine exit status"
exit 0
