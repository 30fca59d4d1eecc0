# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# What boutique.sh and boutique_browser.sh share (sourced after lib.sh): a Redis of the
# test's own on a free loopback port, and the example cluster files moved to the test's
# ports, its Redis and absolute data and static folders.

BOUTIQUE=$SOURCE_ROOT/apps/boutique
[[ -x "$FUNCTIONS_DIR/boutique-frontend" ]] || fail "$FUNCTIONS_DIR/boutique-frontend is missing (build first)"

REDIS_PORT=""
REDIS_PID=""
redis_up() {
	[[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}
# start_redis: on REDIS_PORT (picked the first time), no persistence, in $TMP.
start_redis() {
	[[ -n "$REDIS_PORT" ]] || pick_port REDIS_PORT
	bg REDIS_PID redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$TMP" --logfile "$TMP/redis.log"
	wait_for 10 redis_up || fail "redis-server on :$REDIS_PORT did not answer PING"
	pass "redis-server on :$REDIS_PORT (pid $REDIS_PID)"
}
stop_redis() {
	kill -TERM "$REDIS_PID"
	bg_wait "$REDIS_PID"
	REDIS_PID=""
}

# The example cluster files themselves: moved to the test's ports and Redis, their
# folders (relative to examples/) made absolute.
boutique_yaml_of() {
	example_yaml "$SOURCE_ROOT/examples/$1" |
		sed -E -e "s|\.\./apps/boutique/|$BOUTIQUE/|g" -e "s|127\.0\.0\.[0-9]+:6379|127.0.0.1:$REDIS_PORT|"
}
one_node_yaml() { boutique_yaml_of boutique.yaml; }
two_node_yaml() { boutique_yaml_of boutique-two-node.yaml; }

# The catalog the services were given: "id<TAB>name<TAB>units<TAB>nanos" per product.
mapfile -t PRODUCTS < <(jq -r '.products[] | [.id, .name, .price_usd.units, .price_usd.nanos] | @tsv' \
	"$BOUTIQUE/data/products.json")
((${#PRODUCTS[@]} == 9)) || fail "expected 9 products in products.json, found ${#PRODUCTS[@]}"
RATE_USD=$(jq -r '.rates.USD' "$BOUTIQUE/data/currencies.json")
RATE_EUR=$(jq -r '.rates.EUR' "$BOUTIQUE/data/currencies.json")
# product_field INDEX FIELD: FIELD 1 id, 2 name, 3 units, 4 nanos of product INDEX.
product_field() {
	cut -f"$2" <<<"${PRODUCTS[$1]}"
}
# price UNITS NANOS SYMBOL RATE: the shown price (cents truncated) of a USD amount in the
# currency of RATE (base EUR).
price() {
	awk -v u="$1" -v n="$2" -v s="$3" -v r="$4" -v usd="$RATE_USD" 'BEGIN {
		c = int(((u + n / 1e9) / usd * r) * 100 + 1e-6); printf "%s%d.%02d", s, int(c / 100), c % 100 }'
}
