#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Online Boutique in a real browser: headless Chromium (examples/boutique.yaml on
# random ports, a Redis of the test's own) loads the home page, sets the currency and
# adds an item to the cart by submitting the shop's own forms, then loads a product page
# and the cart, and places the order. The DOM it rendered (--dump-dom) is checked: the
# product names, the prices in USD and then in EUR, the cart's item and total, the
# order's confirmation. Screenshots of each page go to $BOUTIQUE_SCREENSHOTS (default
# build/boutique-screenshots). The browser keeps its cookies in a profile of the test's
# own, as a shopper's browser would between pages. Skipped (77) only without Chromium.
source "$(dirname "$0")/lib.sh"
init_test
need_cmd jq redis-server redis-cli timeout

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$CHROMIUM" ]] || skip "needs chromium (scripts/install-deps installs it)"
SHOTS=${BOUTIQUE_SCREENSHOTS:-$(dirname "$PALLADIUM")/boutique-screenshots}/$PRIMITIVE
mkdir -p "$SHOTS" || fail "cannot make $SHOTS"

source "$(dirname "$0")/boutique_lib.sh"

# ------------------------------------------------------------------- the browser

PROFILE=$TMP/chromium-profile
CHROME_FLAGS=(--headless --disable-gpu --no-first-run --no-default-browser-check
	--disable-extensions --disable-background-networking --disable-sync
	--disable-component-update --hide-scrollbars --window-size=1280,1100
	--user-data-dir="$PROFILE")
# Chromium's sandbox refuses to run as root; anyone else keeps it.
[[ $(id -u) == 0 ]] && CHROME_FLAGS+=(--no-sandbox)
CHROME_SECS=$((60 * TIME_SCALE))

# chromium OUT ARGS...: run Chromium (stdout to OUT) in a process group of its own, for at
# most CHROME_SECS; whatever of that group outlives it is killed (only that group).
chromium() {
	local out=$1 pid rc
	shift
	setsid timeout -k 5 "$CHROME_SECS" "$CHROMIUM" "${CHROME_FLAGS[@]}" "$@" \
		>"$out" 2>>"$TMP/chromium.log" </dev/null &
	pid=$!
	BG_PIDS+=("$pid")
	wait_for 10 leads_group_or_exited "$pid" || fail "chromium (pid $pid) did not lead its own group"
	bg_wait "$pid"
	rc=$?
	kill -KILL -- "-$pid" 2>/dev/null
	return $rc
}

# dom URL NAME [FLAGS...]: the DOM Chromium renders for URL, into $TMP/NAME.html.
dom() {
	local url=$1 name=$2
	shift 2
	chromium "$TMP/$name.html" "$@" --dump-dom "$url" ||
		fail "chromium --dump-dom $url: exit status $? ($(tail -n 5 "$TMP/chromium.log"))"
	[[ -s "$TMP/$name.html" ]] || fail "chromium --dump-dom $url: no DOM"
}

# shot URL NAME: a screenshot of URL as $SHOTS/NAME.png (a PNG is checked for).
shot() {
	local url=$1 png=$SHOTS/$2.png
	rm -f "$png"
	chromium /dev/null --screenshot="$png" "$url" ||
		fail "chromium --screenshot $url: exit status $? ($(tail -n 5 "$TMP/chromium.log"))"
	[[ "$(head -c 8 "$png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] ||
		fail "$png is not a PNG"
	assert_int -gt "$(stat -c %s "$png")" 10000 "screenshot $2.png of $url saved"
}

# form NAME ACTION FIELD=VALUE...: a page that submits a form to the shop as soon as it
# loads, as a shopper pressing the form's button would. It is served by the shop itself
# (from the test's copy of the static folder, read when the frontend starts), so that the
# browser sends its cookies with the POST as it does for the shop's own forms
# (SameSite=Lax: none for a POST from another site).
STATIC=$TMP/static
cp -r "$BOUTIQUE/static" "$STATIC" || fail "copying the static folder"
mkdir -p "$STATIC/test"
# Functions run as their tenant's own user when the test runs as root: it must reach the
# copy (search only on $TMP, read on the copy).
chmod a+x "$TMP" && chmod -R a+rX "$STATIC" || fail "making the static copy readable"
form() {
	local name=$1 action=$2 kv
	shift 2
	{
		# No Referer: /setCurrency would send the browser back here, to submit again.
		echo '<!DOCTYPE html><html><head><meta name="referrer" content="no-referrer"></head>'
		echo "<body><form method=\"POST\" action=\"$action\">"
		for kv in "$@"; do
			echo "<input type=\"hidden\" name=\"${kv%%=*}\" value=\"${kv#*=}\">"
		done
		echo '</form><script>document.forms[0].submit()</script></body></html>'
	} >"$STATIC/test/$name.html"
}
# submit NAME: load the form page NAME; the DOM of the page the browser ends on (after
# the shop's redirect) goes to $TMP/NAME.html.
submit() {
	# Virtual time lets the navigation the script starts finish before the DOM is taken.
	dom "$BASE/static/test/$1.html" "$1" --virtual-time-budget=10000
}
form currency /setCurrency currency_code=EUR
ID=$(product_field 2 1)
NAME=$(product_field 2 2)
form added /cart "product_id=$ID" quantity=2
form order /cart/checkout email=shopper@example.com "street_address=12 Harbour Road" \
	zip_code=94043 "city=Port Elliot" state=CA "country=United States" \
	credit_card_number=4111111111111111 credit_card_expiration_month=12 \
	credit_card_expiration_year=2099 credit_card_cvv=123

# A smoke run: Chromium starts here at all (else there is nothing this test can check).
"$CHROMIUM" --version >"$TMP/version.out" 2>&1 || skip "chromium does not run here: $(head -c 300 "$TMP/version.out")"
log "$(cat "$TMP/version.out")"

# ------------------------------------------------------------------------ shopping

start_redis
# The example cluster, with the test's copy of the static folder.
browser_yaml() { one_node_yaml | sed "s|$BOUTIQUE/static|$STATIC|"; }
start_cluster browser_yaml 1
wait_for 30 route_ok /_healthz "" || fail "/_healthz did not answer 200"
BASE=http://127.0.0.1:$HTTP_PORT
text() { sed -e 's/<[^>]*>/ /g' "$TMP/$1.html"; }

# --- the home page in USD
dom "$BASE/" home
for ((i = 0; i < 9; i++)); do
	assert_contains "$(text home)" "$(product_field $i 2)" "browser: the home page shows $(product_field $i 2)"
	usd=$(price "$(product_field $i 3)" "$(product_field $i 4)" '$' "$RATE_USD")
	assert_contains "$(cat "$TMP/home.html")" "<span class=\"price\">$usd</span>" \
		"browser: $(product_field $i 2) costs $usd"
done
shot "$BASE/" home

# --- the currency picker's form: EUR; the browser comes back to the home page
submit currency
assert_contains "$(cat "$TMP/currency.html")" "Hot products" "browser: setCurrency leads back to the shop"
for ((i = 0; i < 9; i++)); do
	eur=$(price "$(product_field $i 3)" "$(product_field $i 4)" '€' "$RATE_EUR")
	assert_contains "$(cat "$TMP/currency.html")" "<span class=\"price\">$eur</span>" \
		"browser: in EUR $(product_field $i 2) costs $eur"
done
assert_contains "$(cat "$TMP/currency.html")" '<option value="EUR" selected' "browser: the picker shows EUR"
shot "$BASE/" home-eur

# --- a product page
EUR=$(price "$(product_field 2 3)" "$(product_field 2 4)" '€' "$RATE_EUR")
dom "$BASE/product/$ID" product
assert_contains "$(text product)" "$NAME" "browser: the product page shows $NAME"
assert_contains "$(cat "$TMP/product.html")" "<p class=\"price\">$EUR</p>" "browser: the product page's price $EUR"
assert_contains "$(text product)" "Add to cart" "browser: the product page has the add-to-cart button"
assert_contains "$(text product)" "You may also like" "browser: the product page has recommendations"
shot "$BASE/product/$ID" product

# --- add to cart with the product page's form: the browser ends on the cart
submit added
assert_contains "$(cat "$TMP/added.html")" "data-product-id=\"$ID\"" "browser: the cart shows the item added"
assert_contains "$(text added)" "Quantity: 2" "browser: with its quantity"
dom "$BASE/cart" cart
assert_contains "$(text cart)" "$NAME" "browser: the cart page, loaded again, holds $NAME"
assert_contains "$(cat "$TMP/cart.html")" '<span class="cart-count">2</span>' "browser: the cart counts 2 items"
assert_contains "$(cat "$TMP/cart.html")" '<p class="total">Total <span class="price">€' "browser: the cart's total in EUR"
shot "$BASE/cart" cart

# --- checkout with the cart's form: the confirmation
submit order
assert_contains "$(text order)" "Your order is complete" "browser: the order's confirmation"
assert_contains "$(text order)" "$NAME" "browser: the confirmation lists $NAME"
assert_contains "$(cat "$TMP/order.html")" '<dd class="total-paid">€' "browser: the total paid in EUR"
dom "$BASE/cart" cart-after
assert_contains "$(text cart-after)" "Your cart is empty" "browser: the cart is empty after the order"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
log "screenshots in $SHOTS"
finish
