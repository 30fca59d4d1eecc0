#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Online Boutique as a shopper sees it (examples/boutique.yaml on random ports, with a
# Redis of the test's own on a free loopback port): the home page lists every product of
# the catalog with its price, a currency set with /setCurrency converts every price, a
# product page shows the product, its recommendations and the add-to-cart form, items
# added show in the cart with their quantities, shipping and total, and checkout shows
# the order's confirmation and empties the cart. Bad input gets its status (unknown
# product or page 404; bad quantity, currency, form or card 400; wrong method 405),
# every value is escaped, static files come with their type and no path leaves the
# static folder. Redis down gives the 503 page, and the shop works again once Redis is
# back; a cart outlives a kill -9 of the cart function. Then the same shop on two nodes
# (examples/boutique-two-node.yaml): pages that need both nodes answer, and both serve.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd jq redis-server redis-cli

source "$(dirname "$0")/boutique_lib.sh"
for f in boutique.yaml boutique-two-node.yaml; do
	"$PALLADIUM" check "$SOURCE_ROOT/examples/$f" >"$TMP/check.out" 2>&1 ||
		fail "palladium check examples/$f: $(cat "$TMP/check.out")"
	pass "examples/$f passes palladium check"
done
start_redis

# ------------------------------------------------------------------- shopping helpers

JAR=$TMP/jar
# page METHOD PATH [CURL ARGS...]: a request with the shopper's cookies.
page() {
	local method=$1 path=$2
	shift 2
	req "$method" "$path" -b "$JAR" -c "$JAR" "$@"
}
# form PATH BODY [CURL ARGS...]: a urlencoded form POSTed with the shopper's cookies.
form() {
	local path=$1 body=$2
	shift 2
	page POST "$path" --data-raw "$body" "$@"
}
cookie() { awk -v n="$1" '$6 == n { v = $7 } END { print v }' "$JAR"; }
body_text() { sed -e 's/<[^>]*>/ /g' "$TMP/resp.body"; }

ID0=$(product_field 0 1)
NAME0=$(product_field 0 2)
ID1=$(product_field 1 1)
NAME1=$(product_field 1 2)

CARD='credit_card_number=4111+1111+1111+1111&credit_card_expiration_month=12&credit_card_expiration_year=2099&credit_card_cvv=123'
ADDRESS='street_address=12+Harbour+Road&zip_code=94043&city=Port+Elliot&state=CA&country=United+States'

# --------------------------------------------------------------------- one node

start_cluster one_node_yaml 1
wait_for 30 route_ok /_healthz "" || fail "/_healthz did not answer 200"
pass "the frontend answers /_healthz"

# --- the home page, in the default currency (USD)
page GET /
assert_status 200 "GET /"
assert_contains "$(resp_header content-type)" "text/html" "home page content-type"
set_cookie=$(grep -i '^set-cookie: shop_session-id=' "$TMP/resp.headers")
assert_contains "$set_cookie" "HttpOnly" "a new session gets an HttpOnly shop_session-id cookie"
SESSION=$(cookie shop_session-id)
[[ "$SESSION" =~ ^[0-9a-f-]{36}$ ]] || fail "session id '$SESSION' is not a random UUID"
pass "session id $SESSION"
for ((i = 0; i < 9; i++)); do
	name=$(product_field $i 2)
	usd=$(price "$(product_field $i 3)" "$(product_field $i 4)" '$' "$RATE_USD")
	assert_contains "$(body_text)" "$name" "home page lists $name"
	assert_contains "$(cat "$TMP/resp.body")" "$usd" "home page: $name costs $usd"
done
page GET /
assert_eq "" "$(grep -i '^set-cookie:' "$TMP/resp.headers")" "a known session gets no new cookie"

# --- set the currency: EUR, then back where the shopper came from
form /setCurrency "currency_code=EUR" -H "Referer: http://127.0.0.1:$HTTP_PORT/product/$ID0"
assert_status 302 "POST /setCurrency EUR"
assert_eq "/product/$ID0" "$(resp_header location)" "setCurrency goes back to the referring page"
assert_eq EUR "$(cookie shop_currency)" "setCurrency sets the shop_currency cookie"
form /setCurrency "currency_code=EUR" -H "Referer: https://evil.example/phish"
assert_eq "/" "$(resp_header location)" "setCurrency never sends the shopper to another site"

page GET /
assert_status 200 "GET / in EUR"
for ((i = 0; i < 9; i++)); do
	eur=$(price "$(product_field $i 3)" "$(product_field $i 4)" '€' "$RATE_EUR")
	assert_contains "$(cat "$TMP/resp.body")" "$eur" "home page in EUR: $(product_field $i 2) costs $eur"
done
assert_contains "$(cat "$TMP/resp.body")" '<option value="EUR" selected>' "the picker shows EUR chosen"
assert_eq 0 "$(grep -c '<span class="price">\$' "$TMP/resp.body")" "no price left in USD"

# --- a product page
page GET "/product/$ID0"
assert_status 200 "GET /product/$ID0"
eur0=$(price "$(product_field 0 3)" "$(product_field 0 4)" '€' "$RATE_EUR")
assert_contains "$(body_text)" "$NAME0" "product page shows the name"
assert_contains "$(cat "$TMP/resp.body")" "<p class=\"price\">$eur0</p>" "product page shows the price in EUR"
assert_contains "$(body_text)" "$(jq -r ".products[0].description" "$BOUTIQUE/data/products.json")" \
	"product page shows the description"
assert_contains "$(cat "$TMP/resp.body")" "name=\"product_id\" value=\"$ID0\"" "the add-to-cart form names the product"
assert_contains "$(body_text)" "You may also like" "product page has recommendations"
assert_not_contains "$(grep -o 'You may also like.*' "$TMP/resp.body" | sed 's|</section>.*||')" "/product/$ID0\"" \
	"a product does not recommend itself"

# --- add to cart, view the cart
form /cart "product_id=$ID0&quantity=2"
assert_status 302 "POST /cart $ID0 x2"
assert_eq /cart "$(resp_header location)" "add to cart goes to the cart"
form /cart "product_id=$ID1&quantity=1"
assert_status 302 "POST /cart $ID1 x1"
form /cart "quantity=1&product_id=$ID0"
assert_status 302 "POST /cart $ID0 x1 more (fields in any order)"
page GET /cart
assert_status 200 "GET /cart"
assert_contains "$(body_text)" "$NAME0" "the cart holds $NAME0"
assert_contains "$(body_text)" "$NAME1" "the cart holds $NAME1"
assert_contains "$(cat "$TMP/resp.body")" "data-product-id=\"$ID0\"" "the cart's item row of $ID0"
assert_contains "$(body_text)" "Quantity: 3" "$ID0's quantities add up (2 + 1)"
assert_contains "$(body_text)" "Quantity: 1" "$ID1 once"
assert_contains "$(cat "$TMP/resp.body")" '<span class="cart-count">4</span>' "the cart counts 4 items"
assert_contains "$(body_text)" "Shipping" "the cart shows shipping"
assert_contains "$(cat "$TMP/resp.body")" '<p class="total">Total <span class="price">€' "the total is in EUR"
assert_contains "$(cat "$TMP/resp.body")" 'action="/cart/checkout"' "the cart has the checkout form"
page GET /
assert_contains "$(cat "$TMP/resp.body")" '<span class="cart-size">4</span>' "the header shows the cart's size"

# --- bad input
bad() { # bad STATUS WHAT METHOD PATH [CURL ARGS...]
	local status=$1 what=$2
	shift 2
	page "$@"
	assert_status "$status" "$what"
}
bad 404 "unknown product page" GET /product/NOSUCHPRODUCT
assert_contains "$(body_text)" "There is no such product" "the 404 page says why"
bad 404 "unknown page" GET /no/such/page
bad 404 "a product page without an id" GET /product/
bad 400 "quantity 0" POST /cart --data-raw "product_id=$ID0&quantity=0"
bad 400 "quantity 11" POST /cart --data-raw "product_id=$ID0&quantity=11"
bad 400 "quantity not a number" POST /cart --data-raw "product_id=$ID0&quantity=two"
bad 400 "quantity missing" POST /cart --data-raw "product_id=$ID0"
bad 400 "product missing" POST /cart --data-raw "quantity=1"
bad 404 "add an unknown product" POST /cart --data-raw "product_id=NOSUCHPRODUCT&quantity=1"
bad 400 "a malformed form (bad percent escape)" POST /cart --data-raw "product_id=$ID0&quantity=1&x=%G0"
bad 400 "a form that is not urlencoded" POST /cart -F "product_id=$ID0" -F quantity=1
bad 400 "an unknown currency" POST /setCurrency --data-raw "currency_code=XYZ"
bad 400 "a currency in lower case" POST /setCurrency --data-raw "currency_code=eur"
bad 400 "no currency" POST /setCurrency --data-raw ""
bad 405 "GET /cart/checkout" GET /cart/checkout
bad 405 "POST /" POST / --data-raw ""
bad 400 "checkout without an e-mail" POST /cart/checkout --data-raw "$ADDRESS&$CARD"
bad 400 "checkout with a month 13" POST /cart/checkout \
	--data-raw "email=a%40b.example&$ADDRESS&${CARD/month=12/month=13}"
bad 400 "checkout with a card number that fails Luhn" POST /cart/checkout \
	--data-raw "email=a%40b.example&$ADDRESS&${CARD/4111+1111+1111+1111/4111+1111+1111+1112}"
assert_contains "$(body_text)" "The order was not placed" "a refused card's page says so"
page GET /cart
assert_contains "$(body_text)" "Quantity: 3" "a refused order leaves the cart as it was"

# Every value is escaped: a path, a currency and an e-mail address with markup in them.
page GET '/product/%3Cscript%3Ealert(1)%3C%2Fscript%3E'
assert_status 404 "a product id with markup"
assert_not_contains "$(cat "$TMP/resp.body")" "<script>" "no markup from the path reaches the page"
form /setCurrency 'currency_code=%3Cb%3E'
assert_status 400 "a currency with markup"
assert_not_contains "$(cat "$TMP/resp.body")" "<b>" "no markup from the form reaches the page"
assert_contains "$(cat "$TMP/resp.body")" "&lt;b&gt;" "the bad currency is shown escaped"

# --- checkout: the order's confirmation, then an empty cart
form /cart/checkout "email=%22%3Ci%3Eshopper%3C%2Fi%3E%22%40example.com&$ADDRESS&$CARD"
assert_status 200 "POST /cart/checkout"
assert_contains "$(body_text)" "Your order is complete" "the confirmation page"
order_id=$(grep -o '<dd class="order-id">[^<]*' "$TMP/resp.body" | sed 's/.*>//')
tracking=$(grep -o '<dd class="tracking-id">[^<]*' "$TMP/resp.body" | sed 's/.*>//')
[[ -n "$order_id" && -n "$tracking" ]] || fail "no order id or tracking id on the confirmation page"
pass "order $order_id, tracking $tracking"
assert_contains "$(cat "$TMP/resp.body")" '<dd class="total-paid">€' "the total paid is in EUR"
assert_contains "$(body_text)" "$NAME0" "the confirmation lists $NAME0"
assert_contains "$(cat "$TMP/resp.body")" "&lt;i&gt;shopper&lt;/i&gt;" "the e-mail address is shown escaped"
assert_not_contains "$(cat "$TMP/resp.body")" "<i>shopper" "no markup from the e-mail address"
page GET /cart
assert_contains "$(body_text)" "Your cart is empty" "the cart is empty after the order"
bad 400 "checkout with an empty cart" POST /cart/checkout --data-raw "email=a%40b.example&$ADDRESS&$CARD"
assert_contains "$(body_text)" "The order was not placed" "an empty cart's checkout says why"

# --- empty the cart
form /cart "product_id=$ID1&quantity=5"
form /cart/empty ""
assert_status 302 "POST /cart/empty"
assert_eq / "$(resp_header location)" "emptying the cart goes home"
page GET /cart
assert_contains "$(body_text)" "Your cart is empty" "the cart is empty after /cart/empty"

# --- static files, robots.txt
page GET /static/styles/boutique.css
assert_status 200 "the stylesheet"
assert_contains "$(resp_header content-type)" "text/css" "the stylesheet's content-type"
for pic in $(jq -r '.products[].picture' "$BOUTIQUE/data/products.json"); do
	page GET "$pic"
	assert_status 200 "$pic"
	assert_eq image/svg+xml "$(resp_header content-type)" "$pic content-type"
	cmp -s "$TMP/resp.body" "$BOUTIQUE${pic}" || fail "$pic differs from the file"
done
bad 404 "an unknown static file" GET /static/nope.css
for p in /static/../../../../etc/passwd /static/%2e%2e/%2e%2e/etc/passwd /static/img/..%2f..%2f..%2fetc/passwd \
	"/static/..%5c..%5cetc/passwd"; do
	page GET "$p" --path-as-is
	[[ "$HTTP_STATUS" == 400 || "$HTTP_STATUS" == 404 ]] || fail "GET $p: expected 400 or 404, got $HTTP_STATUS"
	assert_not_contains "$(cat "$TMP/resp.body")" "root:" "GET $p leaves nothing outside the static folder"
done
page GET /robots.txt
assert_status 200 "robots.txt"
assert_contains "$(cat "$TMP/resp.body")" "Disallow: /" "robots.txt disallows crawling"

# --- a cart outlives a kill -9 of the cart function (it lives in Redis)
form /cart "product_id=$ID1&quantity=3"
assert_status 302 "add before the cart function is killed"
cart_pid=$(instance_pid cart)
kill -KILL "$cart_pid"
pass "cart function (pid $cart_pid) killed with SIGKILL"
cart_back() {
	page GET /cart
	[[ "$HTTP_STATUS" == 200 ]] && grep -q 'Quantity: 3' "$TMP/resp.body"
}
wait_for 30 cart_back || fail "the cart did not come back after the kill (last: HTTP $HTTP_STATUS)"
pass "the cart is whole again after the cart function's restart"

# --- Redis down: 503 pages; back: the shop works again
stop_redis
page GET /
assert_status 503 "GET / with Redis down"
assert_contains "$(body_text)" "cart storage is unavailable" "the 503 page says the cart storage is down"
bad 503 "GET /cart with Redis down" GET /cart
bad 503 "POST /cart with Redis down" POST /cart --data-raw "product_id=$ID0&quantity=1"
bad 503 "GET /product with Redis down" GET "/product/$ID0"
page GET /static/styles/boutique.css
assert_status 200 "static files without Redis"
start_redis
home_ok() {
	page GET /
	[[ "$HTTP_STATUS" == 200 ]]
}
wait_for 30 home_ok || fail "GET / did not answer 200 after Redis came back (last: HTTP $HTTP_STATUS)"
pass "the home page answers again once Redis is back"
form /cart "product_id=$ID0&quantity=1"
assert_status 302 "adding to the cart works again"

# --- logout: a new session afterwards
page GET /logout
assert_status 302 "GET /logout"
assert_eq / "$(resp_header location)" "logout goes home"
assert_contains "$(grep -i '^set-cookie: shop_session-id=' "$TMP/resp.headers")" "Max-Age=0" "logout clears the session"
assert_contains "$(grep -i '^set-cookie: shop_currency=' "$TMP/resp.headers")" "Max-Age=0" "logout clears the currency"
# curl drops both cookies but leaves a jar with no cookie left unwritten: do it for it.
rm -f "$JAR"
page GET /
assert_ne "$SESSION" "$(cookie shop_session-id)" "after logout the shopper has a new session"
assert_contains "$(cat "$TMP/resp.body")" "$(price "$(product_field 0 3)" "$(product_field 0 4)" '$' "$RATE_USD")" \
	"after logout the prices are in the default currency again"

fetch_stats
assert_eq 0 "$(stat_sum boutique function_payload_copied_bytes)" "no function runtime copied payload"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status (one node)"

# --------------------------------------------------------------------- two nodes

rm -f "$JAR"
start_cluster two_node_yaml 2
wait_for 30 route_ok /_healthz "" || fail "/_healthz did not answer 200 (two nodes)"
form /setCurrency "currency_code=EUR"
assert_status 302 "two nodes: setCurrency"
page GET /
assert_status 200 "two nodes: GET /"
assert_contains "$(body_text)" "$NAME1" "two nodes: the home page lists $NAME1"
assert_contains "$(cat "$TMP/resp.body")" "$eur0" "two nodes: prices in EUR"
page GET "/product/$ID1"
assert_status 200 "two nodes: a product page"
form /cart "product_id=$ID1&quantity=2"
assert_status 302 "two nodes: add to cart"
page GET /cart
assert_contains "$(body_text)" "Quantity: 2" "two nodes: the cart holds the item"
form /cart/checkout "email=a%40b.example&$ADDRESS&$CARD"
assert_status 200 "two nodes: checkout"
assert_contains "$(body_text)" "Your order is complete" "two nodes: the confirmation page"

handled() {
	awk -v n="$1" '$1 == "node" { node = $2 } $1 == "tenant" && node == n {
		for (i = 3; i <= NF; i++) if ($i ~ /^function_handled=/) { sub(/.*=/, "", $i); print $i } }' "$TMP/stats"
}
fetch_stats
assert_int -ge "$(handled a)" 1 "node a (frontend, checkout, recommendation) handled requests"
assert_int -ge "$(handled b)" 1 "node b (catalog, currency, cart, ...) handled requests"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status (two nodes)"
finish
