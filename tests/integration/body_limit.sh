#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bodies around the documented limit (quickstart: 16 KiB buffers, max_body 16128 bytes)
# never get a 500. Every body from 16000 to 16200 bytes goes to /echo (and /shout) with
# curl's default headers, then with a few extra headers, then with one big header: the
# answer is 200 with the body, or the platform's 413 (body over max_body) or 431 (body
# and headers over the buffer), or on /shout the function's own 413; never anything
# else. A body the docs say fits (<= 16128 bytes with curl's headers) gets its 200.
source "$(dirname "$0")/lib.sh"
init_test

MAX_BODY=16128 # docs/config.md: buffer_size - 256
FIRST=16000
LAST=16200

start_cluster quickstart_yaml
wait_ready /echo ready

base=$TMP/base
head -c $((LAST * 3 / 4 + 3)) /dev/urandom | base64 -w0 | head -c $LAST >"$base"
assert_eq $LAST "$(stat -c %s "$base")" "body file"
for ((n = FIRST; n <= LAST; n++)); do
	head -c $n "$base" >"$TMP/b$n"
done

big_value=$(head -c 400 /dev/zero | tr '\0' 'v')

# sweep PATH NAME [CURL HEADER ARGS...]: one curl process, one transfer per size, each
# with curl's own default headers (-d adds content-type: application/x-www-form-urlencoded)
# plus the given ones. Writes "size code bytes" lines to $TMP/NAME.
sweep() {
	local path=$1 name=$2
	shift 2
	local -a args=()
	for ((n = FIRST; n <= LAST; n++)); do
		((n > FIRST)) && args+=(--next)
		args+=(-sS --max-time "$CURL_MAX_TIME" -o /dev/null -w "$n %{http_code} %{size_download}\n"
			--data-binary "@$TMP/b$n" -H 'content-type: application/x-www-form-urlencoded'
			"$@" "http://127.0.0.1:$HTTP_PORT$path")
	done
	http_curl "${args[@]}" >"$TMP/$name" 2>"$TMP/$name.err"
	assert_eq $((LAST - FIRST + 1)) "$(wc -l <"$TMP/$name")" "$name: one answer per body size"
}

# check NAME ADDED ALLOWED...: every answer's status is one of ALLOWED, and every 200
# carries the whole body plus ADDED bytes (exclaim adds its "!").
check() {
	local name=$1 added=$2
	shift 2
	local allowed=" $* " bad
	bad=$(awk -v allowed="$allowed" -v added="$added" '
		index(allowed, " " $2 " ") == 0 { print "body " $1 ": HTTP " $2; next }
		$2 == 200 && $3 != $1 + added { print "body " $1 ": 200 with " $3 " bytes" }' "$TMP/$name" | head -5)
	assert_eq "" "$bad" "$name: only HTTP ${*} (and every 200 carries the whole body)"
}

# count NAME CODE: answers with that status
count() { awk -v c="$2" '$2 == c' "$TMP/$1" | wc -l; }

# /echo with curl's headers: everything up to max_body is answered 200, the rest 413.
sweep /echo echo-default
check echo-default 0 200 413
assert_eq $((MAX_BODY - FIRST + 1)) "$(count echo-default 200)" "echo-default: every body <= $MAX_BODY answered 200"
assert_eq $((LAST - MAX_BODY)) "$(count echo-default 413)" "echo-default: every body > $MAX_BODY answered 413"

# A few extra headers: still no 500; 431 once body and headers exceed the buffer.
extra=(-H 'x-request-id: 4bf92f3577b34da6a3ce929d0e0e4736'
	-H 'x-forwarded-for: 192.0.2.1, 198.51.100.2'
	-H 'accept-language: en-GB,en;q=0.9,fr;q=0.8')
sweep /echo echo-extra "${extra[@]}"
check echo-extra 0 200 413 431
assert_int -gt "$(count echo-extra 200)" 0 "echo-extra: bodies that fit answered 200"

# One big header: more bodies get 431, none 500.
sweep /echo echo-big -H "x-big: $big_value"
check echo-big 0 200 413 431
assert_int -gt "$(count echo-big 431)" 0 "echo-big: body + headers over the buffer answered 431"

# A two-hop chain (upper -> exclaim): the request's metadata travels on with the body, so
# the last function may have to refuse (413) what the ingress took; still no 500.
sweep /shout shout-default
check shout-default 1 200 413
sweep /shout shout-extra "${extra[@]}"
check shout-extra 1 200 413 431

fetch_stats
assert_eq 0 "$(stat_sum demo function_bad_input)" "no function refused a message"

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
exit 0
