-- SPDX-License-Identifier: Apache-2.0
-- bench/boutique's wrk script: the Online Boutique load generator's user actions
-- (src/loadgenerator/locustfile.py of GoogleCloudPlatform/microservices-demo), one
-- session per wrk thread. bench/boutique/run gives wrk as many threads as connections
-- (-tC -cC), so each connection has a Lua state of its own and keeps its own session
-- cookie, as each locust user does.
--
--   [BOUTIQUE_RATE=R] wrk -tC -cC ... -s boutique.lua URL -- MODE
--
-- MODE: mix (the locustfile's task weights: index 1, setCurrency 2, browseProduct 10,
-- addToCart 2, viewCart 3, checkout 1; addToCart is a product page then the add,
-- checkout is an addToCart then the checkout, as in the locustfile), or one action
-- alone: index, setCurrency, browseProduct, addToCart (the POST only), viewCart (the
-- cart after two adds), checkout (add then check out, in turn: a checkout needs a
-- cart). Every session starts with the home page (the locustfile's on_start), which
-- gives it its cookie.
-- BOUTIQUE_RATE in the environment (requests/s per connection, optional): send on a
-- fixed schedule (one request every 1/RATE s, late ones at once) instead of as fast as
-- answers come: the fixed-rate runs. wrk's latency is from a request's send to its answer.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } pd_timespec;
int clock_gettime(int clk, pd_timespec *ts);
]])
local ts = ffi.new("pd_timespec")
local function now_ms()
	ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
	return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local products = { "0PUK6V6EV0", "1YMWWN1N4O", "2ZYFJ3GM2N", "66VCHSJNUP", "6E92ZMYYFZ",
	"9SIQT8TOJO", "L9ECAV7KIM", "LS4PSXUNUM", "OLJCESPC7Z" }
local currencies = { "EUR", "USD", "JPY", "CAD", "GBP", "TRY" }
local weights = { { "index", 1 }, { "setCurrency", 2 }, { "browseProduct", 10 },
	{ "addToCart", 2 }, { "viewCart", 3 }, { "checkout", 1 } }
local total_weight = 0
for _, w in ipairs(weights) do
	total_weight = total_weight + w[2]
end

local threads_made = 0
function setup(thread)
	threads_made = threads_made + 1
	thread:set("thread_id", threads_made)
end

local mode, next_at
local interval = nil
local rate = tonumber(os.getenv("BOUTIQUE_RATE") or "0") or 0
if rate > 0 then
	interval = 1000 / rate
end
local cookies = {}
local queue = {}
local head, tail = 1, 0

function init(args)
	mode = args[1] or "mix"
	math.randomseed((thread_id or 1) * 7919 + os.time())
	if interval ~= nil then
		-- connections start spread over one interval, not all at once
		next_at = now_ms() + math.random() * interval
	end
	-- the locustfile's on_start
	push("GET", "/", nil)
	if mode == "viewCart" then
		add_to_cart(false)
		add_to_cart(false)
	end
end

function push(method, path, body)
	tail = tail + 1
	queue[tail] = { method, path, body }
end

local function pick(list)
	return list[math.random(#list)]
end

local function form(t)
	local parts = {}
	for _, kv in ipairs(t) do
		parts[#parts + 1] = kv[1] .. "=" .. kv[2]:gsub("[^%w%-%._~]", function(c)
			return string.format("%%%02X", string.byte(c))
		end)
	end
	return table.concat(parts, "&")
end

function add_to_cart(with_page)
	local p = pick(products)
	if with_page then
		push("GET", "/product/" .. p, nil)
	end
	push("POST", "/cart", form({ { "product_id", p }, { "quantity", tostring(math.random(1, 10)) } }))
end

local streets = { "1600 Amphitheatre Parkway", "221 Baker Street", "12 Rue de Rivoli" }
local cities = { "Mountain View", "Springfield", "Lyon" }
local function checkout()
	local year = tonumber(os.date("%Y")) + 1
	push("POST", "/cart/checkout", form({
		{ "email", "user" .. math.random(1, 100000) .. "@example.com" },
		{ "street_address", pick(streets) },
		{ "zip_code", tostring(math.random(10000, 99999)) },
		{ "city", pick(cities) },
		{ "state", "CA" },
		{ "country", "United States" },
		-- a Visa test number that passes the Luhn check (the original's default card)
		{ "credit_card_number", "4432-8015-6152-0454" },
		{ "credit_card_expiration_month", tostring(math.random(1, 12)) },
		{ "credit_card_expiration_year", tostring(math.random(year, year + 70)) },
		{ "credit_card_cvv", tostring(math.random(100, 999)) },
	}))
end

local function task(name)
	if name == "index" then
		push("GET", "/", nil)
	elseif name == "setCurrency" then
		push("POST", "/setCurrency", form({ { "currency_code", pick(currencies) } }))
	elseif name == "browseProduct" then
		push("GET", "/product/" .. pick(products), nil)
	elseif name == "addToCart" then
		add_to_cart(mode == "mix")
	elseif name == "viewCart" then
		push("GET", "/cart", nil)
	elseif name == "checkout" then
		add_to_cart(mode == "mix")
		checkout()
	end
end

local function refill()
	if mode ~= "mix" then
		task(mode)
		return
	end
	local r = math.random() * total_weight
	for _, w in ipairs(weights) do
		r = r - w[2]
		if r < 0 then
			task(w[1])
			return
		end
	end
	task("browseProduct")
end

local form_type = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
	if head > tail then
		queue, head, tail = {}, 1, 0
		refill()
	end
	local q = queue[head]
	queue[head] = nil
	head = head + 1
	local headers = {}
	local c = {}
	for k, v in pairs(cookies) do
		c[#c + 1] = k .. "=" .. v
	end
	if #c > 0 then
		headers["Cookie"] = table.concat(c, "; ")
	end
	if q[3] ~= nil then
		headers["Content-Type"] = form_type["Content-Type"]
	end
	return wrk.format(q[1], q[2], headers, q[3])
end

-- Keep what the shop sets (wrk keeps one value per header name: the shop sets one
-- cookie per answer here: the session on the first page, the currency on setCurrency).
function response(status, headers, body)
	local sc = headers["set-cookie"] or headers["Set-Cookie"]
	if sc ~= nil then
		local name, value = sc:match("^%s*([^=;%s]+)=([^;]*)")
		if name ~= nil then
			if value == "" or sc:find("[Mm]ax%-[Aa]ge=0") then
				cookies[name] = nil
			else
				cookies[name] = value
			end
		end
	end
end

-- Defined only for the fixed-rate runs: wrk looks for it once, at load, and with it
-- waits on a timer before every request, even of 0 ms, which the peak runs must not pay.
if interval ~= nil then
	function delay()
		local d = next_at - now_ms()
		next_at = next_at + interval
		if d < 0 then
			return 0
		end
		return d
	end
end
