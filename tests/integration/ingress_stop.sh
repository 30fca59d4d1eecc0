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

# idle.py HOST HTTP_PORT ADMIN_PORT READYFILE SECONDS: opens the idle connections (each
# answered once, so that the ingress has accepted it), writes READYFILE, then waits at most
# SECONDS for every one to end (EOF or reset). Prints "ended N of M"; exit 0 if all did.
cat >"$TMP/idle.py" <<'EOF'
import select, socket, sys, time
host, port, admin, readyf, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])

def h1(p, path):
    s = socket.create_connection((host, p), timeout=5)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("HTTP/1 connection to %d closed before its answer" % p)
        data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        sys.exit("HTTP/1 answer: %r" % data[:64])
    return s

def h2():
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    head = b""
    while len(head) < 9:
        chunk = s.recv(9 - len(head))
        if not chunk:
            sys.exit("HTTP/2 connection closed before the server's SETTINGS")
        head += chunk
    if head[3] != 4:
        sys.exit("HTTP/2: first frame type %d, not SETTINGS" % head[3])
    s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")  # SETTINGS ack
    return s

conns = [h1(port, b"/no-such-route"), h1(port, b"/no-such-route"), h2(), h1(admin, b"/healthz")]
open(readyf, "w").close()
left = set(conns)
deadline = time.monotonic() + secs
while left and time.monotonic() < deadline:
    r, _, _ = select.select(list(left), [], [], 0.2)
    for s in r:
        try:
            if s.recv(65536):
                continue  # GOAWAY and the like: not the end yet
        except OSError:
            pass
        left.discard(s)
print("ended %d of %d" % (len(conns) - len(left), len(conns)), flush=True)
sys.exit(1 if left else 0)
EOF

start_engine a
start_ingress
wait_ready /echo

bg IDLE_PID python3 "$TMP/idle.py" 127.0.0.1 "$HTTP_PORT" "$ADMIN_PORT" "$TMP/ready" $((20 * TIME_SCALE)) \
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
