#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `palladium up` restarts a crashed component instead of stopping the cluster: after a
# kill -9 of the ingress, then of the engine, each comes back as a new process (same
# cluster key and ports), the restart is logged with the signal and the restart count,
# the engine's functions are started again and /echo and /shout answer again. SIGINT
# then stops `up` with exit status 0. A component that cannot start at all (its ports
# are taken) still makes `up` exit 1.
# bg is lib.sh's (it sets the pid variable); the helpers below are called by wait_for.
# shellcheck disable=SC2317,SC2217,SC2154
source "$(dirname "$0")/lib.sh"
init_test
need_cmd pgrep

# up_child KIND: pid of the child of `palladium up` running `palladium KIND ...`
# (KIND: ingress or engine; the quickstart has one engine); empty if there is none.
up_child() {
	local p cmd
	for p in $(pgrep -P "$UP_PID"); do
		cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
		[[ "$cmd" == "palladium $1 "* ]] && { echo "$p"; return 0; }
	done
	return 0
}

# replaced KIND OLD_PID: a new `palladium KIND` runs under up (not OLD_PID), or up is gone.
replaced() {
	local p
	up_exited && return 0
	p=$(up_child "$1")
	[[ -n "$p" && "$p" != "$2" ]]
}

# echo_ok BODY: POST /echo answers 200 with BODY.
echo_ok() {
	post /echo "$1"
	[[ "$HTTP_STATUS" == 200 && "$(resp_body)" == "$1" ]]
}

start_cluster quickstart_yaml 1
wait_ready /echo
echo_ok before || fail "/echo before any crash: HTTP $HTTP_STATUS '$(resp_body)'"
pass "/echo answers before any crash"

# --- the ingress
ingress=$(up_child ingress)
[[ -n "$ingress" ]] || fail "no ingress among the children of palladium up (pid $UP_PID)"
kill -KILL "$ingress" || fail "kill -9 $ingress (ingress)"
log "killed the ingress (pid $ingress) with SIGKILL"
wait_for 30 replaced ingress "$ingress" ||
	fail "no new ingress under palladium up within $((30 * TIME_SCALE)) s"
up_exited && fail "palladium up exited after the ingress died: $(grep 'palladium up' "$UP_LOG")"
new_ingress=$(up_child ingress)
pass "ingress restarted: pid $ingress -> $new_ingress"
wait_for 30 echo_ok after-ingress ||
	fail "/echo does not answer after the ingress restart: HTTP $HTTP_STATUS '$(resp_body)'"
pass "/echo answers through the new ingress"
assert_contains "$(cat "$UP_LOG")" "ingress (pid $ingress) was killed by signal 9; restart 1 in" \
	"up logs the ingress's crash with its signal and restart count"
assert_eq "$new_ingress" "$(up_child ingress)" "the new ingress still runs"

# --- the engine (and the functions it runs)
record_pids
engine=$(up_child engine)
[[ -n "$engine" ]] || fail "no engine among the children of palladium up (pid $UP_PID)"
echo_fn=$(instance_pid echo)
kill -KILL "$engine" || fail "kill -9 $engine (engine)"
log "killed the engine (pid $engine, echo function pid $echo_fn) with SIGKILL"
wait_for 30 replaced engine "$engine" ||
	fail "no new engine under palladium up within $((30 * TIME_SCALE)) s"
up_exited && fail "palladium up exited after the engine died: $(grep 'palladium up' "$UP_LOG")"
new_engine=$(up_child engine)
pass "engine restarted: pid $engine -> $new_engine"
wait_for 30 echo_ok after-engine ||
	fail "/echo does not answer after the engine restart: HTTP $HTTP_STATUS '$(resp_body)'"
pass "/echo answers through the new engine"
post /shout again
assert_status 200 "/shout (two functions) after the engine restart"
assert_eq 'AGAIN!' "$(resp_body)" "/shout: again -> AGAIN!"
new_echo_fn=$(instance_pid echo)
assert_ne "$echo_fn" "$new_echo_fn" "the echo function is a new process"
pid_alive "$echo_fn" && fail "the old echo function (pid $echo_fn) outlived its engine"
pass "the old echo function (pid $echo_fn) is gone"
assert_contains "$(cat "$UP_LOG")" "engine of node a (pid $engine) was killed by signal 9; restart 1 in" \
	"up logs the engine's crash with its signal and restart count"
assert_eq "$new_ingress" "$(up_child ingress)" "the ingress was not restarted for the engine's crash"
assert_not_contains "$(cat "$UP_LOG")" "stopping the cluster" "up never stopped the cluster"

# --- SIGINT to up: a clean stop after the restarts
stop_cluster INT
assert_eq 0 "$UP_RC" "palladium up exit status after SIGINT, restarts before"

# --- fork fails at start: up says so and exits 1 instead of announcing a cluster. With
# RLIMIT_NPROC 1 its uid may not have a second process (root ignores that limit: run it
# as nobody, which then needs to read the cluster file).
limited=$TMP/up.nproc.log
run_limited() {
	if [[ $(id -u) == 0 ]]; then
		chmod 711 "$TMP"
		mkdir -p "$TMP/pub" && cp "$CFG" "$TMP/pub/cluster.yaml" && chmod 755 "$TMP/pub" &&
			chmod 644 "$TMP/pub/cluster.yaml" || return 1
		# shellcheck disable=SC2016 # expanded by the inner bash
		exec setpriv --reuid=65534 --regid=65534 --clear-groups \
			bash -c 'ulimit -u 1 && exec "$0" up "$1"' "$PALLADIUM" "$TMP/pub/cluster.yaml"
	fi
	ulimit -u 1 && exec "$PALLADIUM" up "$CFG"
}
[[ $(id -u) != 0 ]] || need_cmd setpriv
bg limited_pid run_limited >"$limited" 2>&1 </dev/null
limited_exited() {
	local f
	f=$(proc_fields "$limited_pid") || return 0
	[[ ${f%% *} == Z ]]
}
wait_for 10 limited_exited ||
	fail "palladium up that cannot fork still runs after $((10 * TIME_SCALE)) s: $(head -c 400 "$limited")"
bg_wait "$limited_pid"
rc=$?
assert_eq 1 "$rc" "palladium up that cannot fork: exit status"
assert_contains "$(cat "$limited")" "fork: Resource temporarily unavailable" "it says fork failed"
assert_not_contains "$(cat "$limited")" "is starting" "it does not announce a cluster"

# --- a component that cannot start at all: a second `up` of the same file finds every
# port taken by a first one; it gives up (exit 1), and the first cluster keeps serving.
start_cluster quickstart_yaml 1
wait_ready /echo
second_log=$TMP/up.second.log
bg second "$PALLADIUM" up "$CFG" >"$second_log" 2>&1 </dev/null
second_exited() {
	local f
	f=$(proc_fields "$second") || return 0
	[[ ${f%% *} == Z ]]
}
wait_for 60 second_exited ||
	fail "a second palladium up on taken ports still runs after $((60 * TIME_SCALE)) s: $(tail -n 5 "$second_log")"
bg_wait "$second"
rc=$?
assert_eq 1 "$rc" "palladium up whose components cannot start: exit status"
assert_contains "$(cat "$second_log")" "times in a row: stopping the cluster" \
	"it says which component could not start"
echo_ok still || fail "the first cluster stopped answering: HTTP $HTTP_STATUS '$(resp_body)'"
pass "the first cluster still serves /echo"
stop_cluster INT
assert_eq 0 "$UP_RC" "palladium up exit status after SIGINT"
exit 0
