#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A connection flood does not take the ingress down. The ingress runs with a low open-file
# limit (ulimit -n 160), no ingress.max_connections (so the limit is derived from the
# open-file limit minus a reserve) and ingress.request_read_timeout: 3s. An established
# keep-alive client connects first; then 400 idle connections (more than the open-file
# limit) come from four loopback source addresses (127.0.0.2-5), each reconnecting as soon
# as the ingress drops it (bounded in count and time). While the flood holds:
#   - /healthz on the admin listener answers 200, and /metrics shows the http listener
#     at its limit (below the open-file limit, paused at the limit, never out of fds);
#   - the ingress does not spin: its CPU time (utime+stime) over a window spanning at
#     least one request_read_timeout stays under half of the window;
#   - the keep-alive client gets every answer (200) on one and the same connection;
#   - idle flood connections are closed by request_read_timeout and counted.
# After the flood: slow clients that trickle one byte every 250 ms (an HTTP/1 request
# header; an HTTP/2 SETTINGS frame after the preface, which h2o 2.2 would accept as
# activity and renew its idle timer for) are closed by the fixed deadline, and a new
# client is served. Last, an explicit ingress.max_connections above what the open-file
# limit leaves is lowered to it, with a warning.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd python3 getconf

NOFILE=160
FLOOD_SOURCES=(127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5)
FLOOD_PER_SOURCE=100
# Long enough that the keep-alive client (a request every 100 ms) never meets it even on a
# busy machine; scaled for sanitizer builds.
READ_TIMEOUT_S=$((3 * TIME_SCALE))
INGRESS_EXTRA=$'\n'"  request_read_timeout: ${READ_TIMEOUT_S}s"

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: demo, pool: 8MiB, buffer_size: 16KiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo], timeout: 5s }
EOF
}

# ----------------------------------------------------------------- client programs

# flood.py HOST PORT PER_SOURCE STOPFILE STATUSFILE MAX_CONNECTS MAX_SECONDS SRC...:
# PER_SOURCE idle connections from each SRC; one that the server closes is opened again
# from the same SRC, MAX_CONNECTS connects at most in all, for MAX_SECONDS at most or until
# STOPFILE exists. STATUSFILE: "opened N live N closed N failed N", rewritten as it goes.
cat >"$TMP/flood.py" <<'EOF'
import os, selectors, socket, sys, time
host, port, per, stopf, statf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
max_connects, max_secs, srcs = int(sys.argv[6]), float(sys.argv[7]), sys.argv[8:]
sel = selectors.DefaultSelector()
st = {"opened": 0, "live": 0, "closed": 0, "failed": 0}
def connect(src):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.bind((src, 0))
        s.connect_ex((host, port))
    except OSError:
        st["failed"] += 1
        s.close()
        return
    st["opened"] += 1
    st["live"] += 1
    sel.register(s, selectors.EVENT_READ, src)
def report():
    with open(statf + ".tmp", "w") as f:
        f.write("opened %(opened)d live %(live)d closed %(closed)d failed %(failed)d\n" % st)
    os.replace(statf + ".tmp", statf)
for src in srcs:
    for _ in range(per):
        connect(src)
report()
deadline = time.monotonic() + max_secs
while time.monotonic() < deadline and not os.path.exists(stopf):
    for key, _ in sel.select(0.1):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            continue
        sel.unregister(s)
        s.close()
        st["live"] -= 1
        st["closed"] += 1
        if st["opened"] < max_connects:
            connect(key.data)
    report()
for key in list(sel.get_map().values()):
    key.fileobj.close()
st["live"] = 0
report()
EOF

# keepalive.py HOST PORT STOPFILE MAX_REQUESTS MAX_SECONDS: POST /echo on one keep-alive
# connection every 100 ms until STOPFILE exists; prints "STATUS LOCALPORT" per answer,
# "ERR ..." (and exits 1) on an error.
cat >"$TMP/keepalive.py" <<'EOF'
import http.client, os, sys, time
host, port, stopf, max_req, max_secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
c = http.client.HTTPConnection(host, port, timeout=10)
deadline = time.monotonic() + max_secs
n = 0
try:
    while n < max_req and time.monotonic() < deadline and not os.path.exists(stopf):
        c.request("POST", "/echo", body=b"keepalive")
        r = c.getresponse()
        r.read()
        print(r.status, c.sock.getsockname()[1], flush=True)
        n += 1
        time.sleep(0.1)
except Exception as e:
    print("ERR", repr(e), flush=True)
    sys.exit(1)
EOF

# slow.py HOST PORT h1|h2 MAX_SECONDS: trickle a request one byte every 250 ms; exit 0
# and print "closed ..." once the server closes the connection, exit 1 if it is still
# open after MAX_SECONDS (or the bytes ran out).
cat >"$TMP/slow.py" <<'EOF'
import select, socket, sys, time
host, port, mode, max_secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.create_connection((host, port))
if mode == "h2":
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    # a SETTINGS frame of 100 settings (600 bytes), trickled
    trickle = b"\x00\x02\x58\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64" * 100
else:
    trickle = b"POST /echo HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 4000
t0 = time.monotonic()
sent = 0
def closed(why):
    print("closed after %.2f s, %d bytes trickled (%s)" % (time.monotonic() - t0, sent, why), flush=True)
    sys.exit(0)
for b in trickle:
    if time.monotonic() - t0 > max_secs:
        break
    try:
        s.send(bytes([b]))
    except OSError as e:
        closed("send: %s" % e.strerror)
    sent += 1
    end = time.monotonic() + 0.25
    while (left := end - time.monotonic()) > 0:
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            data = s.recv(4096)
        except OSError as e:
            closed("recv: %s" % e.strerror)
        if not data:
            closed("end of stream")
print("still open after %.2f s, %d bytes trickled" % (time.monotonic() - t0, sent), flush=True)
sys.exit(1)
EOF

# ------------------------------------------------------------------------ the cluster

alloc_ports 1
cluster_yaml >"$CFG"
start_engine a
# The ingress alone gets the low open-file limit (the shell's is restored at once).
OLD_NOFILE=$(ulimit -Sn)
ulimit -Sn "$NOFILE" || skip "cannot lower the open-file limit to $NOFILE"
start_ingress
ulimit -Sn "$OLD_NOFILE"
ING_PID=${COMP_PID[ingress]}
assert_eq "$NOFILE" "$(awk '/^Max open files/ { print $4 }' "/proc/$ING_PID/limits")" \
	"the ingress's open-file limit"
wait_ready /echo
fetch_metrics
MAX_CONNS=$(metric_sum palladium_ingress_connections_max 'listener="http"')
assert_int -gt "$MAX_CONNS" 0 "connection limit derived from the open-file limit"
assert_int -lt "$MAX_CONNS" "$NOFILE" "connection limit below the open-file limit"

# ------------------------------------------------------------- established client
bg KA_PID python3 "$TMP/keepalive.py" 127.0.0.1 "$HTTP_PORT" "$TMP/ka.stop" 2000 $((90 * TIME_SCALE)) \
	>"$TMP/ka.out" 2>"$TMP/ka.err"
ka_answers() { (($(grep -c '^200 ' "$TMP/ka.out") >= $1)); }
wait_for 10 ka_answers 1 || fail "keep-alive client: no answer ($(cat "$TMP/ka.out" "$TMP/ka.err"))"
pass "keep-alive client answered before the flood"

# ------------------------------------------------------------------------- the flood
FLOOD_N=$((FLOOD_PER_SOURCE * ${#FLOOD_SOURCES[@]}))
bg FLOOD_PID python3 "$TMP/flood.py" 127.0.0.1 "$HTTP_PORT" "$FLOOD_PER_SOURCE" "$TMP/flood.stop" \
	"$TMP/flood.status" 20000 $((60 * TIME_SCALE)) "${FLOOD_SOURCES[@]}" 2>"$TMP/flood.err"
flood_field() { awk -v k="$1" '{ for (i = 1; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$TMP/flood.status" 2>/dev/null; }
flood_opened() { [[ "$(flood_field opened)" -ge $FLOOD_N ]] 2>/dev/null; }
wait_for 20 flood_opened || fail "flood: $FLOOD_N connections not opened ($(cat "$TMP/flood.status" "$TMP/flood.err" 2>&1))"
assert_eq 0 "$(flood_field failed)" "flood: connects that failed"
pass "flood: $FLOOD_N idle connections from ${FLOOD_SOURCES[*]} ($(cat "$TMP/flood.status"))"

# The http listener fills up to its limit and stops accepting.
metrics_now() { http_curl -fsS --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$TMP/metrics" 2>/dev/null; }
at_limit() {
	metrics_now &&
		(($(metric_sum palladium_ingress_connections 'listener="http"') == MAX_CONNS)) &&
		(($(metric_sum palladium_ingress_accept_paused_total 'listener="http"' 'reason="limit"') > 0))
}
wait_for 20 at_limit || fail "the http listener did not reach its limit of $MAX_CONNS (healthz: $(curl -sS --max-time 2 "http://127.0.0.1:$ADMIN_PORT/healthz" 2>&1); metrics: $(grep -E '^palladium_ingress_(connections|accept_paused)' "$TMP/metrics" 2>/dev/null | tr '\n' ' '))"
pass "http listener at its limit: $MAX_CONNS connections open, accepting paused"

# healthz_now WHAT: /healthz on the admin listener answers 200 at once (one try).
healthz_now() {
	local code
	code=$(http_curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$ADMIN_PORT/healthz" 2>"$TMP/healthz.err")
	[[ "$code" == 200 ]] || fail "$1: /healthz answered '$code' ($(cat "$TMP/healthz.err"))"
	pass "$1: /healthz 200"
}
healthz_now "admin listener during the flood"

# CPU of the ingress over a window that spans at least one request_read_timeout: at
# least one generation of flood connections times out and is replaced meanwhile.
cpu_ticks() {
	local f
	f=$(proc_fields "$ING_PID") || return 1
	# shellcheck disable=SC2086
	set -- $f
	echo $((${12} + ${13}))
}
fetch_metrics
TO0=$(metric_sum palladium_ingress_connections_timed_out_total 'listener="http"')
C0=$(cpu_ticks) || fail "no /proc/$ING_PID/stat"
T0MS=$(now_ms)
timed_out_more() {
	metrics_now && (($(metric_sum palladium_ingress_connections_timed_out_total 'listener="http"') >= TO0 + MAX_CONNS))
}
wait_for 20 timed_out_more || fail "flood connections were not closed by request_read_timeout ($(grep timed_out "$TMP/metrics" | tr '\n' ' '))"
C1=$(cpu_ticks) || fail "no /proc/$ING_PID/stat"
T1MS=$(now_ms)
HZ=$(getconf CLK_TCK)
CPU_MS=$(((C1 - C0) * 1000 / HZ))
WALL_MS=$((T1MS - T0MS))
log "ingress CPU: $CPU_MS ms over $WALL_MS ms while the flood held"
assert_int -lt $((CPU_MS * 2)) "$WALL_MS" "ingress CPU time x2 over the window (a spinning loop uses it all)"
assert_int -ge "$(metric_sum palladium_ingress_connections_timed_out_total 'listener="http"')" \
	$((TO0 + MAX_CONNS)) "flood connections closed by request_read_timeout"
assert_int -gt "$(flood_field closed)" 0 "flood connections dropped and reconnected"
assert_eq 0 "$(metric_sum palladium_ingress_accept_paused_total 'reason="no_fd"')" \
	"accept never met EMFILE/ENFILE"
healthz_now "admin listener after the CPU window"
comp_running ingress

# The keep-alive client got every answer, on its first connection.
ka_before=$(grep -c '^200 ' "$TMP/ka.out")
wait_for 10 ka_answers $((ka_before + 5)) || fail "keep-alive client: no new answers during the flood ($(tail -n 3 "$TMP/ka.out"))"
touch "$TMP/ka.stop"
bg_wait "$KA_PID" || fail "keep-alive client failed: $(tail -n 3 "$TMP/ka.out") $(cat "$TMP/ka.err")"
ka_total=$(wc -l <"$TMP/ka.out")
assert_eq "$ka_total" "$(grep -c '^200 ' "$TMP/ka.out")" "keep-alive client: every one of $ka_total answers is 200"
assert_eq 1 "$(awk '{ print $2 }' "$TMP/ka.out" | sort -u | wc -l)" "keep-alive client: one connection throughout"

# --------------------------------------------------------------------- flood ends
touch "$TMP/flood.stop"
bg_wait "$FLOOD_PID" || fail "flood client failed: $(cat "$TMP/flood.err")"
pass "flood stopped ($(cat "$TMP/flood.status"))"
new_client_ok() { route_ok /echo after; }
wait_for 20 new_client_ok || fail "no 200 for a new client after the flood"
pass "a new client is served after the flood"
drained() { metrics_now && (($(metric_sum palladium_ingress_connections 'listener="http"') <= 1)); }
wait_for 20 drained || fail "flood connections still counted open: $(grep '^palladium_ingress_connections{' "$TMP/metrics" | tr '\n' ' ')"
pass "open connection count back down"

# ----------------------------------------------------------------------- slow clients
fetch_metrics
TO1=$(metric_sum palladium_ingress_connections_timed_out_total 'listener="http"')
bg SLOW1 python3 "$TMP/slow.py" 127.0.0.1 "$HTTP_PORT" h1 $((4 * READ_TIMEOUT_S)) >"$TMP/slow.h1" 2>&1
bg SLOW2 python3 "$TMP/slow.py" 127.0.0.1 "$HTTP_PORT" h2 $((4 * READ_TIMEOUT_S)) >"$TMP/slow.h2" 2>&1
bg_wait "$SLOW1" || fail "HTTP/1 slow client: $(cat "$TMP/slow.h1")"
pass "HTTP/1 slow client: $(cat "$TMP/slow.h1")"
bg_wait "$SLOW2" || fail "HTTP/2 slow client: $(cat "$TMP/slow.h2")"
pass "HTTP/2 slow client: $(cat "$TMP/slow.h2")"
fetch_metrics
assert_int -ge "$(metric_sum palladium_ingress_connections_timed_out_total 'listener="http"')" \
	$((TO1 + 2)) "both slow clients closed by request_read_timeout"

post /echo still
assert_status 200 "/echo after the slow clients"
stop_comp ingress
assert_eq 0 "$COMP_RC" "ingress exit status"

# ------------------------------------------- an explicit limit above what the fds allow
# is lowered to the derived one, with a warning.
INGRESS_EXTRA+=$'\n'"  max_connections: 100000"
cluster_yaml >"$CFG"
ulimit -Sn "$NOFILE" || fail "cannot lower the open-file limit to $NOFILE"
start_ingress
ulimit -Sn "$OLD_NOFILE"
fetch_metrics
assert_eq "$MAX_CONNS" "$(metric_sum palladium_ingress_connections_max 'listener="http"')" \
	"max_connections: 100000 lowered to what ulimit -n $NOFILE leaves"
assert_contains "$(cat "${COMP_LOG[ingress]}")" "ingress.max_connections 100000 is above" \
	"the ingress warns that it lowered max_connections"
stop_comp ingress
assert_eq 0 "$COMP_RC" "ingress exit status"
stop_comp a
assert_eq 0 "$COMP_RC" "engine exit status"
exit 0
