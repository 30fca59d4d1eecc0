#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Admission control answers at once instead of queueing without bound:
#   over a tenant's max_inflight -> 429 with Retry-After
#   over a tenant's rate         -> 429, counted in /metrics
#   no engine reachable          -> 503
# (503 for a full ring or no free buffer: overload.sh)
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$MISBEHAVE" ]] || fail "test function $MISBEHAVE is not built"

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: lim, pool: 4MiB, buffer_size: 16KiB, max_inflight: 2 }
  - { name: slow, pool: 4MiB, buffer_size: 16KiB, rate: 5 }
functions:
  - { name: mis_lim, tenant: lim, exec: "$MISBEHAVE", node: a, instances: 1, threads: 1 }
  - { name: echo_slow, tenant: slow, exec: echo, node: a }
routes:
  - { path: /lim, tenant: lim, chain: [mis_lim], timeout: 3s }
  - { path: /slow, tenant: slow, chain: [echo_slow], timeout: 3s }
EOF
}

start_cluster cluster_yaml 1
wait_ready /lim
wait_ready /slow
fetch_metrics
metric_present palladium_ingress_inflight || fail "/metrics has no palladium_ingress_inflight"

# ------------------------------------------------------------- max_inflight: 2 -> 429
hang_lim() {
	curl -sS --max-time $((20 * TIME_SCALE)) -o /dev/null -w '%{http_code}' \
		--data-binary hang "http://127.0.0.1:$HTTP_PORT/lim" >"$TMP/lim.$1" 2>&1
}
bg h1 hang_lim 1
bg h2 hang_lim 2
two_inflight() {
	fetch_metrics
	(($(metric_sum palladium_ingress_inflight) >= 2))
}
wait_for 10 two_inflight || fail "the two hanging requests never showed in palladium_ingress_inflight: $(grep inflight "$TMP/metrics")"
pass "two requests in flight for tenant lim"
post /lim third
assert_status 429 "third concurrent request over max_inflight 2"
ra=$(resp_header retry-after)
[[ "$ra" =~ ^[0-9]+$ ]] || fail "429 without a numeric Retry-After header (got '$ra')"
pass "429 carries Retry-After: $ra"
bg_wait "$h1"
bg_wait "$h2"
assert_eq 504 "$(cat "$TMP/lim.1")" "first hanging request: 504 at the timeout"
assert_eq 504 "$(cat "$TMP/lim.2")" "second hanging request: 504 at the timeout"
fetch_metrics
n=$(metric_sum palladium_ingress_rejected_total 'tenant="lim"')
assert_int -ge "$n" 1 "rejected_total{tenant=\"lim\"}"
lim_ok() { route_ok /lim back; }
wait_for 30 lim_ok || fail "/lim did not answer 200 again after the hang"
pass "/lim answers again after its hung instance was replaced"

# ---------------------------------------------------------------------- rate: 5/s -> 429
fetch_metrics
rej_before=$(metric_sum palladium_ingress_rejected_total 'tenant="slow"')
held_before=$(metric_sum palladium_ingress_held_rejections_total)
{
	echo 'data-binary = "r"'
	echo "max-time = $((10 * TIME_SCALE))"
	echo 'write-out = "%{http_code} %header{retry-after}\n"'
	for _ in $(seq 30); do
		echo "url = \"http://127.0.0.1:$HTTP_PORT/slow\""
		echo 'output = "/dev/null"'
	done
} >"$TMP/burst.curl"
curl -sS -K "$TMP/burst.curl" >"$TMP/burst.out" 2>"$TMP/burst.err"
n200=$(grep -c '^200' "$TMP/burst.out")
n429=$(grep -c '^429' "$TMP/burst.out")
log "burst of 30 at rate 5/s: $n200 x 200, $n429 x 429"
assert_int -eq $((n200 + n429)) 30 "every burst answer is 200 or 429 ($(sort "$TMP/burst.out" | uniq -c | tr '\n' ';'))"
assert_int -ge "$n200" 1 "some of the burst admitted"
assert_int -ge "$n429" 1 "some of the burst rejected by the rate limit"
grep '^429' "$TMP/burst.out" | grep -qv '^429 [0-9]' && fail "a rate-limited 429 without Retry-After: $(grep '^429' "$TMP/burst.out" | head -3)"
pass "rate-limited 429s carry Retry-After"
fetch_metrics
rej_after=$(metric_sum palladium_ingress_rejected_total 'tenant="slow"')
assert_int -eq $((rej_after - rej_before)) "$n429" "rejected_total{tenant=\"slow\"} grew by the 429s"
held_after=$(metric_sum palladium_ingress_held_rejections_total)
assert_int -eq $((held_after - held_before)) "$n429" "every 429 was held for ingress.reject_delay first (held_rejections_total)"
assert_int -eq "$(metric_sum palladium_ingress_held_rejections)" 0 "none is held once all are answered"
grep '^palladium_ingress_rejected_total' "$TMP/metrics" | while read -r l; do log "  $l"; done

fetch_metrics
assert_int -eq "$(metric_sum palladium_ingress_inflight)" 0 "nothing in flight at the end"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"

# ------------------------------------------------------------------ no engine -> 503
# The ingress alone (`palladium ingress`), its node engine never started.
# ingress.reject_delay (10 s here, so that nothing below depends on timing): a 429 is
# held back; a client that leaves meanwhile is forgotten at once over HTTP/2 (h2o
# disposes the request; over HTTP/1 it learns only when the answer is written); stopping
# answers what is held. One request hangs in flight so that every other one is over
# max_inflight 1.
held_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: one, pool: 4MiB, buffer_size: 16KiB, max_inflight: 1 }
functions:
  - { name: mis_one, tenant: one, exec: "$MISBEHAVE", node: a, instances: 1, threads: 1 }
routes:
  - { path: /one, tenant: one, chain: [mis_one], timeout: 60s }
EOF
}
INGRESS_EXTRA=$'\n  reject_delay: 10s' start_cluster held_yaml 1
wait_ready /one
# held_curl NAME [CURL ARGS...]: POST /one; writes "<status> <Retry-After>" to
# $TMP/held.NAME (exec: the job's pid is curl's own, so that it can be killed).
held_curl() {
	local name=$1
	shift
	exec curl -sS --max-time $((60 * TIME_SCALE)) -o /dev/null "$@" \
		-w '%{http_code} %header{retry-after}' --data-binary x \
		"http://127.0.0.1:$HTTP_PORT/one" >"$TMP/held.$name" 2>&1
}
# metric_is NAME VALUE
metric_is() {
	fetch_metrics
	(($(metric_sum "$1") == $2))
}
hang_one() {
	exec curl -sS --max-time $((120 * TIME_SCALE)) -o /dev/null -w '%{http_code}' \
		--data-binary hang "http://127.0.0.1:$HTTP_PORT/one" >"$TMP/hang.one" 2>&1
}
bg hang hang_one
one_inflight() {
	fetch_metrics
	(($(metric_sum palladium_ingress_inflight 'tenant="one"') == 1))
}
wait_for 10 one_inflight || fail "the hanging request never showed in palladium_ingress_inflight"

bg c2 held_curl 2 --http2-prior-knowledge
wait_for 10 metric_is palladium_ingress_held_rejections_total 1 ||
	fail "a request over max_inflight was not held ($(grep held_rejections "$TMP/metrics" | tr '\n' ' '))"
assert_int -eq "$(metric_sum palladium_ingress_held_rejections)" 1 "held_rejections while an HTTP/2 client waits"
kill "$c2" 2>/dev/null
bg_wait "$c2"
wait_for 10 metric_is palladium_ingress_held_rejections_gone_total 1 ||
	fail "the held 429 of an HTTP/2 client that left was not forgotten ($(grep held_rejections "$TMP/metrics" | tr '\n' ' '))"
assert_int -eq "$(metric_sum palladium_ingress_held_rejections)" 0 "held_rejections after the client left"
assert_eq 200 "$(http_curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/healthz")" \
	"/healthz after a client left during its hold"
pass "an HTTP/2 client that leaves while its 429 is held: forgotten at once"

bg c3 held_curl 3
wait_for 10 metric_is palladium_ingress_held_rejections_total 2 || fail "the HTTP/1 request over max_inflight was not held"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status, stopped while holding a 429"
bg_wait "$c3"
read -r st ra <"$TMP/held.3"
assert_eq 429 "$st" "the held request, when the cluster stops"
[[ "$ra" =~ ^[0-9]+$ ]] || fail "held 429 without a numeric Retry-After (got '$ra')"
bg_wait "$hang"
pass "stopping answers a held 429 at once, with Retry-After: $ra (the hanging request: $(cat "$TMP/hang.one"))"

UP_CMD=ingress HEALTH_EXPECT=503 start_cluster cluster_yaml 1
h=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/healthz")
assert_contains "$h" "/slow" "/healthz names the unreachable routes"
post /slow hi
assert_status 503 "no engine reachable"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium ingress exit status"
exit 0
