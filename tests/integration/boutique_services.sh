#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Online Boutique's nine services (apps/boutique, docs/boutique.md) in a real cluster,
# each behind a route /svc/<service> (a service takes its method from the last segment
# of the path, so /svc/cart/GetCart reaches cart's GetCart), with a Redis of its own on a
# free loopback port. Checks every method's answer exactly (jq, keys sorted), the
# errors (invalid JSON and wrong types 400, unknown method 404, unknown product 404,
# unknown currency 400, bad quantity 400, refused cards 400 with the reason), the cart
# across a kill -9 of the cart function (it lives in Redis), Redis stopped or stuck ->
# 503 "cart storage unavailable" and the cart working again, on every request, once Redis
# is back (also right after a restart of Redis between two requests), and
# checkout end to end: an order with its items, shipping cost and prices converted to
# the user's currency, the cart emptied, the confirmation logged; an empty cart and a bad
# card 400 (the cart kept), Redis down 503, and its calls (11 for a two-product order,
# all answered). Concurrent additions to one cart all count;
# concurrent requests that make calls all succeed. No service restarts but the one
# killed; every buffer comes back.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd jq redis-server redis-cli

DATA=$SOURCE_ROOT/apps/boutique/data
[[ -x "$FUNCTIONS_DIR/boutique-cart" ]] || fail "$FUNCTIONS_DIR/boutique-cart is missing (build first)"

# ------------------------------------------------------------------------------ Redis

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

start_redis

# --------------------------------------------------------------------------- cluster

SERVICES=(ad cart checkout currency email payment productcatalog recommendation shipping)
boutique_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: shop, weight: 1, pool: 64MiB, buffer_size: 16KiB, max_inflight: 1024 }
functions:
  - { name: productcatalog, tenant: shop, exec: boutique-productcatalog, node: a, args: [--data, "$DATA"] }
  - { name: currency, tenant: shop, exec: boutique-currency, node: a, args: [--data, "$DATA"] }
  - { name: cart, tenant: shop, exec: boutique-cart, node: a, threads: 2, args: [--redis, "127.0.0.1:$REDIS_PORT"] }
  - { name: recommendation, tenant: shop, exec: boutique-recommendation, node: a, calls: [productcatalog] }
  - { name: shipping, tenant: shop, exec: boutique-shipping, node: a }
  - { name: payment, tenant: shop, exec: boutique-payment, node: a }
  - { name: email, tenant: shop, exec: boutique-email, node: a }
  - { name: ad, tenant: shop, exec: boutique-ad, node: a }
  - name: checkout
    tenant: shop
    exec: boutique-checkout
    node: a
    threads: 2
    calls: [productcatalog, currency, cart, shipping, payment, email]
routes:
EOF
	local s
	for s in "${SERVICES[@]}"; do
		echo "  - { path: /svc/$s, tenant: shop, chain: [$s], timeout: 5s }"
	done
}

start_cluster boutique_yaml 1

# call SERVICE METHOD BODY: POST /svc/SERVICE/METHOD; HTTP_STATUS, $TMP/resp.body.
call() {
	post "/svc/$1/$2" "$3" -H 'content-type: application/json'
}

# expect_json WHAT EXPECTED: the last answer's body is the JSON value EXPECTED (compared
# with sorted keys: member order is not part of the answer).
expect_json() {
	local got want
	got=$(jq -cS . "$TMP/resp.body" 2>"$TMP/jq.err") ||
		fail "$1: the answer is not JSON ($(head -c 300 "$TMP/resp.body"); jq: $(cat "$TMP/jq.err"))"
	want=$(jq -cS . <<<"$2") || fail "$1: bad expected JSON in the test"
	assert_eq "$want" "$got" "$1"
}

# expect STATUS WHAT EXPECTED: status and exact JSON answer (application/json).
expect() {
	assert_status "$1" "$2"
	assert_contains "$(resp_header content-type)" application/json "$2: content-type"
	expect_json "$2" "$3"
}

# expect_error STATUS WHAT TEXT: status and {"error": TEXT} exactly.
expect_error() {
	expect "$1" "$2" "$(jq -cn --arg e "$3" '{error: $e}')"
}

# expect_error_like STATUS WHAT PREFIX: status and {"error": "PREFIX..."}.
expect_error_like() {
	assert_status "$1" "$2"
	local e
	e=$(jq -r 'if type == "object" and (keys == ["error"]) then .error else "NOT {error}" end' \
		"$TMP/resp.body" 2>/dev/null)
	[[ "$e" == "$3"* ]] || fail "$2: expected {\"error\": \"$3...\"}, got '$(head -c 300 "$TMP/resp.body")'"
	pass "$2: $e"
}

# Once the services answer, the routes are ready (each service answers its unknown
# methods 404 with JSON).
service_answers() {
	[[ "$(http_curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -d '{}' \
		"http://127.0.0.1:$HTTP_PORT/svc/$1/Ping" 2>/dev/null)" == 404 ]]
}
for s in "${SERVICES[@]}"; do
	wait_for 30 service_answers "$s" || fail "/svc/$s did not answer"
done
record_pids
pass "all nine services answer"

# ------------------------------------------------------- errors common to all services

for s in "${SERVICES[@]}"; do
	call "$s" NoSuchMethod '{}'
	expect_error 404 "$s: an unknown method" "unknown method 'NoSuchMethod'"
done
for m in productcatalog/GetProduct currency/Convert cart/GetCart recommendation/ListRecommendations \
	shipping/GetQuote payment/Charge email/SendOrderConfirmation checkout/PlaceOrder ad/GetAds; do
	call "${m%/*}" "${m#*/}" '{"id": '
	expect_error_like 400 "$m: invalid JSON" "invalid JSON"
	call "${m%/*}" "${m#*/}" '[1, 2]'
	expect_error 400 "$m: a JSON array instead of an object" "the body must be a JSON object"
done

# Odd bodies to every method: each answers 200 or 400 with a JSON object, and none
# crashes (the restart counts are checked at the end).
deep=$(printf '%.0s[' {1..3000})$(printf '%.0s]' {1..3000})
ODD_BODIES=(
	'{"id": null, "user_id": null, "query": null, "from": null, "product_ids": null, "context_keys": null}'
	'{"user_id": "", "item": {}, "address": [], "items": {}, "credit_card": "x", "amount": 5, "order": null}'
	'{"units": 1e400, "from": {"currency_code": "USD", "units": 99999999999999999999}}'
	'{"user_id": "\ud800"}'
	'{"a": 1, "a": 2}'
	"{\"x\": $deep}"
	'{"user_id": "u\u0000v"}'
)
for m in productcatalog/ListProducts productcatalog/GetProduct productcatalog/SearchProducts \
	currency/GetSupportedCurrencies currency/Convert cart/AddItem cart/GetCart cart/EmptyCart \
	recommendation/ListRecommendations shipping/GetQuote shipping/ShipOrder payment/Charge \
	email/SendOrderConfirmation checkout/PlaceOrder ad/GetAds; do
	for body in "${ODD_BODIES[@]}"; do
		call "${m%/*}" "${m#*/}" "$body"
		[[ "$HTTP_STATUS" == 200 || "$HTTP_STATUS" == 400 ]] ||
			fail "$m with '${body:0:80}': expected 200 or 400, got $HTTP_STATUS ($(head -c 300 "$TMP/resp.body"))"
		jq -e 'type == "object"' "$TMP/resp.body" >/dev/null 2>&1 ||
			fail "$m with '${body:0:80}': the answer is not a JSON object: $(head -c 300 "$TMP/resp.body")"
	done
done
pass "odd bodies to every method: 200 or 400, with a JSON object"

# --------------------------------------------------------------------- productcatalog

call productcatalog ListProducts '{}'
expect 200 "ListProducts" "$(jq -c '{products: .products}' "$DATA/products.json")"
assert_eq 9 "$(jq '.products | length' "$TMP/resp.body")" "ListProducts: nine products"
assert_eq "OLJCESPC7Z 66VCHSJNUP 1YMWWN1N4O L9ECAV7KIM 2ZYFJ3GM2N 0PUK6V6EV0 LS4PSXUNUM 9SIQT8TOJO 6E92ZMYYFZ" \
	"$(jq -r '[.products[].id] | join(" ")' "$TMP/resp.body")" "ListProducts: the original's ids"
req POST /svc/productcatalog/ListProducts
expect 200 "ListProducts with an empty body" "$(jq -c '{products: .products}' "$DATA/products.json")"

call productcatalog GetProduct '{"id": "OLJCESPC7Z"}'
expect 200 "GetProduct OLJCESPC7Z" "$(jq -c '.products[] | select(.id == "OLJCESPC7Z")' "$DATA/products.json")"
call productcatalog GetProduct '{"id": "NOSUCHITEM"}'
expect_error 404 "GetProduct of an unknown id" "no product with id 'NOSUCHITEM'"
call productcatalog GetProduct '{"id": 7}'
expect_error_like 400 "GetProduct with a number for id" "expected"

# search_expected QUERY: the products whose name or description contains QUERY, any case.
search_expected() {
	jq -c --arg q "$(tr '[:upper:]' '[:lower:]' <<<"$1")" '{results: [.products[] |
		select((.name | ascii_downcase | contains($q)) or (.description | ascii_downcase | contains($q)))]}' \
		"$DATA/products.json"
}
call productcatalog SearchProducts '{"query": "MUG"}'
expect 200 "SearchProducts MUG" "$(search_expected MUG)"
assert_eq 6E92ZMYYFZ "$(jq -r '[.results[].id] | join(" ")' "$TMP/resp.body")" "SearchProducts MUG: the mug"
call productcatalog SearchProducts '{"query": "the"}'
expect 200 "SearchProducts the" "$(search_expected the)"
assert_int -ge "$(jq '.results | length' "$TMP/resp.body")" 2 "SearchProducts the: several results"
call productcatalog SearchProducts '{"query": "zzzz"}'
expect 200 "SearchProducts with no match" '{"results": []}'
call productcatalog SearchProducts '{"query": ["mug"]}'
expect_error_like 400 "SearchProducts with an array for query" "expected"

# --------------------------------------------------------------------------- currency

call currency GetSupportedCurrencies '{}'
expect 200 "GetSupportedCurrencies" "$(jq -c '{currency_codes: (.rates | keys_unsorted)}' "$DATA/currencies.json")"
assert_eq "EUR USD JPY CAD GBP TRY" "$(jq -r '.currency_codes[:6] | join(" ")' "$TMP/resp.body")" \
	"GetSupportedCurrencies: the contract's first six, in order"

call currency Convert '{"from": {"currency_code": "EUR", "units": 10, "nanos": 0}, "to_code": "USD"}'
expect 200 "Convert 10 EUR to USD" '{"currency_code": "USD", "units": 10, "nanos": 842000000}'
# 9.95 * 161.37 / 1.0842 = 1480.9366353071... JPY, rounded to the nano.
call currency Convert '{"from": {"currency_code": "USD", "units": 9, "nanos": 950000000}, "to_code": "JPY"}'
expect 200 "Convert 9.95 USD to JPY" '{"currency_code": "JPY", "units": 1480, "nanos": 936635307}'
call currency Convert '{"from": {"currency_code": "USD", "units": -9, "nanos": -950000000}, "to_code": "JPY"}'
expect 200 "Convert -9.95 USD to JPY" '{"currency_code": "JPY", "units": -1480, "nanos": -936635307}'
# 1 / 1.0842 = 0.92233905183...
call currency Convert '{"from": {"currency_code": "USD", "units": 1}, "to_code": "EUR"}'
expect 200 "Convert 1 USD to EUR (nanos left out)" '{"currency_code": "EUR", "units": 0, "nanos": 922339052}'
call currency Convert '{"from": {"currency_code": "USD", "units": 1, "nanos": 0}, "to_code": "XXX"}'
expect_error 400 "Convert to an unknown currency" "unknown currency 'XXX'"
call currency Convert '{"from": {"currency_code": "ABC", "units": 1, "nanos": 0}, "to_code": "EUR"}'
expect_error 400 "Convert from an unknown currency" "unknown currency 'ABC'"
call currency Convert '{"from": {"currency_code": "USD", "units": 1, "nanos": -5}, "to_code": "EUR"}'
expect_error_like 400 "Convert of units and nanos of different signs" "expected"
call currency Convert '{"from": {"currency_code": "USD", "units": "1", "nanos": 0}, "to_code": "EUR"}'
expect_error_like 400 "Convert with a string for units" "expected"
call currency Convert '{"from": {"currency_code": "USD", "units": 1, "nanos": 0}}'
expect_error_like 400 "Convert without to_code" "expected"

# ------------------------------------------------------------------------------- cart

call cart GetCart '{"user_id": "alice"}'
expect 200 "GetCart of a new user" '{"user_id": "alice", "items": []}'
call cart AddItem '{"user_id": "alice", "item": {"product_id": "OLJCESPC7Z", "quantity": 2}}'
expect 200 "AddItem 2 x OLJCESPC7Z" '{}'
call cart AddItem '{"user_id": "alice", "item": {"product_id": "OLJCESPC7Z", "quantity": 3}}'
expect 200 "AddItem 3 more x OLJCESPC7Z" '{}'
call cart AddItem '{"user_id": "alice", "item": {"product_id": "66VCHSJNUP", "quantity": 1}}'
expect 200 "AddItem 1 x 66VCHSJNUP" '{}'
ALICE_CART='{"user_id": "alice", "items": [{"product_id": "66VCHSJNUP", "quantity": 1},
	{"product_id": "OLJCESPC7Z", "quantity": 5}]}'
call cart GetCart '{"user_id": "alice"}'
expect 200 "GetCart: quantities summed per product" "$ALICE_CART"
call cart GetCart '{"user_id": "bob"}'
expect 200 "GetCart of another user: not alice's" '{"user_id": "bob", "items": []}'
for q in 0 -1 1001; do
	call cart AddItem "{\"user_id\": \"alice\", \"item\": {\"product_id\": \"OLJCESPC7Z\", \"quantity\": $q}}"
	expect_error 400 "AddItem quantity $q" "quantity must be 1..1000"
done
call cart AddItem '{"user_id": "alice", "item": {"product_id": "OLJCESPC7Z", "quantity": "2"}}'
expect_error_like 400 "AddItem with a string for quantity" "expected"
call cart AddItem '{"user_id": "alice", "item": {"quantity": 2}}'
expect_error_like 400 "AddItem without product_id" "expected"
call cart AddItem '{"item": {"product_id": "OLJCESPC7Z", "quantity": 2}}'
expect_error_like 400 "AddItem without user_id" "expected"
call cart GetCart '{"user_id": 42}'
expect_error_like 400 "GetCart with a number for user_id" "expected"
call cart GetCart '{"user_id": "alice"}'
expect 200 "GetCart: the refused additions changed nothing" "$ALICE_CART"
call cart EmptyCart '{"user_id": "bob"}'
expect 200 "EmptyCart of an empty cart" '{}'

# --- the cart lives in Redis: a kill -9 of the cart function loses nothing
old_pid=$(instance_pid cart)
kill -KILL "$old_pid" || fail "kill -9 $old_pid"
log "killed the cart function (pid $old_pid) with SIGKILL"
new_cart_running() {
	fetch_stats
	local pid
	pid=$(awk '$1 == "instance" && index($2, "cart/") == 1 && $4 == "state=running" {
		sub(/^pid=/, "", $3); print $3; exit }' "$TMP/stats")
	[[ -n "$pid" && "$pid" != "$old_pid" ]]
}
wait_for 30 new_cart_running || fail "the cart function was not restarted: $(grep instance "$TMP/stats")"
record_pids
new_pid=$(instance_pid cart)
assert_ne "$old_pid" "$new_pid" "the cart function runs again, in a new process"
cart_answers() {
	call cart GetCart '{"user_id": "alice"}'
	[[ "$HTTP_STATUS" == 200 ]]
}
wait_for 30 cart_answers || fail "GetCart after the restart: HTTP $HTTP_STATUS"
expect 200 "GetCart after kill -9 of the cart function: the cart is still there" "$ALICE_CART"

call cart EmptyCart '{"user_id": "alice"}'
expect 200 "EmptyCart" '{}'
call cart GetCart '{"user_id": "alice"}'
expect 200 "GetCart after EmptyCart" '{"user_id": "alice", "items": []}'

# --------------------------------------------------------------------- recommendation

all_ids=$(jq -c '[.products[].id]' "$DATA/products.json")
call recommendation ListRecommendations '{"user_id": "alice", "product_ids": ["OLJCESPC7Z"]}'
assert_status 200 "ListRecommendations for one product"
jq -e --argjson all "$all_ids" 'keys == ["product_ids"] and (.product_ids | length == 5) and
	(.product_ids | unique | length == 5) and (.product_ids | index("OLJCESPC7Z") == null) and
	all(.product_ids[]; . as $id | $all | index($id) != null)' "$TMP/resp.body" >/dev/null ||
	fail "ListRecommendations: expected 5 distinct catalog ids but OLJCESPC7Z, got $(cat "$TMP/resp.body")"
pass "ListRecommendations: 5 distinct catalog ids, not the one asked about"
call recommendation ListRecommendations \
	"$(jq -c '{user_id: "alice", product_ids: [.products[].id | select(. != "L9ECAV7KIM")]}' "$DATA/products.json")"
expect 200 "ListRecommendations for all but one product" '{"product_ids": ["L9ECAV7KIM"]}'
call recommendation ListRecommendations "{\"user_id\": \"alice\", \"product_ids\": $all_ids}"
expect 200 "ListRecommendations for every product" '{"product_ids": []}'
call recommendation ListRecommendations '{"user_id": "alice", "product_ids": "OLJCESPC7Z"}'
expect_error_like 400 "ListRecommendations with a string for product_ids" "expected"

# --------------------------------------------------------------------------- shipping

ADDRESS='{"street_address": "1 Main Street", "city": "Springfield", "state": "IL",
	"country": "US", "zip_code": 62701}'
call shipping GetQuote "{\"address\": $ADDRESS, \"items\": [{\"product_id\": \"OLJCESPC7Z\", \"quantity\": 3}]}"
expect 200 "GetQuote with items" '{"cost_usd": {"currency_code": "USD", "units": 8, "nanos": 990000000}}'
call shipping GetQuote "{\"address\": $ADDRESS, \"items\": []}"
expect 200 "GetQuote without items" '{"cost_usd": {"currency_code": "USD", "units": 0, "nanos": 0}}'
call shipping GetQuote '{"items": [{"product_id": "OLJCESPC7Z", "quantity": "3"}]}'
expect_error_like 400 "GetQuote with a string for quantity" "item 1: expected"
call shipping GetQuote '{"address": "Springfield", "items": []}'
expect_error_like 400 "GetQuote with a string for address" "expected"
call shipping ShipOrder "{\"address\": $ADDRESS, \"items\": [{\"product_id\": \"OLJCESPC7Z\", \"quantity\": 1}]}"
assert_status 200 "ShipOrder"
jq -e 'keys == ["tracking_id"] and (.tracking_id | test("^[A-Z]{2}-[0-9]{8}-[0-9]{6}$"))' \
	"$TMP/resp.body" >/dev/null || fail "ShipOrder: expected {tracking_id: XX-99999999-999999}, got $(cat "$TMP/resp.body")"
pass "ShipOrder: a tracking id"
call shipping ShipOrder "{\"address\": $ADDRESS, \"items\": []}"
expect_error 400 "ShipOrder without items" "no items to ship"

# ---------------------------------------------------------------------------- payment

YEAR=$(date -u +%Y)
card() { # card NUMBER YEAR MONTH
	jq -cn --arg n "$1" --argjson y "$2" --argjson m "$3" '{credit_card_number: $n,
		credit_card_cvv: 672, credit_card_expiration_year: $y, credit_card_expiration_month: $m}'
}
AMOUNT='{"currency_code": "EUR", "units": 31, "nanos": 500000000}'
charge() { # charge CARD_JSON
	call payment Charge "{\"amount\": $AMOUNT, \"credit_card\": $1}"
}
charge "$(card 4432-8015-6152-0454 $((YEAR + 2)) 1)"
assert_status 200 "Charge a VISA card"
jq -e 'keys == ["transaction_id"] and (.transaction_id | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"))' \
	"$TMP/resp.body" >/dev/null || fail "Charge: expected {transaction_id: a UUID}, got $(cat "$TMP/resp.body")"
pass "Charge: a transaction id"
charge "$(card 5555555555554444 $((YEAR + 1)) 12)"
assert_status 200 "Charge a MasterCard"
charge "$(card 4432801561520455 $((YEAR + 2)) 1)"
expect_error 400 "Charge a number that fails the Luhn check" "invalid card number"
charge "$(card 378282246310005 $((YEAR + 2)) 1)"
expect_error 400 "Charge an American Express card" "only VISA and MasterCard are accepted"
charge "$(card 4432801561520454 2020 1)"
expect_error 400 "Charge an expired card" "the card expired in 01/2020"
charge "$(card 4432801561520454 $((YEAR + 2)) 13)"
expect_error 400 "Charge with month 13" "invalid expiration month"
call payment Charge "{\"amount\": {\"currency_code\": \"EUR\", \"units\": -1, \"nanos\": 0}, \"credit_card\": $(card 4432801561520454 $((YEAR + 2)) 1)}"
expect_error 400 "Charge a negative amount" "a charge cannot be negative"
call payment Charge "{\"amount\": $AMOUNT}"
expect_error_like 400 "Charge without a card" "expected"

# ------------------------------------------------------------------------------ email

call email SendOrderConfirmation '{"email": "someone@example.com", "order": {"order_id": "test-order-1"}}'
expect 200 "SendOrderConfirmation" '{}'
email_logged() { grep -q "$1" "$UP_LOG"; }
wait_for 10 email_logged "email: confirmation of order test-order-1 to someone@example.com" ||
	fail "the confirmation is not in the log"
pass "SendOrderConfirmation: one line in the function's log"
call email SendOrderConfirmation '{"order": {"order_id": "x"}}'
expect_error_like 400 "SendOrderConfirmation without email" "expected"
call email SendOrderConfirmation '{"email": "someone@example.com", "order": 5}'
expect_error_like 400 "SendOrderConfirmation with a number for order" "expected"

# --------------------------------------------------------------------------------- ad

call ad GetAds '{"context_keys": ["kitchen"]}'
assert_status 200 "GetAds kitchen"
assert_eq '["/product/6E92ZMYYFZ","/product/LS4PSXUNUM","/product/9SIQT8TOJO"]' \
	"$(jq -c '[.ads[].redirect_url]' "$TMP/resp.body")" "GetAds kitchen: the three kitchen ads"
jq -e 'keys == ["ads"] and all(.ads[]; keys == ["redirect_url", "text"] and (.text | length > 0))' \
	"$TMP/resp.body" >/dev/null || fail "GetAds: expected {ads: [{redirect_url, text}...]}, got $(cat "$TMP/resp.body")"
pass "GetAds: each ad has a redirect_url and a text"
call ad GetAds '{"context_keys": ["footwear", "nothing"]}'
assert_eq '["/product/L9ECAV7KIM"]' "$(jq -c '[.ads[].redirect_url]' "$TMP/resp.body")" \
	"GetAds footwear: the footwear ad"
call ad GetAds '{"context_keys": []}'
assert_status 200 "GetAds without keys"
jq -e --argjson all "$all_ids" '(.ads | length == 1) and (.ads[0].redirect_url | ltrimstr("/product/")) as $id |
	$all | index($id) != null' "$TMP/resp.body" >/dev/null ||
	fail "GetAds without keys: expected one ad for a catalog product, got $(cat "$TMP/resp.body")"
pass "GetAds without keys: one ad, for a product of the catalog"
call ad GetAds '{"context_keys": "kitchen"}'
expect_error_like 400 "GetAds with a string for context_keys" "expected"

# --------------------------------------------------------------------------- checkout

# order USER CURRENCY CARD_NUMBER: PlaceOrder's request.
order() {
	jq -cn --arg u "$1" --arg c "$2" --argjson a "$ADDRESS" --argjson card "$(card "$3" $((YEAR + 2)) 6)" \
		'{user_id: $u, user_currency: $c, address: $a, email: "buyer@example.com", credit_card: $card}'
}
call cart AddItem '{"user_id": "buyer", "item": {"product_id": "OLJCESPC7Z", "quantity": 1}}'
assert_status 200 "buyer: AddItem 1 x OLJCESPC7Z"
call cart AddItem '{"user_id": "buyer", "item": {"product_id": "6E92ZMYYFZ", "quantity": 2}}'
assert_status 200 "buyer: AddItem 2 x 6E92ZMYYFZ"
BUYER_CART='{"user_id": "buyer", "items": [{"product_id": "6E92ZMYYFZ", "quantity": 2},
	{"product_id": "OLJCESPC7Z", "quantity": 1}]}'

call checkout PlaceOrder "$(order buyer JPY 4432801561520455)"
expect_error 400 "PlaceOrder with a bad card" "payment refused: invalid card number"
call cart GetCart '{"user_id": "buyer"}'
expect 200 "a refused payment keeps the cart" "$BUYER_CART"
call checkout PlaceOrder "$(order buyer XXX 4432801561520454)"
expect_error 400 "PlaceOrder in an unknown currency" "currency: unknown currency 'XXX'"
call checkout PlaceOrder '{"user_id": "buyer", "user_currency": "JPY"}'
expect_error_like 400 "PlaceOrder without address, email and card" "expected"

# fn_stat FUNCTION KEY: KEY of the "  function FUNCTION ..." line of the last fetch_stats.
fn_stat() {
	awk -v f="$1" -v k="$2" '$1 == "function" && $2 == f {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { print kv[2]; exit } } }' "$TMP/stats"
}
fetch_stats
started0=$(fn_stat checkout calls_started)
answered0=$(fn_stat checkout calls_answered)
call checkout PlaceOrder "$(order buyer JPY 4432801561520454)"
assert_status 200 "PlaceOrder in JPY"
# The call graph of an order of two products: GetCart; 2 x GetProduct + GetQuote; 3 x
# Convert; Charge; ShipOrder; EmptyCart; SendOrderConfirmation.
fetch_stats
assert_int -eq "$(($(fn_stat checkout calls_started) - started0))" 11 "PlaceOrder made 11 calls"
assert_int -eq "$(($(fn_stat checkout calls_answered) - answered0))" 11 "PlaceOrder's 11 calls all answered"
# 9.95 USD, 24.50 USD and 8.99 USD shipping at 161.37 JPY / 1.0842 USD.
expected=$(jq -cn --argjson a "$ADDRESS" '{order: {
	shipping_cost: {currency_code: "JPY", units: 1338, nanos: 52296624},
	shipping_address: $a,
	items: [
		{item: {product_id: "6E92ZMYYFZ", quantity: 2}, cost: {currency_code: "JPY", units: 1480, nanos: 936635307}},
		{item: {product_id: "OLJCESPC7Z", quantity: 1}, cost: {currency_code: "JPY", units: 3646, nanos: 527393470}}]}}')
got=$(jq -cS 'del(.order.order_id, .order.shipping_tracking_id)' "$TMP/resp.body")
assert_eq "$(jq -cS . <<<"$expected")" "$got" "PlaceOrder: items, unit costs and shipping in JPY, the address"
jq -e '(.order.order_id | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")) and
	(.order.shipping_tracking_id | test("^[A-Z]{2}-[0-9]{8}-[0-9]{6}$"))' "$TMP/resp.body" >/dev/null ||
	fail "PlaceOrder: expected an order id and a tracking id, got $(cat "$TMP/resp.body")"
order_id=$(jq -r .order.order_id "$TMP/resp.body")
pass "PlaceOrder: order $order_id, tracking $(jq -r .order.shipping_tracking_id "$TMP/resp.body")"
call cart GetCart '{"user_id": "buyer"}'
expect 200 "PlaceOrder emptied the cart" '{"user_id": "buyer", "items": []}'
wait_for 10 email_logged "email: confirmation of order $order_id to buyer@example.com" ||
	fail "no confirmation of order $order_id in the log"
pass "PlaceOrder: the confirmation was sent to email"

call checkout PlaceOrder "$(order buyer EUR 4432801561520454)"
expect_error 400 "PlaceOrder with an empty cart" "the cart is empty"

# The same order in EUR: 9.95 / 1.0842, 24.50 / 1.0842, shipping 8.99 / 1.0842.
call cart AddItem '{"user_id": "buyer2", "item": {"product_id": "6E92ZMYYFZ", "quantity": 2}}'
assert_status 200 "buyer2: AddItem 2 x 6E92ZMYYFZ"
call cart AddItem '{"user_id": "buyer2", "item": {"product_id": "OLJCESPC7Z", "quantity": 1}}'
assert_status 200 "buyer2: AddItem 1 x OLJCESPC7Z"
call checkout PlaceOrder "$(order buyer2 EUR 5555555555554444)"
assert_status 200 "PlaceOrder in EUR with a MasterCard"
assert_eq '{"currency_code":"EUR","nanos":291828076,"units":8}' \
	"$(jq -cS .order.shipping_cost "$TMP/resp.body")" "PlaceOrder in EUR: shipping"
assert_eq '[{"currency_code":"EUR","nanos":177273566,"units":9},{"currency_code":"EUR","nanos":597306770,"units":22}]' \
	"$(jq -cS '[.order.items[].cost]' "$TMP/resp.body")" "PlaceOrder in EUR: unit costs"

# ----------------------------------------------------------------- at the same time

# 16 additions at once, on both of cart's threads: Redis sums them, none is lost.
flood /svc/cart/AddItem '{\"user_id\": \"dave\", \"item\": {\"product_id\": \"9SIQT8TOJO\", \"quantity\": 1}}' 16
assert_eq "16 x 200; " "$FLOOD_SUMMARY" "16 concurrent AddItem all answered 200"
call cart GetCart '{"user_id": "dave"}'
expect 200 "GetCart after 16 concurrent additions" \
	'{"user_id": "dave", "items": [{"product_id": "9SIQT8TOJO", "quantity": 16}]}'
# Calls under concurrent requests: each recommendation calls productcatalog.
flood /svc/recommendation/ListRecommendations '{\"user_id\": \"dave\", \"product_ids\": []}' 16
assert_eq "16 x 200; " "$FLOOD_SUMMARY" "16 concurrent ListRecommendations all answered 200"

# ------------------------------------------------- Redis stuck, then down, then back

call cart AddItem '{"user_id": "carol", "item": {"product_id": "1YMWWN1N4O", "quantity": 4}}'
expect 200 "carol: AddItem before Redis goes away" '{}'

kill -STOP "$REDIS_PID"
log "stopped redis-server (SIGSTOP)"
call cart GetCart '{"user_id": "carol"}'
expect_error 503 "GetCart while Redis is stuck" "cart storage unavailable"
kill -CONT "$REDIS_PID"
wait_for 10 redis_up || fail "redis-server does not answer PING after SIGCONT"
call cart GetCart '{"user_id": "carol"}'
expect 200 "GetCart once Redis goes on" \
	'{"user_id": "carol", "items": [{"product_id": "1YMWWN1N4O", "quantity": 4}]}'

stop_redis
log "stopped redis-server"
call cart GetCart '{"user_id": "carol"}'
expect_error 503 "GetCart with Redis down" "cart storage unavailable"
call cart AddItem '{"user_id": "carol", "item": {"product_id": "1YMWWN1N4O", "quantity": 1}}'
expect_error 503 "AddItem with Redis down" "cart storage unavailable"
call cart EmptyCart '{"user_id": "carol"}'
expect_error 503 "EmptyCart with Redis down" "cart storage unavailable"
call checkout PlaceOrder "$(order carol EUR 4432801561520454)"
expect_error 503 "PlaceOrder with Redis down" "cart: cart storage unavailable"
# The other services do not depend on Redis.
call productcatalog GetProduct '{"id": "OLJCESPC7Z"}'
assert_status 200 "GetProduct with Redis down"

# Once Redis answers again, so does the cart at once, on every thread: a thread that
# kept a connection to the Redis that stopped makes a new one without failing a request.
start_redis
call cart GetCart '{"user_id": "alice"}'
expect 200 "GetCart once Redis is back (a new, empty Redis)" '{"user_id": "alice", "items": []}'
call cart AddItem '{"user_id": "carol", "item": {"product_id": "1YMWWN1N4O", "quantity": 1}}'
expect 200 "AddItem once Redis is back" '{}'
flood /svc/cart/AddItem '{\"user_id\": \"carol\", \"item\": {\"product_id\": \"1YMWWN1N4O\", \"quantity\": 1}}' 8
assert_eq "8 x 200; " "$FLOOD_SUMMARY" "8 concurrent AddItem once Redis is back all answered 200"
call cart GetCart '{"user_id": "carol"}'
expect 200 "GetCart once Redis is back" \
	'{"user_id": "carol", "items": [{"product_id": "1YMWWN1N4O", "quantity": 9}]}'

# Redis restarts between two requests: the connection the cart kept is closed under it,
# and the next request still succeeds (on a new connection).
stop_redis
start_redis
log "restarted redis-server between two requests"
call cart GetCart '{"user_id": "carol"}'
expect 200 "GetCart right after Redis restarted between two requests" \
	'{"user_id": "carol", "items": []}'

# No function crashed: cart's only restart was the kill -9.
fetch_stats
for s in "${SERVICES[@]}"; do
	want=0
	[[ $s == cart ]] && want=1
	got=$(awk -v f="$s" '$1 == "instance" && index($2, f "/") == 1 {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "restarts") { print kv[2]; exit } } }' "$TMP/stats")
	assert_int -eq "$got" "$want" "$s: restarts"
done
for f in checkout recommendation; do
	for k in calls_failed calls_timed_out calls_late; do
		assert_int -eq "$(fn_stat $f $k)" 0 "$f's $k"
	done
done
wait_for 10 stat_is -eq shop buffers_in_use 0 ||
	fail "buffers still in use: $(stat_sum shop buffers_in_use)"
pass "every buffer back in the pool"

stop_cluster TERM 10
assert_eq 0 "$UP_RC" "palladium up exit status after SIGTERM"
stop_redis
exit 0
