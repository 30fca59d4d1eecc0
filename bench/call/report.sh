#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/call/report.sh OUT PLACEMENT RATE LAT_SECONDS FANOUT_SECONDS PEAK_SECONDS
#   PEAK_CONNECTIONS SPIN_US BODY_SIZE CPU_RATE CPU_SECONDS ELAPSED: from OUT/results.tsv (written by bench/call/run), print the tables
# on stdout, the ratio line last, and write them with the method to OUT/report.md. Run by
# bench/call/run; can be rerun by hand on a results folder.
set -uo pipefail
export LC_ALL=C
OUT=$1 PLACEMENT=$2 RATE=$3 LAT_SECONDS=$4 FANOUT_SECONDS=$5 PEAK_SECONDS=$6
PEAK_CONNECTIONS=$7 SPIN_US=$8 BODY_SIZE=$9 CPU_RATE=${10} CPU_SECONDS=${11} ELAPSED=${12}
R=$OUT/results.tsv
[[ -s "$R" ]] || { echo "report.sh: no $R" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

# get SIDE MODE PLACEMENT CASE TOOL COLUMN
get() {
	awk -F'\t' -v s="$1" -v m="$2" -v p="$3" -v c="$4" -v t="$5" -v col="$6" '
		NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
		$1 == s && $2 == m && $3 == p && $4 == c && $5 == t { v = $(h[col]) }
		END { print (v == "" ? "nan" : v) }' "$R"
}
calc() { awk -v a="$1" -v b="$2" -v op="$3" -v f="${4:-%.1f}" 'BEGIN {
	if (a == "nan" || b == "nan" || a == "" || b == "") { print "nan"; exit }
	if (op == "-") printf f "\n", a - b
	else if (op == "/") { if (b + 0 == 0) print "nan"; else printf f "\n", a / b }
	else if (op == "*") printf f "\n", a * b }'; }
cpu_total() { # SIDE MODE PLACEMENT CASE: CPU-us per request, all components (fixed rate)
	local c
	for c in ingress front caller back callee; do
		get "$1" "$2" "$3" "$4" h2load-cpu "cpu_$c"
	done | awk '$1 == "nan" { bad = 1 } { t += $1 } END { if (bad) print "nan"; else printf "%.1f\n", t }'
}
# rtt SIDE MODE PLACEMENT p50: one call's round trip (n=1 - n=0 at the fixed rate)
rtt() { calc "$(get "$1" "$2" "$3" n=1 h2load "$4")" "$(get "$1" "$2" "$3" n=0 h2load "$4")" - %.0f; }
# cpu_call SIDE MODE PLACEMENT [COMPONENT]: CPU-us per call (n=1 - n=0 per request)
cpu_call() {
	if [[ -n "${4:-}" ]]; then
		calc "$(get "$1" "$2" "$3" n=1 h2load-cpu "cpu_$4")" "$(get "$1" "$2" "$3" n=0 h2load-cpu "cpu_$4")" -
	else
		calc "$(cpu_total "$1" "$2" "$3" n=1)" "$(cpu_total "$1" "$2" "$3" n=0)" -
	fi
}
fanout() { calc "$(get "$1" "$2" "$3" "n=8&mode=par" h2load p50)" "$(get "$1" "$2" "$3" "n=8&mode=seq" h2load p50)" / %.3f; }

MODES=$(awk -F'\t' 'NR > 1 && $1 == "pd" { print $2 }' "$R" | awk '!seen[$1]++' | tr '\n' ' ')
ROWS=()
for pl in local remote; do
	for mode in $MODES; do ROWS+=("pd $mode $pl"); done
	ROWS+=("bl sleep $pl")
done
name() {
	case "$1 $2" in
	"pd adaptive") echo "Palladium, default" ;;
	"pd spin") echo "Palladium, spinning" ;;
	"pd sleep") echo "Palladium, sleeping" ;;
	*) echo "baseline (HTTP)" ;;
	esac
}

tables() {
	echo "bench/call  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)  $(nproc) CPUs  placement: $PLACEMENT  body: $BODY_SIZE B"
	echo
	echo "Latency at a low fixed rate, microseconds: h2load, one connection, $RATE requests/s evenly spaced, the"
	echo "cases alternating (n=0 with n=1 for ${LAT_SECONDS} s, 8par with 8seq for ${FANOUT_SECONDS} s): $((RATE / 2))/s each."
	echo "call = one call's round trip = latency of /call?n=1 - latency of /call?n=0 (same route and handler, no call)."
	printf '%-6s %-20s | %7s %7s %7s | %7s %7s | %8s %8s %7s\n' where side "p50 n=0" "p50 n=1" "call" \
		"p99 n=0" "p99 n=1" "p50 8par" "p50 8seq" "par/seq"
	local r
	for r in "${ROWS[@]}"; do
		# shellcheck disable=SC2086
		set -- $r
		printf '%-6s %-20s | %7s %7s %7s | %7s %7s | %8s %8s %7s\n' "$3" "$(name "$1" "$2")" \
			"$(get "$1" "$2" "$3" n=0 h2load p50)" "$(get "$1" "$2" "$3" n=1 h2load p50)" "$(rtt "$1" "$2" "$3" p50)" \
			"$(get "$1" "$2" "$3" n=0 h2load p99)" "$(get "$1" "$2" "$3" n=1 h2load p99)" \
			"$(get "$1" "$2" "$3" "n=8&mode=par" h2load p50)" "$(get "$1" "$2" "$3" "n=8&mode=seq" h2load p50)" \
			"$(fanout "$1" "$2" "$3")"
	done
	echo
	echo "Peak calls/s: requests/s of /call?n=1 under wrk -t1 -c$PEAK_CONNECTIONS for ${PEAK_SECONDS} s (one call each; one handler"
	echo "thread on both sides). CPU per call, microseconds: CPU per request of /call?n=1 - of /call?n=0,"
	echo "both at $CPU_RATE requests/s for $CPU_SECONDS s, by component: ingress (Palladium ingress | nginx"
	echo "ingress), front (engine a | the caller's sidecar), caller (callbench), back (engine b | echo's"
	echo "sidecar), callee (echo); n=1 total is the CPU per request of /call?n=1, all components."
	printf '%-6s %-20s | %8s | %7s %7s %7s %7s %7s | %8s %9s\n' where side "calls/s" \
		ingress front caller back callee "cpu/call" "n=1 total"
	for r in "${ROWS[@]}"; do
		# shellcheck disable=SC2086
		set -- $r
		printf '%-6s %-20s | %8.0f | %7s %7s %7s %7s %7s | %8s %9s\n' "$3" "$(name "$1" "$2")" \
			"$(get "$1" "$2" "$3" n=1 wrk rps)" \
			"$(cpu_call "$1" "$2" "$3" ingress)" "$(cpu_call "$1" "$2" "$3" front)" \
			"$(cpu_call "$1" "$2" "$3" caller)" "$(cpu_call "$1" "$2" "$3" back)" \
			"$(cpu_call "$1" "$2" "$3" callee)" "$(cpu_call "$1" "$2" "$3")" "$(cpu_total "$1" "$2" "$3" n=1)"
	done
	echo
	echo "Palladium / baseline, per mode (lower is better; for calls/s higher is better):"
	printf '%-6s %-10s | %10s %10s %10s | %10s\n' where mode "call p50" "p99 n=1" "cpu/call" "calls/s"
	local pl mode
	for pl in local remote; do
		for mode in $MODES; do
			printf '%-6s %-10s | %10s %10s %10s | %10s\n' "$pl" "$mode" \
				"$(calc "$(rtt pd "$mode" "$pl" p50)" "$(rtt bl sleep "$pl" p50)" / %.3f)" \
				"$(calc "$(get pd "$mode" "$pl" n=1 h2load p99)" "$(get bl sleep "$pl" n=1 h2load p99)" / %.3f)" \
				"$(calc "$(cpu_call pd "$mode" "$pl")" "$(cpu_call bl sleep "$pl")" / %.3f)" \
				"$(calc "$(get pd "$mode" "$pl" n=1 wrk rps)" "$(get bl sleep "$pl" n=1 wrk rps)" / %.2f)"
		done
	done
}

LOCAL_P50=$(calc "$(rtt pd adaptive local p50)" "$(rtt bl sleep local p50)" / %.3f)
LOCAL_CPU=$(calc "$(cpu_call pd adaptive local)" "$(cpu_call bl sleep local)" / %.3f)
REMOTE_P50=$(calc "$(rtt pd adaptive remote p50)" "$(rtt bl sleep remote p50)" / %.3f)
REMOTE_CPU=$(calc "$(cpu_call pd adaptive remote)" "$(cpu_call bl sleep remote)" / %.3f)
FANOUT=$(fanout pd adaptive remote)
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "nan") print "no data"; else if (r <= t) print "met"; else printf "missed (%.1fx too high)\n", r / t }'; }

tables >"$OUT/tables.txt"
{
	echo "# bench/call: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "The cost of a call between functions (issue 13), Palladium against the HTTP baseline"
	echo "of bench/knative with the same function code (functions/callbench.c calling"
	echo "functions/echo.c), in one run of ${ELAPSED} s. See bench/call/run --help for the method."
	echo
	echo '```'
	cat "$OUT/tables.txt"
	echo '```'
	echo
	echo "## Targets (reported, not asserted)"
	echo
	echo "Palladium with its default consumers (engine.poll adaptive, spin_us 50) against the"
	echo "baseline; the other modes are in the tables above."
	echo
	echo "| ratio | value | target | |"
	echo "|---|---|---|---|"
	echo "| local call round trip p50, Palladium / baseline | $LOCAL_P50 | <= 0.1 | $(verdict "$LOCAL_P50" 0.1) |"
	echo "| local CPU per call, Palladium / baseline | $LOCAL_CPU | <= 0.2 | $(verdict "$LOCAL_CPU" 0.2) |"
	echo "| remote call round trip p50, Palladium / baseline | $REMOTE_P50 | <= 0.3 | $(verdict "$REMOTE_P50" 0.3) |"
	echo "| remote CPU per call, Palladium / baseline | $REMOTE_CPU | <= 0.4 | $(verdict "$REMOTE_CPU" 0.4) |"
	echo "| fan-out 8 / sequential 8 (p50), Palladium, echo on the other node | $FANOUT | <= 0.4 | $(verdict "$FANOUT" 0.4) |"
	echo
	echo "## Method"
	echo
	echo "- Placement: $PLACEMENT (netns: the ingress and the clients, node a and node b each in a"
	echo "  network namespace over a bridge; loopback: 127.0.0.1/.2/.3). callbench on node a; echo"
	echo "  on node a (local) or node b (remote)."
	echo "- Palladium: palladium ingress (1 thread) + palladium engine per node, fabric tcp two-sided;"
	echo "  default = engine.poll adaptive, spin_us 50; spinning = poll fixed, spin_us $SPIN_US (every"
	echo "  consumer polls that long after each message); sleeping = spin_us 0. Each function one"
	echo "  instance with one handler thread."
	echo "- Baseline: nginx ingress -> nginx sidecar -> http-callbench (bench/knative/adapter.c, 1"
	echo "  thread) -> over a pooled keep-alive HTTP/1.1 connection -> echo's nginx sidecar ->"
	echo "  http-echo; one nginx worker each. It always sleeps (epoll, poll)."
	echo "- Latency: h2load --h1 -c1 -m1 --rps $RATE: one request at a time, evenly spaced, the"
	echo "  URLs taken in turn (n=0, n=1, n=0, ... for $LAT_SECONDS s; then 8par, 8seq, ... for"
	echo "  $FANOUT_SECONDS s), so that the cases see the same moments of the shared machine and"
	echo "  none waits behind another; nearest-rank percentiles of each case's lines of h2load's"
	echo "  per-request log. A call's round trip = latency(/call?n=1) -"
	echo "  latency(/call?n=0), from the two p50s (a difference of p99s would mean little: the"
	echo "  tails are the machine's stalls, so the p99s are shown as measured)."
	echo "- Peak calls/s: wrk -t1 -c$PEAK_CONNECTIONS for $PEAK_SECONDS s on /call?n=1."
	echo "- CPU: /call?n=0, then /call?n=1, each at $CPU_RATE requests/s for $CPU_SECONDS s (h2load, 4"
	echo "  connections); the run time of every thread of each component (the scheduler's, in ns:"
	echo "  /proc/PID/task/TID/schedstat; utime + stime are sampled at the 10 ms tick, too coarse"
	echo "  here) around the run, per request; per call = n=1 - n=0 (the same rate for both,"
	echo "  so that the part of the ingress and the sidecars, which batching makes depend on the"
	echo "  rate, cancels out). Spinning consumers' CPU includes their polling."
	echo "- Fan-out: p50 of /call?n=8&mode=par over p50 of /call?n=8&mode=seq at the fixed rate;"
	echo "  the ratio line takes the remote one: on one node, with echo's one thread, 8 sequential"
	echo "  calls cost one wake-up and 8 short handler runs, which leaves a fan-out nothing to"
	echo "  overlap."
	echo "- raw/: every h2load and wrk output, h2load's per-request logs, the cluster files, the"
	echo "  engines' stats, the nginx configurations. results.tsv: every run."
} >"$OUT/report.md"
cat "$OUT/tables.txt"
echo
echo "call: local_p50_ratio=$LOCAL_P50 local_cpu_ratio=$LOCAL_CPU remote_p50_ratio=$REMOTE_P50 remote_cpu_ratio=$REMOTE_CPU fanout_ratio=$FANOUT"
