#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two tenants on one node; tenant a's function is hostile (tests/functions/intruder). On
# request it tries to reach tenant b and the engine - attach again over the engine's
# socket (itself and from a forked child), open /proc/<engine>/fd/*, /dev/shm/* and the
# fds of every process of another uid, open /proc/<b>/fd/* and /proc/<b>/mem, pidfd_getfd,
# process_vm_readv, ptrace and signal b and the engine, become root, and mmap whatever it
# got - and answers with a JSON report. Every attempt must fail; b keeps answering
# correctly; the refused attaches are logged and counted.
# Tenants are separated by uid only when the engine runs as root: skipped otherwise.
source "$(dirname "$0")/lib.sh"
init_test
[[ $(id -u) == 0 ]] || skip "needs root: tenants get uids of their own only when the engine runs as root"
need_cmd jq
INTRUDER=$TEST_FUNCTIONS_DIR/intruder
[[ -x "$INTRUDER" ]] || fail "test function $INTRUDER is not built"

# Tenant a is tenants[0] and b tenants[1]: default identities 61000 and 61001.
UID_A=61000
UID_B=61001

cluster_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: a, pool: 16MiB, buffer_size: 64KiB, max_inflight: 16 }
  - { name: b, pool: 8MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: intruder, tenant: a, exec: "$INTRUDER", node: a }
  - { name: upper, tenant: b, exec: upper, node: a }
routes:
  - { path: /intrude, tenant: a, chain: [intruder], timeout: 60s }
  - { path: /b, tenant: b, chain: [upper], timeout: 5s }
EOF
}

start_cluster cluster_yaml 1
wait_ready /intrude hello
wait_ready /b ready

# status_field PID FIELD: a field of /proc/PID/status ("Uid", "NoNewPrivs", ...).
status_field() {
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ +/, ""); print; exit }' "/proc/$1/status"
}

fetch_stats
engine_pid=$(awk '$1 == "node" && $2 == "a" { print $4 }' "$TMP/stats")
[[ -n "$engine_pid" ]] || fail "no engine pid in palladium stats: $(head -n 3 "$TMP/stats")"
a_pid=$(instance_pid intruder)
b_pid=$(instance_pid upper)
log "engine pid $engine_pid, intruder (tenant a) pid $a_pid, upper (tenant b) pid $b_pid"

# --- identities, as the kernel sees them
assert_eq "0 0 0 0" "$(status_field "$engine_pid" Uid | tr -s '\t ' ' ')" "the engine runs as root"
assert_eq "$UID_A $UID_A $UID_A $UID_A" "$(status_field "$a_pid" Uid | tr -s '\t ' ' ')" "tenant a's function runs as uid $UID_A (real, effective, saved, fs)"
assert_eq "$UID_A $UID_A $UID_A $UID_A" "$(status_field "$a_pid" Gid | tr -s '\t ' ' ')" "tenant a's function runs as gid $UID_A"
assert_eq "$UID_A" "$(status_field "$a_pid" Groups | tr -s '\t ' ' ' | sed 's/ *$//')" "tenant a's function has only its own group"
assert_eq "$UID_B $UID_B $UID_B $UID_B" "$(status_field "$b_pid" Uid | tr -s '\t ' ' ')" "tenant b's function runs as uid $UID_B"
assert_eq 1 "$(status_field "$a_pid" NoNewPrivs)" "tenant a's function has no_new_privs"
assert_eq 1 "$(status_field "$b_pid" NoNewPrivs)" "tenant b's function has no_new_privs"
assert_eq 0000000000000000 "$(status_field "$a_pid" CapEff)" "tenant a's function has no capability"
grep -q "tenant a: functions run as uid $UID_A gid $UID_A" "$UP_LOG" || fail "the engine did not log tenant a's identity"
pass "the engine logged each tenant's identity"

post /b before
assert_status 200 "tenant b answers before the attack"
assert_eq BEFORE "$(resp_body)" "tenant b's answer before the attack"

# --- the attack
refused_before=$(grep -c "refused attach" "$UP_LOG")
# The engine's attach_refused counter (on the "node" line of palladium stats), before.
attach_refused() {
	awk '$1 == "node" { for (i = 3; i <= NF; i++) if ($i ~ /^attach_refused=/) { sub(/^attach_refused=/, "", $i); print $i } }' "$TMP/stats"
}
fetch_stats
counted_before=$(attach_refused)
[[ "$counted_before" =~ ^[0-9]+$ ]] || fail "palladium stats has no attach_refused counter: $(grep '^node' "$TMP/stats")"
CURL_MAX_TIME=$((60 * TIME_SCALE))
post /intrude "attack $b_pid fabric=${NODE_PORTS[0]}"
assert_status 200 "the intruder answers its report"
cp "$TMP/resp.body" "$TMP/report.json"
jq -e . "$TMP/report.json" >/dev/null || fail "the report is not JSON: $(head -c 600 "$TMP/report.json")"
log "report: $(jq -c '{uid, engine_pid, victims, tried, succeeded, info}' "$TMP/report.json")"

assert_eq "$UID_A" "$(jq -r .uid "$TMP/report.json")" "the intruder ran as uid $UID_A"
assert_eq "$engine_pid" "$(jq -r .engine_pid "$TMP/report.json")" "the intruder found the engine (its parent)"
jq -e --argjson b "$b_pid" '.victims | index($b) != null' "$TMP/report.json" >/dev/null ||
	fail "tenant b's function $b_pid is not among the intruder's victims: $(jq -c .victims "$TMP/report.json")"
pass "tenant b's function is among the intruder's victims"
# It found b by itself too (a child of the engine with another uid), not only by being told.
assert_eq 1 "$(jq '.victims | length' "$TMP/report.json")" "exactly one victim process (tenant b's one instance)"

# What the intruder holds: stdio, its attach socket, its own tenant's pool and eventfds -
# nothing inherited from the engine (another pool, a fabric socket).
log "the intruder's descriptors: $(jq -c '[.own_fds[].target]' "$TMP/report.json")"
assert_eq '["/memfd:palladium.a.a (deleted)"]' "$(jq -c '[.own_fds[].target | select(startswith("/memfd:"))]' "$TMP/report.json")" "the only pool the intruder holds is its own tenant's"
assert_eq 1 "$(jq '[.own_fds[].target | select(startswith("socket:"))] | length' "$TMP/report.json")" "the intruder holds one socket (its attach connection)"

# Controls: the same techniques against the intruder's own child (same uid) work, so the
# failures below are the boundary's doing, not a broken attack.
for c in proc_fd pidfd_getfd vm_read ptrace; do
	assert_eq true "$(jq -r ".controls.$c" "$TMP/report.json")" "control: $c works on a process of the intruder's own uid"
done

# Every category was really tried, and nothing succeeded.
for cat in attach_self attach_child engine_fd proc_fd_other victim_fd pidfd_getfd vm_read \
	ptrace signal setuid_root mmap; do
	tried=$(jq -r ".attempts.$cat.tried" "$TMP/report.json")
	ok=$(jq -r ".attempts.$cat.succeeded" "$TMP/report.json")
	example=$(jq -r ".attempts.$cat.failed_examples[0] // \"\"" "$TMP/report.json")
	assert_int -ge "$tried" 1 "$cat: tried (e.g. $example)"
	if [[ "$ok" != 0 ]]; then
		soft_fail "$cat: $ok attempt(s) succeeded: $(jq -c ".attempts.$cat.successes" "$TMP/report.json")"
	else
		pass "$cat: all $tried attempt(s) failed"
	fi
done
# /dev/shm: Palladium puts nothing there (pools are memfds); anything the intruder could
# open there belongs to someone else on this machine and is not ours to judge - but
# nothing of this cluster may be among it.
shm_ok=$(jq -r '.attempts.dev_shm.succeeded' "$TMP/report.json")
if [[ "$shm_ok" != 0 ]]; then
	log "NOTE: the intruder opened $shm_ok file(s) in /dev/shm: $(jq -c .attempts.dev_shm.successes "$TMP/report.json")"
	jq -r '.attempts.dev_shm.successes[]' "$TMP/report.json" | grep -qi palladium &&
		soft_fail "dev_shm: the intruder opened a Palladium file in /dev/shm"
fi
pass "dev_shm: nothing of the cluster opened ($(jq -r .attempts.dev_shm.tried "$TMP/report.json") tried)"
assert_int -eq "$(jq -r .succeeded "$TMP/report.json")" "$shm_ok" "no attempt succeeded (except foreign /dev/shm files: $shm_ok)"

# --- the refused attaches: logged by the engine and counted (attach_refused)
refused_logged() { (($(grep -c "refused attach" "$UP_LOG") >= refused_before + 2)); }
wait_for 10 refused_logged || fail "the engine did not log the refused attaches: $(grep 'refused attach' "$UP_LOG" | tail -n 5)"
grep -q "refused attach from pid $a_pid uid $UID_A: that process is attached already" "$UP_LOG" ||
	fail "no refusal logged for the intruder's second attach: $(grep 'refused attach' "$UP_LOG" | tail -n 5)"
pass "second attach from the attached intruder refused and logged"
grep "refused attach from pid" "$UP_LOG" | grep -v "pid $a_pid " | grep -q "uid $UID_A: not a process this engine started" ||
	fail "no refusal logged for the attach from the intruder's child: $(grep 'refused attach' "$UP_LOG" | tail -n 5)"
pass "attach from the intruder's forked child refused and logged"
# Counted too: one count per refusal logged (two refusals stay under the log's rate
# limit), and the last log line says the same total.
fetch_stats
counted=$(attach_refused)
[[ "$counted" =~ ^[0-9]+$ ]] || fail "palladium stats has no attach_refused counter: $(grep '^node' "$TMP/stats")"
logged=$(($(grep -c "refused attach" "$UP_LOG") - refused_before))
assert_int -eq "$((counted - counted_before))" "$logged" "palladium stats: attach_refused grew by the $logged refusals logged ($counted_before -> $counted)"
so_far=$(grep -o 'refused attach from pid .*(\([0-9]*\) refused so far)' "$UP_LOG" | tail -n 1 | sed 's/.*(\([0-9]*\) refused so far)/\1/')
assert_eq "$counted" "$so_far" "palladium stats: attach_refused equals the total in the engine's last refusal line"

# --- tenant b is untouched
assert_eq "$b_pid" "$(instance_pid upper)" "tenant b's function still runs (same pid)"
assert_eq 0 "$(stat_sum b restarts)" "tenant b's function was never restarted"
for i in 1 2 3 4 5; do
	post /b "after-$i"
	assert_status 200 "tenant b answers after the attack #$i"
	assert_eq "AFTER-$i" "$(resp_body)" "tenant b's answer after the attack #$i"
done
assert_eq "$engine_pid" "$(awk '$1 == "node" && $2 == "a" { print $4 }' "$TMP/stats")" "the engine kept running (same pid)"

# What a function can still reach (docs/security.md): the engine's fabric port. Reported,
# not asserted - see tests/integration/isolation_fabric.sh.
if [[ "$(jq -r '.info.fabric_tcp_reachable' "$TMP/report.json")" == true ]]; then
	log "NOTE: the intruder can open a TCP connection to the engine's fabric port ${NODE_PORTS[0]} (see docs/security.md, 'Not protected')"
fi

stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"
finish
