# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Helpers of the integration tests. Each test is a bash script that sources this file,
# writes a cluster file, starts a real cluster with `palladium up` on random loopback
# ports, drives it with curl (and wrk), and stops it.
#
# Rules kept here so that no test is flaky on a small, busy machine:
#   - no fixed sleeps: every wait polls (every 50 ms) up to a deadline;
#   - no timing assertions: deadlines only bound how long a test may hang;
#   - every curl has --max-time;
#   - processes are stopped by the pid (or process group) this file recorded, never by
#     name.
#
# Environment (set by tests/integration/meson.build; defaults for a manual run):
#   PALLADIUM           the palladium executable
#   FUNCTIONS_DIR       the built example functions (echo, upper, exclaim, wordcount)
#   TEST_FUNCTIONS_DIR  the built test functions (misbehave)
#   SOURCE_ROOT         the source tree
#   FABRIC_PROBE        the built tests/integration/fabric_probe (version_refused.sh)
#   PRIMITIVE           fabric.primitive of every cluster file the tests write:
#                       two-sided (default) or one-sided
#   KEEP_TMP=1          keep the test's temporary folder (its path is printed)
# Exit status: 0 pass, 1 fail, 77 skip (meson reports 77 as SKIP).

set -uo pipefail
export LC_ALL=C

TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PALLADIUM=${PALLADIUM:-$SOURCE_ROOT/build/palladium}
FUNCTIONS_DIR=${FUNCTIONS_DIR:-$(dirname "$PALLADIUM")/functions}
TEST_FUNCTIONS_DIR=${TEST_FUNCTIONS_DIR:-$(dirname "$PALLADIUM")/tests/functions}
# shellcheck disable=SC2034 # used by the tests
MISBEHAVE=$TEST_FUNCTIONS_DIR/misbehave
FABRIC_PROBE=${FABRIC_PROBE:-$(dirname "$PALLADIUM")/tests/integration/fabric_probe}
PRIMITIVE=${PRIMITIVE:-two-sided}
# USE_NETNS=1: start_cluster runs `palladium up --netns`, and every HTTP request of these
# helpers runs inside the ingress's namespace (pd<UP_PID>-ingress).
USE_NETNS=${USE_NETNS:-0}

TMP=""
UP_PID=""
UP_PGID=""
UP_LOG=""
UP_RC=""
CFG=""
HTTP_PORT=""
ADMIN_PORT=""
NODE_PORTS=()
USED_PORTS=()
BG_PIDS=()
declare -A RECORDED=() # pid -> start time (field 22 of /proc/PID/stat) of up's processes
CURL_MAX_TIME=${CURL_MAX_TIME:-10}
declare -A COMP_PID=()  # component name -> pid (start_comp); each leads its own group
declare -A COMP_LOG=()  # component name -> its current log file
declare -A COMP_TREE=() # component name -> pids of it and its descendants (record_pids)
COMP_SEQ=0
COMP_RC=""
NETNS_PREFIXES=() # pd<PID>- prefixes of `up --netns` runs of this test
T0=${EPOCHREALTIME/[.,]/}

# ------------------------------------------------------------------------------- output

log() {
	local now=${EPOCHREALTIME/[.,]/}
	printf '[%s %6.2fs] %s\n' "$TEST_NAME" "$(((now - T0) / 10000))e-2" "$*" >&2
}

pass() { log "ok: $*"; }

# soft_fail MESSAGE: report a failure but go on (to check what follows, e.g. recovery);
# the test then ends with `finish`, which exits 1.
SOFT_FAILED=0
soft_fail() {
	log "FAIL: $*"
	SOFT_FAILED=1
}

finish() {
	((SOFT_FAILED)) && fail "see the failures above"
	exit 0
}

fail() {
	log "FAIL: $*"
	exit 1
}

skip() {
	log "SKIP: $*"
	exit 77
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs '$c', which is not installed"
	done
}

# --------------------------------------------------------------------------- assertions

# assert_eq EXPECTED GOT WHAT
assert_eq() {
	[[ "$2" == "$1" ]] || fail "$3: expected '$1', got '$2'"
	pass "$3"
}

# assert_ne UNEXPECTED GOT WHAT
assert_ne() {
	[[ "$2" != "$1" ]] || fail "$3: expected anything but '$1', got it"
	pass "$3"
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
	[[ "$1" == *"$2"* ]] || fail "$3: expected to contain '$2', got '$(head -c 600 <<<"$1")'"
	pass "$3"
}

# assert_not_contains HAYSTACK NEEDLE WHAT
assert_not_contains() {
	[[ "$1" != *"$2"* ]] || fail "$3: expected not to contain '$2', got '$(head -c 600 <<<"$1")'"
	pass "$3"
}

# assert_int OP A B WHAT   (OP: -eq -ne -lt -le -gt -ge); A is what was measured
assert_int() {
	local op=$1 got=$2 ref=$3 what=$4
	[[ "$got" =~ ^-?[0-9]+$ ]] || fail "$what: expected a number $op $ref, got '$got'"
	test "$got" "$op" "$ref" || fail "$what: expected $op $ref, got $got"
	pass "$what ($got $op $ref)"
}

# assert_status EXPECTED WHAT: checks HTTP_STATUS of the last request (see req)
assert_status() {
	if [[ "$HTTP_STATUS" != "$1" ]]; then
		fail "$2: expected HTTP $1, got '$HTTP_STATUS' (body: '$(head -c 300 "$TMP/resp.body" 2>/dev/null)'; curl: '$(head -c 300 "$TMP/resp.err" 2>/dev/null)')"
	fi
	pass "$2 (HTTP $1)"
}

# ---------------------------------------------------------------------------- deadlines

now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# Sanitizer builds run several times slower: stretch the deadlines, not the assertions.
TIME_SCALE=1
if ldd "$PALLADIUM" 2>/dev/null | grep -q 'libasan\|libubsan'; then
	TIME_SCALE=3
fi
# How long `palladium up` lets a stopping component take before it kills it (4 s).
export PALLADIUM_STOP_TIMEOUT_MS=$((4000 * TIME_SCALE))

# wait_for SECONDS CMD [ARGS...]: run CMD every 50 ms until it succeeds (return 0) or
# SECONDS (scaled for sanitizer builds) have passed (return 1).
wait_for() {
	local secs=$1
	shift
	local deadline=$(($(now_ms) + secs * 1000 * TIME_SCALE))
	while :; do
		"$@" && return 0
		(($(now_ms) >= deadline)) && return 1
		sleep 0.05
	done
}

# ------------------------------------------------------------------------ HTTP client

# http_curl ARGS...: curl, run inside the ingress's network namespace when USE_NETNS=1
# (the HTTP listener of `up --netns` lives there).
http_curl() {
	if [[ "$USE_NETNS" == 1 && -n "$UP_PID" ]]; then
		ip netns exec "pd${UP_PID}-ingress" curl "$@"
	else
		curl "$@"
	fi
}

# ---------------------------------------------------------------------------- temp dir

cleanup() {
	local rc=$?
	trap - EXIT
	set +e
	local p
	for p in "${BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${!RECORDED[@]}"; do
		pid_alive "$p" && kill -CONT "$p" 2>/dev/null # in case the test stopped one
	done
	# Components started one by one (start_comp): SIGTERM to each one's group, then
	# SIGKILL to what is left of them and of everything recorded under them.
	local name
	for name in "${!COMP_PID[@]}"; do
		pid_alive "${COMP_PID[$name]}" && kill -TERM -- "-${COMP_PID[$name]}" 2>/dev/null
	done
	for name in "${!COMP_PID[@]}"; do
		wait_for 10 comp_exited "$name"
		kill -KILL -- "-${COMP_PID[$name]}" 2>/dev/null
		wait "${COMP_PID[$name]}" 2>/dev/null
	done
	for name in "${!COMP_TREE[@]}"; do
		for p in ${COMP_TREE[$name]}; do
			pid_alive "$p" && kill -KILL "$p" 2>/dev/null
		done
	done
	if [[ -n "$UP_PID" ]]; then
		# The test stopped early: stop the cluster, then make sure of it.
		kill -TERM "$UP_PID" 2>/dev/null
		wait_for 10 up_exited
		[[ -n "$UP_PGID" ]] && kill -KILL -- "-$UP_PGID" 2>/dev/null
		for p in "${!RECORDED[@]}"; do
			pid_alive "$p" && kill -KILL "$p" 2>/dev/null
		done
		wait "$UP_PID" 2>/dev/null
	fi
	for p in "${BG_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	# Namespaces of `up --netns`: its janitor removes them; make sure of it.
	for p in "${NETNS_PREFIXES[@]}"; do
		if ! wait_for 10 netns_gone "$p"; then
			local ns
			for ns in $(netns_with_prefix "$p"); do
				log "removing namespace $ns left behind"
				ip netns del "$ns" 2>/dev/null
			done
		fi
	done
	# Sanitizer builds: a report in any log of the cluster fails the test (a leak found
	# at exit, or an UBSan "runtime error", does not stop the process that has it).
	if [[ $rc -eq 0 && -n "$TMP" ]]; then
		local f
		for f in "$TMP"/up*.log "$TMP"/comp.*.log; do
			[[ -f "$f" ]] || continue
			sanitizer_reports "$f" >"$TMP/sanitizer.out"
			if [[ -s "$TMP/sanitizer.out" ]]; then
				log "FAIL: sanitizer report in $(basename "$f"):"
				head -n 80 "$TMP/sanitizer.out" >&2
				rc=1
			fi
		done
	fi
	if [[ $rc -ne 0 && $rc -ne 77 && -n "$TMP" ]]; then
		local f
		for f in "$TMP"/up*.log "$TMP"/comp.*.log; do
			[[ -f "$f" ]] || continue
			echo "----- $f (last 150 lines)" >&2
			tail -n 150 "$f" >&2
		done
		[[ -f "$TMP/stats" ]] && { echo "----- last palladium stats" >&2; cat "$TMP/stats" >&2; }
	fi
	if [[ -n "$TMP" ]]; then
		if [[ "${KEEP_TMP:-0}" == 1 ]]; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}

# sanitizer_reports LOG: the AddressSanitizer/LeakSanitizer reports and UBSan runtime
# errors in LOG, except those of the test function misbehave, which crashes on purpose.
sanitizer_reports() {
	awk '
		/==[0-9]+==ERROR: [A-Za-z]+Sanitizer/ { inb = 1; block = "" }
		inb { block = block $0 "\n"; if ($0 ~ /^SUMMARY: /) { inb = 0; if (block !~ /misbehave\.c/) printf "%s", block } next }
		/runtime error:/ && !/misbehave\.c/ { print }
		END { if (inb && block !~ /misbehave\.c/) printf "%s", block }' "$1"
}

init_test() {
	[[ -x "$PALLADIUM" ]] || fail "PALLADIUM=$PALLADIUM is not an executable (build first)"
	need_cmd curl ss setsid
	case "$PRIMITIVE" in
	two-sided | one-sided) ;;
	*) fail "PRIMITIVE=$PRIMITIVE: expected two-sided or one-sided" ;;
	esac
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/palladium-$TEST_NAME.XXXXXX") || fail "mktemp"
	CFG=$TMP/cluster.yaml
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	log "palladium=$PALLADIUM tmp=$TMP time_scale=$TIME_SCALE primitive=$PRIMITIVE"
}

# ------------------------------------------------------------------------------- ports

# pick_port VAR: a random free TCP port in 20000-60000 (not one this test already took).
pick_port() {
	local _pp _pi _pu _taken
	for ((_pi = 0; _pi < 500; _pi++)); do
		_pp=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
		_taken=0
		for _pu in "${USED_PORTS[@]}"; do
			[[ $_pu == "$_pp" ]] && _taken=1
		done
		((_taken)) && continue
		# -a: listening sockets and also connections using it as their local port.
		if [[ -z "$(ss -Hatn "sport = :$_pp" 2>/dev/null)" ]]; then
			USED_PORTS+=("$_pp")
			printf -v "$1" '%d' "$_pp"
			return 0
		fi
	done
	fail "found no free port"
}

# alloc_ports NNODES: HTTP_PORT, ADMIN_PORT and NODE_PORTS[0..NNODES-1].
alloc_ports() {
	local i port
	pick_port HTTP_PORT
	pick_port ADMIN_PORT
	NODE_PORTS=()
	for ((i = 0; i < $1; i++)); do
		pick_port port
		NODE_PORTS+=("$port")
	done
}

port_listening() {
	[[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

# ----------------------------------------------------------------------- cluster files

NODE_NAMES=(a b c d)

# yaml_common NNODES: the fabric, ingress, engine and nodes sections, on the ports of
# alloc_ports, with fabric.primitive $PRIMITIVE. Extra engine keys may be given in
# ENGINE_EXTRA (", key: value" form), extra ingress keys in INGRESS_EXTRA.
yaml_common() {
	local n=$1 i
	cat <<EOF
# written by tests/integration/$TEST_NAME.sh
fabric: { provider: tcp, primitive: $PRIMITIVE }
ingress:
  listen: "127.0.0.1:$HTTP_PORT"
  admin: "127.0.0.1:$ADMIN_PORT"
  address: "127.0.0.1"${INGRESS_EXTRA:-}
engine: { functions_dir: "$FUNCTIONS_DIR", restart_backoff: 100ms, restart_backoff_max: 1s${ENGINE_EXTRA:-} }
nodes:
EOF
	for ((i = 0; i < n; i++)); do
		echo "  - { name: ${NODE_NAMES[$i]}, address: \"127.0.0.1\", port: ${NODE_PORTS[$i]} }"
	done
}

# example_yaml FILE: an example cluster file itself, moved to the ports of alloc_ports
# (HTTP 8080, admin 8081, node ports 7001, 7002, ... in order) and to $PRIMITIVE; its
# addresses stay. Fails (status 1) if FILE has no `primitive: two-sided` line to change.
example_yaml() {
	local src=$1 i
	local -a e=(-e "s/127\.0\.0\.1:8080/127.0.0.1:$HTTP_PORT/"
		-e "s/127\.0\.0\.1:8081/127.0.0.1:$ADMIN_PORT/"
		-e "s/\bprimitive: two-sided\b/primitive: $PRIMITIVE/")
	for ((i = 0; i < ${#NODE_PORTS[@]}; i++)); do
		e+=(-e "s/\bport: $((7001 + i))\b/port: ${NODE_PORTS[$i]}/")
	done
	grep -Eq '^\s*primitive: two-sided\b' "$src" || {
		echo "example_yaml: $src has no 'primitive: two-sided' line" >&2
		return 1
	}
	sed "${e[@]}" "$src"
	grep -q '^engine:' "$src" || echo "engine: { functions_dir: \"$FUNCTIONS_DIR\" }"
}

# quickstart_yaml: examples/quickstart.yaml itself, moved to the ports of alloc_ports.
quickstart_yaml() {
	example_yaml "$SOURCE_ROOT/examples/quickstart.yaml"
}

# two_node_yaml: examples/two-node.yaml itself (nodes on 127.0.0.2 and 127.0.0.3), moved
# to the ports of alloc_ports 2.
two_node_yaml() {
	example_yaml "$SOURCE_ROOT/examples/two-node.yaml"
}

# cfg_primitive_ok: $CFG's fabric section names $PRIMITIVE (or, for two-sided, names none).
cfg_primitive_ok() {
	if grep -Eq '^\s*(fabric:.*)?\bprimitive: *' "$CFG"; then
		grep -Eq "^\s*(fabric:.*)?\bprimitive: *$PRIMITIVE\b" "$CFG"
	else
		[[ "$PRIMITIVE" == two-sided ]]
	fi
}

# ------------------------------------------------------------------------ the cluster

# Fields of /proc/PID/stat after the command name: $1 state (field 3), $2 ppid, $3 pgrp,
# ..., $12 utime (14), $13 stime (15), $20 starttime (22).
proc_fields() {
	local line
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	echo "${line##*) }"
}

# pid_alive PID: PID runs (not a zombie) and, if it was recorded, is still the same
# process (same start time).
pid_alive() {
	local pid=$1 f
	f=$(proc_fields "$pid") || return 1
	# shellcheck disable=SC2086
	set -- $f
	[[ $1 != Z && $1 != X ]] || return 1
	[[ -z "${RECORDED[$pid]:-}" || ${20} == "${RECORDED[$pid]}" ]]
}

# descendants PID: PID and every process below it, as "pid starttime" lines.
descendants() {
	local root=$1 f line pid rest c
	local -A kids=() start=()
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		pid=${line%% *}
		rest=${line##*) }
		# shellcheck disable=SC2086
		set -- $rest
		kids[$2]+=" $pid"
		start[$pid]=${20}
	done
	local -a queue=("$root")
	local -A seen=()
	while ((${#queue[@]})); do
		pid=${queue[0]}
		queue=("${queue[@]:1}")
		[[ -n "${start[$pid]:-}" && -z "${seen[$pid]:-}" ]] || continue
		seen[$pid]=1
		echo "$pid ${start[$pid]}"
		for c in ${kids[$pid]:-}; do
			queue+=("$c")
		done
	done
}

# record_pids: remember every process of the running cluster (functions are restarted,
# so this is called again whenever the test looks at the cluster): everything under
# palladium up, and under each component started with start_comp.
record_pids() {
	local pid st name
	if [[ -n "$UP_PID" ]]; then
		while read -r pid st; do
			RECORDED[$pid]=$st
		done < <(descendants "$UP_PID")
	fi
	for name in "${!COMP_PID[@]}"; do
		pid_alive "${COMP_PID[$name]}" || continue
		while read -r pid st; do
			RECORDED[$pid]=$st
			[[ " ${COMP_TREE[$name]:-} " == *" $pid "* ]] || COMP_TREE[$name]+=" $pid"
		done < <(descendants "${COMP_PID[$name]}")
	done
}

recorded_alive() {
	local pid
	for pid in "${!RECORDED[@]}"; do
		pid_alive "$pid" && echo "$pid"
	done
	return 0
}

none_alive() {
	[[ -z "$(recorded_alive)" ]]
}

up_exited() {
	local f
	f=$(proc_fields "$UP_PID") || return 0
	[[ ${f%% *} == Z ]]
}

# leads_group_or_exited PID: PID leads its own process group (setsid ran), or is gone.
leads_group_or_exited() {
	local pid=$1 f
	f=$(proc_fields "$pid") || return 0
	# shellcheck disable=SC2086
	set -- $f
	[[ $1 == Z || $3 == "$pid" ]]
}

own_group_or_exited() {
	local f
	f=$(proc_fields "$1") || return 0
	# shellcheck disable=SC2086
	set -- $f
	[[ $1 == Z || $3 == "${UP_PID}" ]]
}

# healthy: /healthz answers HEALTH_EXPECT (200 unless told otherwise).
healthy() {
	[[ "$(http_curl -sS --max-time 2 -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$ADMIN_PORT/healthz" 2>/dev/null)" == "${HEALTH_EXPECT:-200}" ]]
}

healthy_or_exited() {
	up_exited || healthy
}

# start_cluster GENERATOR [NNODES]: pick ports, write $CFG with GENERATOR (a function
# that prints the file), start `palladium up $CFG` in its own session, wait for the
# admin /healthz. Retries with new ports if a port was taken meanwhile. With UP_CMD=ingress
# it starts `palladium ingress $CFG` alone instead (and HEALTH_EXPECT=503 waits for an
# ingress that has no engine to reach).
start_cluster() {
	local gen=$1 nnodes=${2:-1} attempt
	for attempt in 1 2 3; do
		alloc_ports "$nnodes"
		"$gen" >"$CFG" || fail "writing the cluster file"
		cfg_primitive_ok || fail "the cluster file does not use fabric.primitive $PRIMITIVE: $(grep -n primitive "$CFG")"
		UP_LOG=$TMP/up.$attempt.log
		local -a netns_flag=()
		[[ "${UP_CMD:-up}" == up && "$USE_NETNS" == 1 ]] && netns_flag=(--netns)
		setsid "$PALLADIUM" "${UP_CMD:-up}" "${netns_flag[@]}" "$CFG" >"$UP_LOG" 2>&1 </dev/null &
		UP_PID=$!
		UP_PGID=""
		((${#netns_flag[@]})) && NETNS_PREFIXES+=("pd$UP_PID-")
		# setsid runs in the background job's process and execs palladium: wait until
		# that process leads its own group (or has already exited).
		if ! wait_for 10 own_group_or_exited "$UP_PID"; then
			fail "palladium up (pid $UP_PID) did not become a process group leader"
		fi
		up_exited || UP_PGID=$UP_PID
		log "palladium ${UP_CMD:-up} ${netns_flag[*]} $CFG: pid $UP_PID, http :$HTTP_PORT admin :$ADMIN_PORT nodes :${NODE_PORTS[*]}"
		if ! wait_for 30 healthy_or_exited; then
			fail "no ${HEALTH_EXPECT:-200} from http://127.0.0.1:$ADMIN_PORT/healthz within $((30 * TIME_SCALE)) s"
		fi
		if ! up_exited; then
			record_pids
			return 0
		fi
		wait "$UP_PID"
		UP_RC=$?
		UP_PID=""
		if grep -qi 'in use' "$UP_LOG"; then
			log "a port was taken meanwhile (attempt $attempt): retrying on new ports"
			continue
		fi
		cat "$UP_LOG" >&2
		fail "palladium up exited with status $UP_RC before it was healthy"
	done
	fail "palladium up could not bind its ports in 3 attempts"
}

# wait_ready PATH [BODY]: poll POST PATH until 200 (links to the engines are up).
route_ok() {
	[[ "$(http_curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --data-binary "$2" \
		"http://127.0.0.1:$HTTP_PORT$1" 2>/dev/null)" == 200 ]]
}

wait_ready() {
	local path=$1 body=${2:-ready}
	wait_for 30 route_ok "$path" "$body" ||
		fail "route $path did not answer 200 within $((30 * TIME_SCALE)) s (last: $(http_curl -sS --max-time 5 -w ' HTTP %{http_code}' --data-binary "$body" "http://127.0.0.1:$HTTP_PORT$path" 2>&1 | head -c 300))"
	record_pids
	pass "route $path ready"
}

# stop_cluster [SIGNAL [SECONDS]]: SIGNAL (TERM default) to palladium up, or with
# SIGNAL=INT-GROUP a SIGINT to its whole process group as Ctrl-C in a terminal does.
# Waits up to SECONDS (default 10, scaled) for up to exit, then checks that none of the
# processes recorded for the cluster is still alive (no orphans). Sets UP_RC.
stop_cluster() {
	local sig=${1:-TERM} secs=${2:-10}
	[[ -n "$UP_PID" ]] || fail "stop_cluster: no cluster is running"
	record_pids
	local n=${#RECORDED[@]}
	local t0
	t0=$(now_ms)
	if [[ "$sig" == INT-GROUP ]]; then
		[[ -n "$UP_PGID" ]] || fail "no process group recorded for palladium up"
		kill -INT -- "-$UP_PGID" || fail "kill -INT -$UP_PGID"
	else
		kill "-$sig" "$UP_PID" || fail "kill -$sig $UP_PID"
	fi
	local deadline=$((t0 + secs * 1000 * TIME_SCALE))
	while ! up_exited && (($(now_ms) < deadline)); do sleep 0.05; done
	up_exited || fail "palladium up (pid $UP_PID) still runs $((secs * TIME_SCALE)) s after SIG$sig"
	wait "$UP_PID"
	UP_RC=$?
	local up=$UP_PID
	UP_PID=""
	while [[ -n "$(recorded_alive)" ]] && (($(now_ms) < deadline)); do sleep 0.05; done
	local left
	left=$(recorded_alive)
	if [[ -n "$left" ]]; then
		local p
		for p in $left; do
			log "orphan: pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		done
		UP_PID=$up # so that cleanup kills them
		fail "$(wc -w <<<"$left") process(es) of the cluster still alive $((secs * TIME_SCALE)) s after SIG$sig"
	fi
	pass "cluster stopped by SIG${sig/INT-GROUP/INT to the process group} in $(($(now_ms) - t0)) ms: all $n processes gone, up exit status $UP_RC"
	RECORDED=()
}

# ------------------------------------------------------------------- background jobs

# bg VAR CMD [ARGS...]: run CMD in the background; its pid goes to VAR (and is killed by
# the cleanup if the test ends early). Collect it with bg_wait.
bg() {
	local var=$1
	shift
	"$@" &
	BG_PIDS+=("$!")
	printf -v "$var" '%d' "$!"
}

# bg_wait PID: wait for a job started by bg; returns its exit status.
bg_wait() {
	local rc i
	wait "$1"
	rc=$?
	for i in "${!BG_PIDS[@]}"; do
		[[ ${BG_PIDS[$i]} == "$1" ]] && unset 'BG_PIDS[i]'
	done
	return $rc
}

# instance_pid FUNCTION: pid of the first running instance of FUNCTION (palladium stats),
# checked to be one of the cluster's processes.
instance_pid() {
	fetch_stats
	local pid
	pid=$(awk -v f="$1" '$1 == "instance" && index($2, f "/") == 1 && $4 == "state=running" {
		sub(/^pid=/, "", $3); print $3; exit }' "$TMP/stats")
	[[ -n "$pid" && -n "${RECORDED[$pid]:-}" ]] || fail "no running instance of $1 among the cluster's processes: $(grep instance "$TMP/stats")"
	echo "$pid"
}

proc_state_is() {
	local f
	f=$(proc_fields "$1") || return 1
	[[ ${f%% *} == "$2" ]]
}

# flood PATH BODY N [MAX_TIME]: N concurrent POSTs (one curl, one connection each); one
# status per line in $TMP/flood.out, and a "count status;" summary in FLOOD_SUMMARY.
flood() {
	local path=$1 body=$2 n=$3 max=${4:-20} i
	{
		echo "data-binary = \"$body\""
		echo "max-time = $((max * TIME_SCALE))"
		echo 'write-out = "%{http_code}\n"'
		for ((i = 0; i < n; i++)); do
			echo "url = \"http://127.0.0.1:$HTTP_PORT$path\""
			echo 'output = "/dev/null"'
		done
	} >"$TMP/flood.curl"
	http_curl -sS -Z --parallel-max "$n" --parallel-immediate -K "$TMP/flood.curl" \
		>"$TMP/flood.out" 2>"$TMP/flood.err"
	# shellcheck disable=SC2034 # used by the tests
	FLOOD_SUMMARY=$(sort "$TMP/flood.out" | uniq -c | awk '{ printf "%s x %s; ", $1, $2 }')
}

# ------------------------------------------------------------------------------- HTTP

# req METHOD PATH [CURL ARGS...]: one request to the HTTP listener. Sets HTTP_STATUS
# ("000" if no answer); body in $TMP/resp.body, headers in $TMP/resp.headers.
req() {
	local method=$1 path=$2
	shift 2
	local -a m=(-X "$method")
	[[ "$method" == HEAD ]] && m=(-I)
	HTTP_STATUS=$(http_curl -sS --max-time "$CURL_MAX_TIME" "${m[@]}" -H 'Expect:' \
		-o "$TMP/resp.body" -D "$TMP/resp.headers" -w '%{http_code}' "$@" \
		"http://127.0.0.1:$HTTP_PORT$path" 2>"$TMP/resp.err")
	[[ -n "$HTTP_STATUS" ]] || HTTP_STATUS=000
}

# post PATH DATA [CURL ARGS...]
post() {
	local path=$1 data=$2
	shift 2
	req POST "$path" --data-binary "$data" "$@"
}

# post_file PATH FILE [CURL ARGS...]
post_file() {
	local path=$1 file=$2
	shift 2
	req POST "$path" --data-binary "@$file" "$@"
}

resp_body() { cat "$TMP/resp.body" 2>/dev/null; }

# resp_header NAME: value of a response header of the last request (case-insensitive).
resp_header() {
	awk -v n="$(tr '[:upper:]' '[:lower:]' <<<"$1")" -F': *' '
		{ k = tolower($1); sub(/\r$/, "") }
		k == n { sub(/^[^:]*: */, ""); print; exit }' "$TMP/resp.headers" 2>/dev/null
}

# ------------------------------------------------------------------------ observability

fetch_metrics() {
	http_curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$TMP/metrics" 2>"$TMP/metrics.err" ||
		fail "GET /metrics: $(cat "$TMP/metrics.err")"
}

# metric_sum NAME [LABEL="VALUE"...]: sum of the samples of NAME (from the last
# fetch_metrics) whose labels include all the given ones; "0" if there are none.
metric_sum() {
	local name=$1
	shift
	awk -v name="$name" -v want="$*" '
		BEGIN { n = split(want, w, " ") }
		/^#/ { next }
		{
			key = $1; val = $NF
			lab = ""
			i = index(key, "{")
			if (i > 0) { lab = substr($0, i); lab = substr(lab, 1, index(lab, "}")); key = substr(key, 1, i - 1) }
			if (key != name) next
			for (j = 1; j <= n; j++) if (index(lab, w[j]) == 0) next
			sum += val
		}
		END { printf "%.0f\n", sum }' "$TMP/metrics"
}

# metric_present NAME: the last fetch_metrics has a sample of NAME.
metric_present() {
	grep -Eq "^$1(\\{| )" "$TMP/metrics"
}

fetch_stats() {
	"$PALLADIUM" stats "$CFG" >"$TMP/stats" 2>&1 || fail "palladium stats failed: $(head -c 600 "$TMP/stats")"
	record_pids
}

# stat_sum TENANT KEY: sum over the nodes of KEY=VALUE on "tenant TENANT ..." lines of
# the last fetch_stats; empty if the key is missing.
stat_sum() {
	awk -v t="$1" -v k="$2" '
		$1 == "tenant" && $2 == t {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == k) { sum += kv[2]; found = 1 }
			}
		}
		END { if (found) printf "%.0f\n", sum }' "$TMP/stats"
}

# stat_now TENANT KEY: fetch_stats, then stat_sum.
stat_now() {
	fetch_stats
	stat_sum "$1" "$2"
}

# stat_is OP TENANT KEY VALUE: for wait_for.
stat_is() {
	local v
	"$PALLADIUM" stats "$CFG" >"$TMP/stats" 2>&1 || return 1
	record_pids
	v=$(stat_sum "$2" "$3")
	[[ -n "$v" ]] && test "$v" "$1" "$4"
}

# ------------------------------------------------- components started one by one
#
# For tests that stop or kill one component while the others keep running, and decide
# themselves when and how it comes back (`palladium up` restarts it on its own): each of `palladium engine FILE --node N` and
# `palladium ingress FILE` runs in a session of its own, recorded by name. An engine's
# function processes die with it (PR_SET_PDEATHSIG).

# start_comp NAME ARGS...: run `palladium ARGS...` in a session of its own, logging to
# $TMP/comp.NAME.K.log (COMP_LOG[NAME]). E.g. start_comp a engine "$CFG" --node a.
start_comp() {
	local name=$1 pid f
	shift
	[[ -z "${COMP_PID[$name]:-}" ]] || fail "start_comp $name: already running (pid ${COMP_PID[$name]})"
	cfg_primitive_ok || fail "the cluster file does not use fabric.primitive $PRIMITIVE: $(grep -n primitive "$CFG")"
	COMP_SEQ=$((COMP_SEQ + 1))
	COMP_LOG[$name]=$TMP/comp.$name.$COMP_SEQ.log
	setsid "$PALLADIUM" "$@" >"${COMP_LOG[$name]}" 2>&1 </dev/null &
	pid=$!
	COMP_PID[$name]=$pid
	wait_for 10 leads_group_or_exited "$pid" ||
		fail "$name (pid $pid) did not become a process group leader"
	if f=$(proc_fields "$pid"); then
		# shellcheck disable=SC2086
		set -- $f
		RECORDED[$pid]=${20}
	fi
	COMP_TREE[$name]=" $pid"
	log "started $name: pid $pid, log $(basename "${COMP_LOG[$name]}")"
}

# comp_exited NAME: the component is gone (or a zombie), or was never started.
comp_exited() {
	local pid=${COMP_PID[$1]:-} f
	[[ -n "$pid" ]] || return 0
	f=$(proc_fields "$pid") || return 0
	[[ ${f%% *} == Z || ${f%% *} == X ]]
}

# comp_running NAME: the component runs (fails the test if it exited: see its log).
comp_running() {
	if comp_exited "$1"; then
		tail -n 40 "${COMP_LOG[$1]:-/dev/null}" >&2
		fail "$1 (pid ${COMP_PID[$1]:-none}) exited on its own"
	fi
}

# comp_tree_alive NAME: pids recorded under component NAME (itself included) still alive.
comp_tree_alive() {
	local p
	for p in ${COMP_TREE[$1]:-}; do
		pid_alive "$p" && echo "$p"
	done
	return 0
}

comp_tree_gone() { [[ -z "$(comp_tree_alive "$1")" ]]; }

# _comp_reap NAME SIGNAL SECONDS: wait for NAME (signalled with SIGNAL) and for everything
# recorded under it to be gone; COMP_RC gets its exit status.
_comp_reap() {
	local name=$1 sig=$2 secs=$3 pid=${COMP_PID[$1]}
	wait_for "$secs" comp_exited "$name" ||
		fail "$name (pid $pid) still runs $((secs * TIME_SCALE)) s after SIG$sig"
	wait "$pid" 2>/dev/null
	COMP_RC=$?
	if ! wait_for "$secs" comp_tree_gone "$name"; then
		local p
		for p in $(comp_tree_alive "$name"); do
			log "orphan of $name: pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		done
		fail "processes of $name still alive $((secs * TIME_SCALE)) s after SIG$sig"
	fi
	unset 'COMP_PID[$name]'
	unset 'COMP_TREE[$name]'
}

# stop_comp NAME [SIGNAL [SECONDS]]: SIGNAL (TERM default) to the component's process
# group; waits (SECONDS, default 10, scaled) for it and every process recorded under it.
stop_comp() {
	local name=$1 sig=${2:-TERM} secs=${3:-10}
	local pid=${COMP_PID[$name]:-}
	[[ -n "$pid" ]] || fail "stop_comp $name: not running"
	record_pids
	kill "-$sig" -- "-$pid" || fail "kill -$sig -$pid ($name)"
	_comp_reap "$name" "$sig" "$secs"
	pass "$name stopped by SIG$sig (exit status $COMP_RC), no process of it left"
}

# kill9_comp NAME: SIGKILL to the component's own process only (by its pid), as a crash;
# waits for it and for what ran under it (functions die with their engine).
kill9_comp() {
	local name=$1 pid=${COMP_PID[$1]:-}
	[[ -n "$pid" ]] || fail "kill9_comp $name: not running"
	record_pids
	kill -KILL "$pid" || fail "kill -KILL $pid ($name)"
	_comp_reap "$name" KILL 10
	pass "$name (pid $pid) killed with SIGKILL, no process of it left"
}

# engine_up NODE: the engine of NODE answers on its stats socket.
engine_up() {
	"$PALLADIUM" stats "$CFG" --node "$1" >/dev/null 2>&1
}

# ingress_up: the ingress's admin listener answers /healthz (200, or 503 while some
# route has no engine yet).
ingress_up() {
	local code
	code=$(http_curl -sS --max-time 2 -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$ADMIN_PORT/healthz" 2>/dev/null)
	[[ "$code" == 200 || "$code" == 503 ]]
}

# start_engine NODE / start_ingress: start the component (named after the node, or
# "ingress") and wait until it answers (stats socket / healthz).
_engine_up_or_exited() { comp_exited "$1" || engine_up "$1"; }
start_engine() {
	start_comp "$1" engine "$CFG" --node "$1"
	wait_for 30 _engine_up_or_exited "$1" || fail "engine $1: no answer on its stats socket within $((30 * TIME_SCALE)) s"
	comp_running "$1"
	record_pids
	pass "engine $1 up (pid ${COMP_PID[$1]})"
}
_ingress_up_or_exited() { comp_exited ingress || ingress_up; }
start_ingress() {
	start_comp ingress ingress "$CFG"
	wait_for 30 _ingress_up_or_exited || fail "ingress: no answer on /healthz within $((30 * TIME_SCALE)) s"
	comp_running ingress
	pass "ingress up (pid ${COMP_PID[ingress]})"
}

# ------------------------------------------------------------------ stats per node

# fetch_stats_node NODE: palladium stats of one node into $TMP/stats (stat_sum then reads
# that node only).
fetch_stats_node() {
	"$PALLADIUM" stats "$CFG" --node "$1" >"$TMP/stats" 2>&1 ||
		fail "palladium stats --node $1 failed: $(head -c 600 "$TMP/stats")"
	record_pids
}

# stat_node NODE TENANT KEY: fetch_stats_node, then the value.
stat_node() {
	fetch_stats_node "$1"
	stat_sum "$2" "$3"
}

# stat_node_is OP NODE TENANT KEY VALUE: for wait_for.
stat_node_is() {
	local v
	"$PALLADIUM" stats "$CFG" --node "$2" >"$TMP/stats" 2>&1 || return 1
	v=$(stat_sum "$3" "$4")
	[[ -n "$v" ]] && test "$v" "$1" "$5"
}

# peer_field TENANT PEER KEY: KEY of the "  peer PEER ..." line under tenant TENANT in the
# last stats (one node: fetch_stats_node).
peer_field() {
	awk -v t="$1" -v p="$2" -v k="$3" '
		$1 == "tenant" { in_t = ($2 == t) }
		in_t && $1 == "peer" && $2 == p {
			for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { print kv[2]; exit } }
		}' "$TMP/stats"
}

# peer_state_is NODE TENANT PEER STATE: for wait_for (STATE up or down).
peer_state_is() {
	"$PALLADIUM" stats "$CFG" --node "$1" >"$TMP/stats" 2>&1 || return 1
	[[ "$(peer_field "$2" "$3" state)" == "$4" ]]
}

# --------------------------------------------------------------- request streams

# stream_start NAME PATH BODY PARALLEL MAX_REQUESTS MAX_SECONDS: in the background,
# batches of PARALLEL concurrent POSTs (one connection each) to PATH, one batch after the
# other, until stream_stop NAME, MAX_REQUESTS were sent or MAX_SECONDS (scaled) passed.
# One HTTP status per line ("000": no answer) in $TMP/stream.NAME.out, in the order they
# completed. STREAM_PID[NAME] is the loop's pid.
declare -A STREAM_PID=()
_stream_loop() {
	local name=$1 path=$2 body=$3 par=$4 max=$5 secs=$6 i sent=0
	local deadline=$(($(now_ms) + secs * 1000 * TIME_SCALE))
	{
		echo "data-binary = \"$body\""
		echo "max-time = $((CURL_MAX_TIME * TIME_SCALE))"
		echo 'write-out = "%{http_code}\n"'
		for ((i = 0; i < par; i++)); do
			echo "url = \"http://127.0.0.1:$HTTP_PORT$path\""
			echo 'output = "/dev/null"'
		done
	} >"$TMP/stream.$name.curl"
	while ((sent + par <= max)) && [[ ! -e "$TMP/stream.$name.stop" ]] &&
		(($(now_ms) < deadline)); do
		http_curl -sS -Z --parallel-max "$par" --parallel-immediate -K "$TMP/stream.$name.curl" \
			>>"$TMP/stream.$name.out" 2>>"$TMP/stream.$name.err"
		sent=$((sent + par))
	done
}
stream_start() {
	local name=$1 pid
	rm -f "$TMP/stream.$name.stop"
	: >"$TMP/stream.$name.out"
	bg pid _stream_loop "$@"
	STREAM_PID[$name]=$pid
	log "stream $name: $4 at a time to $2, at most $5 requests or $(($6 * TIME_SCALE)) s (pid $pid)"
}

# stream_count NAME: statuses recorded so far.
stream_count() {
	local n
	n=$(wc -l <"$TMP/stream.$1.out")
	echo $((n))
}

# stream_has NAME N: at least N statuses recorded (for wait_for).
stream_has() { (($(stream_count "$1") >= $2)); }

# stream_running NAME
stream_running() { pid_alive "${STREAM_PID[$1]}"; }

# stream_stop NAME: ask the loop to stop after its current batch and wait for it.
stream_stop() {
	touch "$TMP/stream.$1.stop"
	bg_wait "${STREAM_PID[$1]}"
}

# stream_summary NAME [FROM]: "count x status; ..." of the statuses from line FROM
# (1-based, default 1) on.
stream_summary() {
	tail -n "+${2:-1}" "$TMP/stream.$1.out" | sort | uniq -c | awk '{ printf "%s x %s; ", $1, $2 }'
}

# ---------------------------------------------------------------- network namespaces

need_root_ip() {
	[[ $(id -u) == 0 ]] || skip "needs root (network namespaces)"
	need_cmd ip
	ip netns list >/dev/null 2>&1 || skip "'ip netns' does not work here"
}

# netns_with_prefix PREFIX: the network namespaces whose name starts with PREFIX.
netns_with_prefix() {
	ip netns list 2>/dev/null | awk -v p="$1" 'index($1, p) == 1 { print $1 }'
}

netns_gone() { [[ -z "$(netns_with_prefix "$1")" ]]; }

# need_curl_http2: skip unless curl speaks HTTP/2 (the HTTP/2 checks need it).
need_curl_http2() {
	curl -V 2>/dev/null | grep -q '^Features:.*\bHTTP2\b' || skip "needs curl with HTTP/2"
}

# raw_exchange PORT BYTES OUT: write BYTES (printf %b) on a new connection to
# 127.0.0.1:PORT and read until the server closes it, for at most 10 s, into OUT. Returns
# cat's status: 0 closed (EOF), 124 still open at the deadline, else the read failed (the
# server reset the connection: closed too); 2 if it could not connect. The server may
# close before it has read everything (a 400 stops its reading): a write to a closed
# connection must not end the test with SIGPIPE.
raw_exchange() {
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 2
	(
		trap '' PIPE
		printf '%b' "$2" >&3
	) 2>/dev/null
	timeout $((10 * TIME_SCALE)) cat <&3 >"$3"
	local rc=$?
	exec 3<&-
	return $rc
}

# ------------------------------------------------------------------------------ calls

# shellcheck disable=SC2034 # used by the tests
CALLPROBE=$TEST_FUNCTIONS_DIR/callprobe

# fn_stat FUNCTION KEY: sum over the nodes of KEY=VALUE on the "  function FUNCTION ..."
# lines of the last fetch_stats (or fetch_stats_node); empty if the key is missing.
fn_stat() {
	awk -v f="$1" -v k="$2" '
		$1 == "function" && $2 == f {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == k) { sum += kv[2]; found = 1 }
			}
		}
		END { if (found) printf "%.0f\n", sum }' "$TMP/stats"
}

# fn_stat_now FUNCTION KEY: fetch_stats, then fn_stat.
fn_stat_now() {
	fetch_stats
	fn_stat "$1" "$2"
}

# fn_stat_is OP FUNCTION KEY VALUE: for wait_for.
fn_stat_is() {
	local v
	"$PALLADIUM" stats "$CFG" >"$TMP/stats" 2>&1 || return 1
	record_pids
	v=$(fn_stat "$2" "$3")
	[[ -n "$v" ]] && test "$v" "$1" "$4"
}

# fn_stats_differ FUNCTION "KEY=VALUE ...": fetch_stats, then FN_BAD says which keys of
# FUNCTION (summed over the nodes) differ from their VALUE (empty if none does).
FN_BAD=""
fn_stats_differ() {
	local fn=$1 want=$2 kv got
	FN_BAD=""
	fetch_stats
	for kv in $want; do
		got=$(fn_stat "$fn" "${kv%%=*}")
		[[ "$got" == "${kv#*=}" ]] || FN_BAD+=" ${kv%%=*}=${got:-missing} (expected ${kv#*=})"
	done
	[[ -z "$FN_BAD" ]] || FN_BAD="function $fn:$FN_BAD; its lines: $(grep -E "^ +function $fn " "$TMP/stats")"
}

# assert_fn_stats FUNCTION "KEY=VALUE ..." WHAT: every KEY of FUNCTION (summed over the
# nodes) equals its VALUE, or the test fails.
assert_fn_stats() {
	fn_stats_differ "$1" "$2"
	[[ -z "$FN_BAD" ]] || fail "$3: $FN_BAD"
	pass "$3: function $1 $2"
}

# expect_fn_stats FUNCTION "KEY=VALUE ..." WHAT: the same, but a difference is a
# soft_fail (the test goes on and fails at its end).
expect_fn_stats() {
	fn_stats_differ "$1" "$2"
	if [[ -n "$FN_BAD" ]]; then
		soft_fail "$3: $FN_BAD"
	else
		pass "$3: function $1 $2"
	fi
}

# expect_within SECONDS WHAT CMD [ARGS...]: wait_for CMD, a soft_fail if it never holds.
expect_within() {
	local secs=$1 what=$2
	shift 2
	if wait_for "$secs" "$@"; then
		pass "$what"
	else
		soft_fail "$what: not within $((secs * TIME_SCALE)) s ($*)"
	fi
}
