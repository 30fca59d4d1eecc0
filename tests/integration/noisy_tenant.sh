#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A noisy tenant hurts only itself. Tenant a's function (tests/functions/misbehave) first
# floods its engine-bound ring with forged descriptors and headers (`garbage`), then also
# writes random words over its own inbound ring and its tenant's engine-bound ring
# (indexes, sleeper count, cells: `scribble N`), in bounded loops; meanwhile tenant b
# runs a bounded load of distinct requests. Every one of b's requests must succeed (200,
# its own body upper-cased: no answer lost, none swapped); a's bad input is counted; the
# engine keeps running. No timing is asserted: only that b completed its whole count
# without a single failure.
source "$(dirname "$0")/lib.sh"
init_test
[[ -x "$MISBEHAVE" ]] || fail "test function $MISBEHAVE is not built"

B_REQUESTS=${B_REQUESTS:-600}
B_PARALLEL=8
NOISE_REQUESTS=400 # at most, in all; the loop stops when b's load is done
NOISE_ROUNDS=3000

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: a, pool: 8MiB, buffer_size: 16KiB, max_inflight: 64 }
  - { name: b, pool: 8MiB, buffer_size: 16KiB, max_inflight: 1024 }
functions:
  - { name: noisy, tenant: a, exec: "$MISBEHAVE", node: a, threads: 1 }
  - { name: upper, tenant: b, exec: upper, node: a }
routes:
  - { path: /noise, tenant: a, chain: [noisy], timeout: 2s }
  - { path: /b, tenant: b, chain: [upper], timeout: 20s }
EOF
}

start_cluster cluster_yaml 1
wait_ready /noise hello
wait_ready /b ready
fetch_stats
engine_pid=$(awk '$1 == "node" && $2 == "a" { print $4 }' "$TMP/stats")
b_pid=$(instance_pid upper)
a_bad() {
	echo $(($(stat_sum a bad_descriptors) + $(stat_sum a bad_headers) + $(stat_sum a function_bad_input)))
}
a_bad_before=$(a_bad)
b_restarts_before=$(stat_sum b restarts)

# --- tenant a: the noise, one bounded request after the other, in the background
# Phase 1 `garbage`, phase 2 (once $TMP/noise.scribble exists) `scribble`.
noise_loop() {
	local i body
	for ((i = 0; i < NOISE_REQUESTS; i++)); do
		[[ -e "$TMP/noise.stop" ]] && break
		body=garbage
		[[ -e "$TMP/noise.scribble" ]] && body="scribble $NOISE_ROUNDS"
		http_curl -sS --max-time $((5 * TIME_SCALE)) -o /dev/null -w "%{http_code} ${body% *}\n" \
			--data-binary "$body" "http://127.0.0.1:$HTTP_PORT/noise" \
			>>"$TMP/noise.out" 2>>"$TMP/noise.err"
		sleep 0.02
	done
}
# engine_cpu_ticks: user + system clock ticks the engine has used so far.
engine_cpu_ticks() {
	local f
	f=$(proc_fields "$engine_pid") || return 1
	# shellcheck disable=SC2086
	set -- $f
	echo $((${12} + ${13}))
}
: >"$TMP/noise.out"
bg noise_pid noise_loop
a_noisy() { fetch_stats && (($(a_bad) > a_bad_before)); }
wait_for 30 a_noisy || fail "tenant a's garbage was never counted: $(grep '^tenant a ' "$TMP/stats")"
pass "tenant a's noise has started (bad input counted: $(a_bad))"

# --- tenant b: a bounded load of distinct requests, B_PARALLEL at a time: the first half
# while a floods garbage, the second once a has scribbled over its rings.
mkdir -p "$TMP/b"
: >"$TMP/b.sent"
# b_load FROM TO: requests FROM..TO; statuses appended to $TMP/b.out.
b_load() {
	local from=$1 to=$2 i body
	: >"$TMP/b.curl"
	for ((i = from; i <= to; i++)); do
		body="b-$i-$RANDOM"
		echo "$body" >>"$TMP/b.sent"
		{
			echo "url = \"http://127.0.0.1:$HTTP_PORT/b\""
			echo "data-binary = \"$body\""
			echo "output = \"$TMP/b/$i\""
			echo "write-out = \"%{http_code} $i\\n\""
			echo "max-time = $((30 * TIME_SCALE))"
			echo 'header = "Expect:"'
			((i < to)) && echo next
		} >>"$TMP/b.curl"
	done
	local cpu0 cpu1 t0 t1
	cpu0=$(engine_cpu_ticks)
	t0=$(now_ms)
	http_curl -sS -Z --parallel-max "$B_PARALLEL" -K "$TMP/b.curl" >>"$TMP/b.out" 2>>"$TMP/b.err"
	t1=$(now_ms)
	cpu1=$(engine_cpu_ticks)
	# Reported, not asserted (see docs/security.md on CPU).
	log "tenant b: requests $from..$to done in $((t1 - t0)) ms; the engine used $(((cpu1 - cpu0) * 1000 / $(getconf CLK_TCK))) ms of CPU meanwhile"
}
: >"$TMP/b.out"
half=$((B_REQUESTS / 2))
log "tenant b: $B_REQUESTS requests, $B_PARALLEL at a time; first half while tenant a floods garbage"
b_load 1 "$half"
touch "$TMP/noise.scribble"
scribbled() { grep -q scribble "$TMP/noise.out"; }
wait_for 30 scribbled || fail "tenant a's function never finished a scribble request"
log "tenant a has scribbled over its rings; $(awk '$2 == "garbage"' "$TMP/noise.out" | wc -l) garbage requests before"
log "tenant b: second half while tenant a's rings are wrecked (and its noise goes on)"
b_load $((half + 1)) "$B_REQUESTS"
log "tenant a's noise so far: $(sort "$TMP/noise.out" | uniq -c | awk '{ printf "%s x %s %s; ", $1, $2, $3 }')"

# Every request answered 200 with its own body, upper-cased.
assert_int -eq "$(wc -l <"$TMP/b.out")" "$B_REQUESTS" "tenant b: every request completed (curl reported each)"
failures=$(awk '$1 != 200' "$TMP/b.out" | wc -l)
if ((failures > 0)); then
	fail "tenant b: $failures request(s) failed: $(awk '$1 != 200 { print $1 }' "$TMP/b.out" | sort | uniq -c | tr '\n' ' '); curl: $(head -c 300 "$TMP/b.err")"
fi
pass "tenant b: all $B_REQUESTS requests answered 200"
wrong=0
i=0
while read -r body; do
	i=$((i + 1))
	expected=$(tr '[:lower:]' '[:upper:]' <<<"$body")
	got=$(cat "$TMP/b/$i" 2>/dev/null)
	if [[ "$got" != "$expected" ]]; then
		((wrong < 5)) && log "tenant b request $i: sent '$body', expected '$expected', got '$got'"
		wrong=$((wrong + 1))
	fi
done <"$TMP/b.sent"
assert_int -eq "$i" "$B_REQUESTS" "tenant b: bodies checked"
assert_int -eq "$wrong" 0 "tenant b: every body is its own request's, upper-cased"

# --- the noise ends (bounded), then the accounting
touch "$TMP/noise.stop"
bg_wait "$noise_pid"
log "tenant a's noise requests: $(sort "$TMP/noise.out" | uniq -c | awk '{ printf "%s x %s %s; ", $1, $2, $3 }')(its own to lose)"
fetch_stats
assert_int -gt "$(a_bad)" "$a_bad_before" "tenant a's bad input is counted (bad_descriptors=$(stat_sum a bad_descriptors) bad_headers=$(stat_sum a bad_headers) function_bad_input=$(stat_sum a function_bad_input))"
assert_eq 0 "$(stat_sum b bad_descriptors)" "tenant b: no bad descriptor"
assert_eq 0 "$(stat_sum b bad_headers)" "tenant b: no bad header"
assert_eq "$b_restarts_before" "$(stat_sum b restarts)" "tenant b's function never restarted"
assert_eq "$b_pid" "$(instance_pid upper)" "tenant b's function is the same process"
assert_eq "$engine_pid" "$(awk '$1 == "node" && $2 == "a" { print $4 }' "$TMP/stats")" "the engine kept running (same pid)"
for i in 1 2 3; do
	post /b "after-$i"
	assert_status 200 "tenant b after the noise #$i"
	assert_eq "AFTER-$i" "$(resp_body)" "tenant b's answer after the noise #$i"
done

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
