#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Online Boutique's two-node placement under `palladium up --netns` (root): the
# ingress and each node in a network namespace of their own, the cart's Redis inside the
# namespace of the node that runs the cart, on that node's address (as
# examples/boutique-two-node.yaml has it: 127.0.0.3, node b). A shopper inside the ingress's namespace changes currency,
# fills a cart and checks out; each engine runs in its node's namespace and calls cross
# between them.
source "$(dirname "$0")/lib.sh"
init_test
need_root_ip
need_cmd jq redis-server redis-cli
source "$(dirname "$0")/boutique_lib.sh"
USE_NETNS=1

pick_port REDIS_PORT
B_ADDR=127.0.0.3
netns_yaml() { two_node_yaml | sed "s|127\.0\.0\.1:$REDIS_PORT|$B_ADDR:$REDIS_PORT|"; }
netns_yaml | grep -q -- "--redis, \"$B_ADDR:$REDIS_PORT\"" || fail "the cart's --redis is not node b's address"
netns_yaml | grep -q "name: b, address: \"$B_ADDR\"" || fail "node b's address is not $B_ADDR"
start_cluster netns_yaml 2
prefix=pd$UP_PID-
cart_ns=${prefix}node-b # examples/boutique-two-node.yaml: the cart runs on node b

redis_in_ns_up() {
	[[ "$(ip netns exec "$cart_ns" redis-cli -h "$B_ADDR" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}
# Not protected mode: the cart connects from an address that is not on a loopback device.
bg REDIS_PID ip netns exec "$cart_ns" redis-server --port "$REDIS_PORT" --bind "$B_ADDR" --protected-mode no \
	--save '' --appendonly no --dir "$TMP" --logfile "$TMP/redis.log"
wait_for 10 redis_in_ns_up || fail "redis-server in $cart_ns did not answer PING"
pass "redis-server in $cart_ns on $B_ADDR:$REDIS_PORT (pid $REDIS_PID)"
if redis-cli -h "$B_ADDR" -p "$REDIS_PORT" ping >/dev/null 2>&1; then
	fail "the Redis in $cart_ns answers from the root namespace"
fi

wait_for 30 route_ok /_healthz "" || fail "/_healthz did not answer 200 inside ${prefix}ingress"
pass "the frontend answers /_healthz inside ${prefix}ingress"

JAR=$TMP/jar
page() {
	local method=$1 path=$2
	shift 2
	req "$method" "$path" -b "$JAR" -c "$JAR" "$@"
}
form() { page POST "$1" --data-raw "$2"; }
body_text() { sed -e 's/<[^>]*>/ /g' "$TMP/resp.body"; }

ID1=$(product_field 1 1)
NAME1=$(product_field 1 2)
form /setCurrency "currency_code=EUR"
assert_status 302 "netns: setCurrency EUR"
page GET /
assert_status 200 "netns: GET /"
assert_contains "$(body_text)" "$NAME1" "netns: the home page lists $NAME1"
assert_contains "$(cat "$TMP/resp.body")" "$(price "$(product_field 0 3)" "$(product_field 0 4)" '€' "$RATE_EUR")" \
	"netns: the home page shows prices in EUR"
form /cart "product_id=$ID1&quantity=3"
assert_status 302 "netns: add to cart"
page GET /cart
assert_status 200 "netns: the cart page"
assert_contains "$(body_text)" "Quantity: 3" "netns: the cart (in Redis inside $cart_ns) holds the item"
form /cart/checkout "email=a%40b.example&street_address=1+Main+St&zip_code=94043&city=X&state=CA&country=US&credit_card_number=4111+1111+1111+1111&credit_card_expiration_month=12&credit_card_expiration_year=2099&credit_card_cvv=123"
assert_status 200 "netns: checkout"
assert_contains "$(body_text)" "Your order is complete" "netns: the order confirmation"
page GET /cart
assert_not_contains "$(body_text)" "Quantity: 3" "netns: the cart is empty after the order"

fetch_stats
for n in a b; do
	epid=$(awk -v n="$n" '$1 == "node" && $2 == n { print $4 }' "$TMP/stats")
	[[ -n "$epid" ]] || fail "no engine pid for node $n in stats"
	assert_eq "${prefix}node-$n" "$(ip netns identify "$epid" 2>/dev/null)" "engine of node $n runs in ${prefix}node-$n"
done
routed() {
	awk -v n="$1" '$1 == "node" { node = $2 } $1 == "tenant" && node == n {
		for (i = 3; i <= NF; i++) if ($i ~ /^calls_routed=/) { sub(/.*=/, "", $i); print $i } }' "$TMP/stats"
}
assert_int -gt "$(routed a)" 0 "node a's engine routed calls to node b across namespaces"
assert_int -gt "$(routed b)" 0 "node b's engine served calls from node a"

kill -TERM "$REDIS_PID"
bg_wait "$REDIS_PID"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
wait_for 10 netns_gone "$prefix" || fail "namespaces left after stop: $(netns_with_prefix "$prefix" | tr '\n' ' ')"
pass "every ${prefix}* namespace removed"
finish
