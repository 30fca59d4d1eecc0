#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/knative/report.sh OUT QUICK PLACEMENT DURATION CONNECTIONS RATE_FRACTION PROFILED
#   HEAD_CHAIN HEAD_SIZE ELAPSED: from OUT/results.tsv (written by bench/knative/run), print
# the summary table on stdout and write OUT/report.md and the plots OUT/*.png (gnuplot).
# Run by bench/knative/run; can be rerun by hand on a results folder.
set -uo pipefail
export LC_ALL=C
OUT=$1 QUICK=$2 PLACEMENT=$3 DURATION=$4 CONNECTIONS=$5 RATE_FRACTION=$6 PROFILED=$7
HC=$8 HS=$9 ELAPSED=${10}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
R=$OUT/results.tsv
[[ -s "$R" ]] || { echo "report.sh: no $R" >&2; exit 1; }

# get SIDE TOOL CHAIN SIZE COLUMN
get() {
	awk -F'\t' -v s="$1" -v t="$2" -v n="$3" -v z="$4" -v col="$5" '
		NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
		$1 == s && $2 == t && $3 == n && $4 == z { v = $(c[col]) }
		END { print (v == "" ? "nan" : v) }' "$R"
}
cpu_tot() { awk -v a="$(get "$@" cpu_ing)" -v b="$(get "$@" cpu_mid)" -v c="$(get "$@" cpu_fn)" 'BEGIN { printf "%.1f", a + b + c }'; }
cpu_dp() { awk -v a="$(get "$@" cpu_ing)" -v b="$(get "$@" cpu_mid)" 'BEGIN { printf "%.1f", a + b }'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b + 0 > 0 && a != "nan") printf f, a / b; else print "nan" }'; }
ms() { awk -v u="$1" 'BEGIN { if (u == "nan") print "nan"; else printf "%.2f", u / 1000 }'; }
size_h() { case $1 in 64) echo "64 B" ;; 4096) echo "4 KiB" ;; 65536) echo "64 KiB" ;; *) echo "$1 B" ;; esac; }

CHAINS=$(awk -F'\t' 'NR > 1 && $2 == "wrk.ts" { print $3 }' "$R" | sort -nu | tr '\n' ' ')
SIZES=$(awk -F'\t' 'NR > 1 && $2 == "wrk.ts" { print $4 }' "$R" | sort -nu | tr '\n' ' ')

# ------------------------------------------------------------------ summary table
summary() {
	printf '%-5s %-6s | %9s %9s %6s | %7s %9s %9s %9s %9s %6s | %8s %8s %6s\n' \
		chain size "RPS pd" "RPS base" "x" "rate" "p50 pd" "p50 base" "p99 pd" "p99 base" "x p50" \
		"CPU pd" "CPU base" "x cpu"
	printf '%-5s %-6s | %9s %9s %6s | %7s %9s %9s %9s %9s %6s | %8s %8s %6s\n' \
		"" "" "wrk" "wrk" "" "req/s" "ms" "ms" "ms" "ms" "" "us/req" "us/req" ""
	local n s
	for n in $CHAINS; do
		for s in $SIZES; do
			local a b pa pb qa qb ca cb
			a=$(get pd wrk.ts "$n" "$s" rps)
			b=$(get bl wrk.ts "$n" "$s" rps)
			pa=$(get pd h2load.ts "$n" "$s" p50)
			pb=$(get bl h2load.ts "$n" "$s" p50)
			qa=$(get pd h2load.ts "$n" "$s" p99)
			qb=$(get bl h2load.ts "$n" "$s" p99)
			ca=$(cpu_tot pd wrk.ts "$n" "$s")
			cb=$(cpu_tot bl wrk.ts "$n" "$s")
			printf '%-5s %-6s | %9.0f %9.0f %6s | %7s %9s %9s %9s %9s %6s | %8s %8s %6s\n' \
				"$n" "$(size_h "$s" | tr -d ' ')" "$a" "$b" "$(div "$a" "$b")" "$(get pd h2load.ts "$n" "$s" rate)" \
				"$(ms "$pa")" "$(ms "$pb")" "$(ms "$qa")" "$(ms "$qb")" "$(div "$pa" "$pb" %.3f)" \
				"$ca" "$cb" "$(div "$ca" "$cb" %.3f)"
		done
	done
}
summary >"$OUT/summary.txt"
cat "$OUT/summary.txt"

# -------------------------------------------------------------------- headline
A_RPS=$(get pd wrk.ts "$HC" "$HS" rps)
B_RPS=$(get bl wrk.ts "$HC" "$HS" rps)
A_P50=$(get pd h2load.ts "$HC" "$HS" p50)
B_P50=$(get bl h2load.ts "$HC" "$HS" p50)
A_CPU=$(cpu_tot pd wrk.ts "$HC" "$HS")
B_CPU=$(cpu_tot bl wrk.ts "$HC" "$HS")
A_DP=$(cpu_dp pd wrk.ts "$HC" "$HS")
B_DP=$(cpu_dp bl wrk.ts "$HC" "$HS")
RPS_X=$(div "$A_RPS" "$B_RPS")
P50_X=$(div "$A_P50" "$B_P50" %.3f)
CPU_X=$(div "$A_CPU" "$B_CPU" %.3f)
DP_X=$(div "$A_DP" "$B_DP" %.3f)
verdict_ge() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "nan") print "no data"; else if (r >= t) print "**met**"; else printf "**missed**: %.2fx of the %gx target (%.1fx short)\n", r, t, t / r }'; }
verdict_le() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "nan") print "no data"; else if (r <= t) print "**met**"; else printf "**missed**: %.3f against <= %g (%.1fx too high)\n", r, t, r / t }'; }

# ------------------------------------------------------------------------ plots
PLOTS=""
if command -v gnuplot >/dev/null; then
	D=$OUT/plot
	mkdir -p "$D"
	for side in pd bl; do
		for s in $SIZES; do
			for n in $CHAINS; do
				echo "$n $(get $side wrk.ts "$n" "$s" rps) $(ms "$(get $side h2load.ts "$n" "$s" p50)") $(ms "$(get $side h2load.ts "$n" "$s" p99)")"
			done >"$D/$side.$s.dat"
		done
	done
	: >"$D/cpu.dat"
	for n in $CHAINS; do
		for side in pd bl; do
			lab="Palladium"
			[[ $side == bl ]] && lab="baseline"
			echo "\"$lab $n\" $(get $side wrk.ts "$n" "$HS" cpu_ing) $(get $side wrk.ts "$n" "$HS" cpu_mid) $(get $side wrk.ts "$n" "$HS" cpu_fn)" >>"$D/cpu.dat"
		done
	done
	npts=$(wc -w <<<"$CHAINS")
	# pngcairo where gnuplot has it (Debian's gnuplot-nox does), else libgd's png
	TERM_PNG=pngcairo
	gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || TERM_PNG=png
	{
		echo "set terminal $TERM_PNG size 1000,600 font 'sans,10'"
		echo "set grid; set key outside right; set xlabel 'chain length (functions)'; set xtics ($(echo $CHAINS | sed 's/ /, /g'))"
		echo "set logscale y"
		echo "set output '$OUT/rps.png'"
		echo "set title 'Peak RPS (wrk -t1 -c$CONNECTIONS, closed loop)'; set ylabel 'requests/s'"
		echo "set xrange [0:11]"
		printf "plot "
		sep=""
		lc=1
		for s in $SIZES; do
			printf "%s'%s' u 1:2 w lp lw 2 lc %d pt 7 t 'Palladium %s', '%s' u 1:2 w lp lw 2 lc %d pt 5 dt 2 t 'baseline %s'" \
				"$sep" "$D/pd.$s.dat" "$lc" "$(size_h "$s")" "$D/bl.$s.dat" "$lc" "$(size_h "$s")"
			sep=", "
			lc=$((lc + 1))
		done
		echo
		echo "set output '$OUT/latency.png'"
		echo "set terminal $TERM_PNG size 1400,500 font 'sans,10'"
		echo "set multiplot layout 1,$(wc -w <<<"$SIZES") title 'Latency at a fixed rate (h2load --h1 -c$CONNECTIONS --rps, $RATE_FRACTION x the lower peak; same rate both sides)'"
		echo "set key top left inside; set ylabel 'ms'"
		for s in $SIZES; do
			echo "set title '$(size_h "$s")'"
			echo "plot '$D/pd.$s.dat' u 1:3 w lp lw 2 lc 1 pt 7 t 'Palladium p50', '' u 1:4 w lp lw 2 lc 1 pt 6 dt 3 t 'Palladium p99', '$D/bl.$s.dat' u 1:3 w lp lw 2 lc 2 pt 5 t 'baseline p50', '' u 1:4 w lp lw 2 lc 2 pt 4 dt 3 t 'baseline p99'"
		done
		echo "unset multiplot"
		echo "set terminal $TERM_PNG size 1000,600 font 'sans,10'"
		echo "set output '$OUT/cpu.png'"
		echo "unset logscale y; set autoscale x; set xtics auto; set xlabel ''; set key outside right"
		echo "set title 'CPU per request by component ($(size_h "$HS"), wrk peak-load runs)'; set ylabel 'CPU microseconds per request'"
		echo "set style data histograms; set style histogram rowstacked; set style fill solid 0.8 border -1; set boxwidth 0.7; set xtics rotate by -30"
		echo "plot '$D/cpu.dat' u 2:xtic(1) t 'ingress (Palladium ingress / nginx)', '' u 3 t 'engines / sidecars', '' u 4 t 'functions / adapters'"
	} >"$D/plots.gp"
	if ((npts >= 1)) && gnuplot "$D/plots.gp" >"$D/gnuplot.log" 2>&1; then
		PLOTS="![RPS against chain length](rps.png)

![p50 and p99 against chain length](latency.png)

![CPU per request by component](cpu.png)"
	else
		PLOTS="(gnuplot failed: see plot/gnuplot.log)"
	fi
fi

# --------------------------------------------------------------- engine per hop
# hops per request of a chain of N: ingress -> f1, f_i -> f_i+1 (N - 1), f_N -> ingress.
hop_lines() {
	local tag=$1 name=$2 mid hops
	mid=$(get pd "wrk.$tag" "$HC" "$HS" cpu_mid)
	[[ "$mid" == nan ]] && return
	hops=$((HC + 1))
	awk -v m="$mid" -v h="$hops" -v name="$name" -v n="$HC" 'BEGIN {
		us = m / h
		printf "| %s | %.1f | %.2f | %.0f | %.0f |\n", name, m, us, 1e6 / us, 2e6 / (3 * us)
	}'
}

# -------------------------------------------------------------------- report.md
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo " plus uncommitted changes")
{
	echo "# Palladium vs HTTP + sidecars (Knative-style) — $(basename "$OUT")"
	echo
	if ((QUICK)); then
		echo "Quick run (\`make bench-quick\`): the headline case only (chain of $HC across 2 nodes, $(size_h "$HS")). Run time ${ELAPSED} s."
	else
		echo "Full run (\`make bench\`): chains $CHAINS× payloads $(for s in $SIZES; do printf '%s, ' "$(size_h "$s")"; done | sed 's/, $//'). Run time ${ELAPSED} s."
	fi
	echo
	echo "## Environment"
	echo
	echo "- $(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); commit \`$COMMIT\`$DIRTY"
	if [[ $PLACEMENT == netns ]]; then
		echo "- Placement: **network namespaces** (run as root): one for the ingress and the client (10.213.0.1), one per node (a 10.213.0.2, b 10.213.0.3), joined by veth pairs to a bridge. Both sides use the same namespaces, addresses and placement; traffic between components crosses veth devices and a bridge."
	else
		echo "- Placement: **loopback** (not root, or NETNS=0): ingress 127.0.0.1, node a 127.0.0.2, node b 127.0.0.3, all on one loopback device; both sides use the same addresses."
	fi
	echo "- Tools: $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }'), $(h2load --version 2>&1 | head -n1), $(nginx -v 2>&1 | sed 's/nginx version: //'), Palladium fabric provider tcp"
	echo "- Everything (client, ingress, engines/sidecars, functions/adapters) shares the $(nproc) CPUs; nothing is pinned. No artificial delay anywhere."
	echo
	echo "## Summary"
	echo
	echo "RPS: wrk closed loop (-t1 -c$CONNECTIONS, ${DURATION} s). Latency: h2load at a fixed rate (the \`rate\` column, the same for both sides). CPU: all components except the client, microseconds of CPU per request, in the wrk run. \`x\` columns are Palladium / baseline."
	echo
	echo '```'
	cat "$OUT/summary.txt"
	echo '```'
	echo
	echo "## Targets (headline: chain of $HC across 2 nodes, $(size_h "$HS"))"
	echo
	echo "Ratios are Palladium / baseline, from the same run: higher is better for RPS, lower is better for p50 and CPU."
	echo
	echo "| | Palladium | baseline | ratio | target | |"
	echo "|---|---:|---:|---:|---:|---|"
	printf '| RPS (wrk) | %.0f | %.0f | %s | >= 5 | %s |\n' "$A_RPS" "$B_RPS" "$RPS_X" "$(verdict_ge "$RPS_X" 5)"
	printf '| p50 (h2load, %s req/s) | %s ms | %s ms | %s | <= 0.2 | %s |\n' "$(get pd h2load.ts "$HC" "$HS" rate)" "$(ms "$A_P50")" "$(ms "$B_P50")" "$P50_X" "$(verdict_le "$P50_X" 0.2)"
	printf '| CPU per request, all components (wrk) | %s us | %s us | %s | <= 0.2 | %s |\n' "$A_CPU" "$B_CPU" "$CPU_X" "$(verdict_le "$CPU_X" 0.2)"
	printf '| CPU per request, ingress + engines vs ingress + sidecars | %s us | %s us | %s | (<= 0.2) | %s |\n' "$A_DP" "$B_DP" "$DP_X" "$(verdict_le "$DP_X" 0.2)"
	echo
	echo '```'
	echo "ratio rps=$RPS_X p50=$P50_X cpu=$CPU_X"
	echo '```'
	echo
	echo "**Data-plane CPU** (the \`cpu\` ratio) is the CPU time of every process of a side except the client (Palladium: ingress + both engines + the function processes; baseline: nginx ingress + every sidecar nginx + every adapter), summed from \`/proc/PID/stat\` (utime + stime, all threads) over the measured window, divided by the requests completed in it. It counts the functions/adapters too, because in the baseline the adapter does the HTTP client and server work of each hop; the second line leaves functions and adapters out (ingress + engines against ingress + sidecars)."
	echo
	if ((!QUICK)); then
		echo "## Plots"
		echo
		echo "$PLOTS"
		echo
	fi
	echo "## All runs"
	echo
	echo "CPU in microseconds per request by class (ingress; engines or sidecars; functions or adapters); RSS: sum of the peak RSS (VmHWM, reset before each run when root) of the class's processes, MiB (shared memory, e.g. Palladium's tenant pool, counts in every process that touched it); TCP retrans: segments retransmitted during the run in all namespaces (a retransmission costs at least the 200 ms minimum RTO: it shows in p99). \`ts\`/\`os\`: Palladium two-sided/one-sided."
	echo
	echo "| side | tool | chain | size | rate | RPS | p50 ms | p90 ms | p99 ms | requests | CPU ing | CPU eng/sc | CPU fn | CPU total | RSS ing | RSS eng/sc | RSS fn | TCP retrans | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	awk -F'\t' 'NR > 1 {
		side = ($1 == "pd") ? "Palladium" : "baseline"
		printf "| %s | %s | %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n",
			side, $2, $3, $4, ($5 > 0 ? $5 : "-"), $6, $7 / 1000, $8 / 1000, $9 / 1000, $10, $11, $12, $13, $11 + $12 + $13,
			$14 / 1024, $15 / 1024, $16 / 1024, $18, $17 }' "$R"
	echo
	if ((!QUICK)); then
		echo "## Palladium two-sided vs one-sided (headline case)"
		echo
		echo "| primitive | RPS (wrk) | p50 ms (h2load) | p99 ms (h2load) | CPU us/req | engine CPU us/req |"
		echo "|---|---:|---:|---:|---:|---:|"
		for t in ts os; do
			name=two-sided
			[[ $t == os ]] && name=one-sided
			printf '| %s | %.0f | %s | %s | %s | %s |\n' "$name" "$(get pd "wrk.$t" "$HC" "$HS" rps)" \
				"$(ms "$(get pd "h2load.$t" "$HC" "$HS" p50)")" "$(ms "$(get pd "h2load.$t" "$HC" "$HS" p99)")" \
				"$(cpu_tot pd "wrk.$t" "$HC" "$HS")" "$(get pd "wrk.$t" "$HC" "$HS" cpu_mid)"
		done
		echo
	fi
	echo "## Engine CPU per hop"
	echo
	echo "A chain of $HC has $((HC + 1)) hops per request (ingress -> f1, $((HC - 1)) function -> function hops, all across nodes, f$HC -> ingress). Engine CPU per hop = CPU of both engines in the headline wrk run / (requests x $((HC + 1))). It includes the engines' polling (\`engine.spin_us\` 50, the default) and is measured with the engines sharing $(nproc) CPUs with everything else."
	echo
	echo "| primitive | engine CPU us/request (both engines) | engine CPU us/hop | hops/s per core (this CPU) | hops/s on 2 DPU cores (assumed 3x slower) |"
	echo "|---|---:|---:|---:|---:|"
	hop_lines ts two-sided
	((QUICK)) || hop_lines os one-sided
	echo
	echo "**DPU assumption:** a DPU Arm core (e.g. BlueField-2's Cortex-A72 at 2.5 GHz) is taken to be **3x slower** than one core of this machine for this code (branchy, cache-bound, no SIMD), and the engine's work to spread over 2 such cores with no loss. Then an engine on 2 DPU cores handles 2 / (3 x us/hop) million hops per second: the last column. Divided by $((HC + 1)) hops, that is the request rate of chain-$HC requests one such engine could carry if it were the only limit."
	echo
	if [[ -n "$PROFILED" && -s "$OUT/raw/profile.txt" ]]; then
		echo "## Where the time goes (profile)"
		echo
		echo "perf during an extra headline Palladium wrk run (not one of the measured runs): first the share of each process of the whole machine, then the symbols of the hottest Palladium component ($PROFILED) by self time."
		echo
		echo '```'
		cat "$OUT/raw/profile.txt"
		echo '```'
		echo
		kern=$(awk '/by shared object/ { f = 1; next } f && /kernel.kallsyms/ { print $1; exit }' "$OUT/raw/profile.txt")
		printf 'Reading: in the headline wrk run Palladium spent %s us of CPU per request in the ingress, %s us in the two engines and %s us in the %s functions. The baseline spent %s us in nginx, %s us in the sidecars and %s us in the adapters. %s of the samples of the hottest Palladium component (%s) are in the kernel: with the libfabric `tcp` provider every cross-node hop is a kernel TCP send and receive (over veth and a bridge here), and every hand-over between engine and function is a wake-up (eventfd, scheduler, `sched_yield` of spinning consumers). On an RDMA NIC (`verbs`) the send and receive leave the host CPU; this machine cannot show that.\n\n' \
			"$(get pd wrk.ts "$HC" "$HS" cpu_ing)" "$(get pd wrk.ts "$HC" "$HS" cpu_mid)" "$(get pd wrk.ts "$HC" "$HS" cpu_fn)" "$HC" "$(get bl wrk.ts "$HC" "$HS" cpu_ing)" "$(get bl wrk.ts "$HC" "$HS" cpu_mid)" "$(get bl wrk.ts "$HC" "$HS" cpu_fn)" "${kern:-?}" "$PROFILED"
	fi
	echo "## Method"
	echo
	echo "- **Palladium:** one tenant, functions \`cN_f1..cN_fN\` for N in 1, 3, 10 (\`functions/pass.c\`: forwards its request unchanged, zero copy), alternating nodes a, b, a, ...; route \`/chainN\` = [cN_f1, ..., cN_fN]; buffer_size 128 KiB, 1 handler thread per function, engine defaults (\`spin_us\` 50). \`palladium ingress\` (1 thread) in the ingress namespace, \`palladium engine --node a|b\` in the node namespaces, one cluster key. Cluster file: \`raw/cluster.yaml\`."
	echo "- **Baseline:** the same functions in the same places. Each function instance is the adapter \`build/bench/knative/http-pass\` (h2o, linked with the same handler code as \`functions/pass.c\`, 1 handler thread) behind its own nginx sidecar (1 worker: the stand-in for Knative's queue-proxy; keep-alive upstream, \`proxy_http_version 1.1\`, bodies and responses kept in memory, no access log). The ingress is nginx with 1 worker (like the 1-thread Palladium ingress) proxying \`/chainN\` to the sidecar of cN_f1. Each hop is an HTTP/1.1 keep-alive POST over kernel TCP from one adapter to the next function's sidecar; the last function's response travels back along the chain. Configurations: \`raw/nginx-ingress.conf\`, \`raw/nginx-sidecar-*.conf\`."
	echo "- **Checks before measuring:** every route of both sides returns each payload unchanged (byte-compared)."
	echo "- **Clients** run in the ingress namespace. wrk: \`-t1 -c$CONNECTIONS -d${DURATION}s --latency\`, POST of the payload, after a 1 s unmeasured warm-up. h2load: \`--h1 -c$CONNECTIONS -m1 --rps R/$CONNECTIONS -n R*$DURATION -r 1 --rate-period max(1,1000/R)ms -d BODY\` after a 1 s warm-up (the connections open one after the other, so that their per-connection request timers are spread over the interval instead of firing in bursts of $CONNECTIONS); R (the \`rate\` column) = $RATE_FRACTION x the lower of the two sides' wrk peaks for that case, rounded down to a multiple of $CONNECTIONS, the same for both sides; p50/p90/p99 from h2load's per-request log (successful requests). h2load times each request from when it is sent and holds at most one request per connection in flight; at half the peak rate a request is rarely held back, so coordinated omission stays small, but it is not a strict open-loop generator."
	echo "- **CPU** per class from \`/proc/PID/stat\` (fields 14 + 15, $(getconf CLK_TCK) ticks/s) of every process (functions found as the engines' children), sampled right before and after each measured window. **Peak RSS**: VmHWM from \`/proc/PID/status\`."
	echo "- Both sides run at the same time (idle when not measured: Palladium's idle cluster uses < 1% of a core, see bench/echo); runs alternate Palladium, baseline for each case."
	echo
	echo "## Rerun"
	echo
	echo '```sh'
	echo "make bench          # all cases (<= 15 min), this report in bench/results/<UTC timestamp>/"
	echo "make bench-quick    # the headline case only (<= 3 min)"
	echo "DURATION=10 PROFILE=1 bench/knative/run --quick   # knobs: DURATION CONNECTIONS RATE_FRACTION NETNS PROFILE KEEP_TMP"
	echo '```'
	echo
	echo "Raw outputs of every wrk and h2load run (h2load's per-request logs compressed), engine counters (\`palladium stats\`) and configurations: \`raw/\`; the table as TSV: \`results.tsv\`."
} >"$OUT/report.md"
