#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The calls example (examples/calls.yaml on random ports): /quote's function calls price
# and shipping in parallel and answers their JSON merged into one object; a callee's
# error (its 400 for invalid JSON) reaches the client as a 502 that names the callee and
# its status. Every call is counted (two per quote, all answered) and every buffer comes
# back. `palladium check` passes the file and refuses a variant in which quote calls a
# function that does not exist, at its line and column; docs/functions.md shows the real
# functions/quote.c.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd jq

EXAMPLE=$SOURCE_ROOT/examples/calls.yaml

# --- palladium check: the example passes; a call to an unknown function is refused
"$PALLADIUM" check "$EXAMPLE" >"$TMP/check.out" 2>&1 ||
	fail "palladium check examples/calls.yaml: $(cat "$TMP/check.out")"
pass "examples/calls.yaml passes palladium check"

line=$(grep -n 'name: quote,' "$EXAMPLE" | head -1 | cut -d: -f1)
[[ -n "$line" ]] || fail "examples/calls.yaml changed: no 'name: quote,' line"
sed "${line}s/calls: \[price, shipping\]/calls: [price, discount, shipping]/" "$EXAMPLE" \
	>"$TMP/unknown_callee.yaml"
grep -q 'calls: \[price, discount, shipping\]' "$TMP/unknown_callee.yaml" ||
	fail "examples/calls.yaml changed: no 'calls: [price, shipping]' on line $line"
"$PALLADIUM" check "$TMP/unknown_callee.yaml" >"$TMP/unknown.out" 2>"$TMP/unknown.err"
rc=$?
assert_eq 1 "$rc" "palladium check exit status for a call to an unknown function"
hit=$(grep -E "^$TMP/unknown_callee\.yaml:$line:[0-9]+: error: .*\"discount\"" "$TMP/unknown.err" | head -1)
[[ -n "$hit" ]] ||
	fail "expected an error at unknown_callee.yaml:$line:COL naming \"discount\", got: $(cat "$TMP/unknown.err")"
pass "unknown callee refused: ${hit#"$TMP/"}"

# --- docs/functions.md shows functions/quote.c as it is (all but its opening comment)
awk '/^### A complete fan-out/ { f = 1 } f && /^```c$/ { c = 1; next } c && /^```$/ { exit } c' \
	"$SOURCE_ROOT/docs/functions.md" >"$TMP/doc_quote.c"
sed -n '/^#include/,$p' "$SOURCE_ROOT/functions/quote.c" >"$TMP/quote.c"
[[ -s "$TMP/doc_quote.c" ]] || fail "docs/functions.md: no C block under '### A complete fan-out'"
cmp -s "$TMP/quote.c" "$TMP/doc_quote.c" ||
	fail "docs/functions.md's copy of functions/quote.c differs: $(diff "$TMP/quote.c" "$TMP/doc_quote.c" | head -20)"
pass "docs/functions.md shows functions/quote.c as it is"

calls_yaml() {
	example_yaml "$EXAMPLE"
}

start_cluster calls_yaml 1
for p in "$HTTP_PORT" "$ADMIN_PORT" "${NODE_PORTS[0]}"; do
	grep -q "$p" "$CFG" || fail "examples/calls.yaml changed: port $p not substituted"
done
wait_ready /quote '{}'

# fn_stat FUNCTION KEY: KEY of the "  function FUNCTION ..." line of the last fetch_stats.
fn_stat() {
	awk -v f="$1" -v k="$2" '$1 == "function" && $2 == f {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { print kv[2]; exit } } }' "$TMP/stats"
}
fetch_stats
started0=$(fn_stat quote calls_started)
answered0=$(fn_stat quote calls_answered)
assert_int -ge "$started0" 2 "quote's calls are counted (calls_started after the first quotes)"
QUOTES=0 # /quote requests sent from here on: each makes two calls

# expect_json WHAT EXPECTED: the last answer's body is the JSON value EXPECTED (jq compares
# them with sorted keys: member order is not part of the answer).
expect_json() {
	local got want
	got=$(jq -cS . "$TMP/resp.body" 2>"$TMP/jq.err") ||
		fail "$1: the answer is not JSON ($(head -c 300 "$TMP/resp.body"); jq: $(cat "$TMP/jq.err"))"
	want=$(jq -cS . <<<"$2") || fail "$1: bad expected JSON in the test"
	assert_eq "$want" "$got" "$1"
}

# --- the merged answer: defaults, then an order with items and a country
post /quote '{}' -H 'content-type: application/json'
QUOTES=$((QUOTES + 1))
assert_status 200 "POST /quote {}"
assert_contains "$(resp_header content-type)" "application/json" "/quote content-type"
expect_json "/quote {}: price and shipping merged" \
	'{"price":{"currency":"EUR","items":0,"total_cents":0},
	  "shipping":{"country":"DE","cost_cents":490,"days":2}}'

order='{"items":[{"id":"book","qty":2},{"id":"pen"},{"id":"mug","qty":3}],"country":"FR"}'
post /quote "$order" -H 'content-type: application/json'
QUOTES=$((QUOTES + 1))
assert_status 200 "POST /quote with items and a country"
# 2 x 1250 + 199 + 3 x 850 cents; shipping to FR.
expect_json "/quote with items and a country: both callees read the order" \
	'{"price":{"currency":"EUR","items":6,"total_cents":5249},
	  "shipping":{"country":"FR","cost_cents":890,"days":3}}'

req GET /quote
QUOTES=$((QUOTES + 1))
assert_status 200 "GET /quote (an empty body reads as {})"
expect_json "GET /quote: the defaults" \
	'{"price":{"currency":"EUR","items":0,"total_cents":0},
	  "shipping":{"country":"DE","cost_cents":490,"days":2}}'

# --- a callee's error: 502 naming the callee, with its status and its own answer
post /quote '{"items": [' -H 'content-type: application/json'
QUOTES=$((QUOTES + 1))
assert_status 502 "POST /quote with invalid JSON"
assert_contains "$(resp_header content-type)" "application/json" "502 content-type"
assert_eq price "$(jq -r .callee "$TMP/resp.body")" "invalid JSON: the 502 names the first callee"
assert_eq 400 "$(jq -r .status "$TMP/resp.body")" "invalid JSON: the callee's status (400)"
assert_contains "$(jq -r .detail.error "$TMP/resp.body")" "invalid JSON" \
	"invalid JSON: the callee's own error comes along"

# Only shipping refuses this one: the 502 names shipping, not price.
post /quote '{"items":[{"id":"pen"}],"country":"fr"}'
QUOTES=$((QUOTES + 1))
assert_status 502 "POST /quote with a bad country"
assert_eq shipping "$(jq -r .callee "$TMP/resp.body")" "bad country: the 502 names shipping"
assert_eq 400 "$(jq -r .status "$TMP/resp.body")" "bad country: shipping's status (400)"

post /quote '{"items":[{"id":"teapot"}]}'
QUOTES=$((QUOTES + 1))
assert_status 502 "POST /quote with an unknown item"
assert_eq price "$(jq -r .callee "$TMP/resp.body")" "unknown item: the 502 names price"
assert_contains "$(jq -r .detail.error "$TMP/resp.body")" "catalogue" \
	"unknown item: price's own error comes along"

# --- concurrent quotes: each one's two calls run beside the others' (quote has 2 threads)
flood /quote '{}' 24
QUOTES=$((QUOTES + 24))
assert_eq "24 x 200; " "$FLOOD_SUMMARY" "24 concurrent /quote requests all answered 200"

post /quote '{}'
QUOTES=$((QUOTES + 1))
assert_status 200 "POST /quote after the errors and the burst"

# --- the counters: two calls per quote, every one answered (a callee's 400 is an
# answer), none failed or late; every buffer back in the pool
fetch_stats
assert_int -eq "$(($(fn_stat quote calls_started) - started0))" $((2 * QUOTES)) \
	"quote's calls_started: two per quote"
assert_int -eq "$(($(fn_stat quote calls_answered) - answered0))" $((2 * QUOTES)) \
	"quote's calls_answered: every call"
for k in calls_failed calls_timed_out calls_late; do
	assert_int -eq "$(fn_stat quote $k)" 0 "quote's $k"
done
for f in price shipping; do
	assert_int -eq "$(fn_stat $f calls_started)" 0 "$f makes no call"
done
wait_for 10 stat_is -eq demo buffers_in_use 0 ||
	fail "buffers still in use after the quotes: $(stat_sum demo buffers_in_use)"
pass "every buffer back in the pool"

stop_cluster TERM 5
assert_eq 0 "$UP_RC" "palladium up exit status after SIGTERM"
exit 0
