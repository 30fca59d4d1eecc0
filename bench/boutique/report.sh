#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/boutique/report.sh OUT PLACEMENT CONNECTIONS PAGE_SECONDS MIX_SECONDS RATE_FRACTION
#   ELAPSED PLACEMENTS PAGES: from OUT/results.tsv and OUT/raw, write OUT/report.md and
# the plots OUT/*.png (gnuplot); print the summary table on stdout, then the ratio line
# (last). Called by bench/boutique/run.
OUT=$1 NET=$2 CONN=$3 PAGE_S=$4 MIX_S=$5 FRAC=$6 ELAPSED=$7 PLS=$8 PAGES=$9
R=$OUT/results.tsv
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

get() {
	awk -F'\t' -v p="$1" -v s="$2" -v g="$3" -v k="$4" -v col="$5" '
		NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
		$1 == p && $2 == s && $3 == g && $4 == k { v = $(c[col]) }
		END { print (v == "" ? "nan" : v) }' "$R"
}
cpu_total() {
	awk -v a="$(get "$@" cpu_ingress)" -v b="$(get "$@" cpu_mid)" -v c="$(get "$@" cpu_fn)" \
		-v d="$(get "$@" cpu_redis)" 'BEGIN { printf "%.0f", a + b + c + d }'
}
rss_total() {
	awk -v a="$(get "$@" rss_ingress)" -v b="$(get "$@" rss_mid)" -v c="$(get "$@" rss_fn)" \
		-v d="$(get "$@" rss_redis)" 'BEGIN { printf "%.1f", (a + b + c + d) / 1024 }'
}
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b + 0 > 0 && a != "nan") printf f, a / b; else printf "nan" }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "nan") print "nan"; else printf "%.2f", v / 1000 }'; }
pl_name() { if [[ $1 == one ]]; then echo "one node"; else echo "two nodes"; fi; }
rps_target() { if [[ $1 == one ]]; then echo 4; else echo 2.5; fi; }
mark() { awk -v v="$1" -v t="$2" -v d="$3" 'BEGIN { if (v == "nan") print "?"; else if ((d == "ge" && v + 0 >= t) || (d == "le" && v + 0 <= t)) print "met"; else print "missed" }'; }

# the share of calls that stayed on their node
pd_local() {
	local f=$OUT/raw/calls.$1.pd.txt
	[[ -f $f ]] || { echo nan; return; }
	# one node: every call stays and calls_routed is 0; two nodes: a call to the other
	# node is routed by the caller's engine and again by the callee's (both count it)
	awk -v pl="$1" '{ s = $2; r = $4 } END { off = (pl == "one" ? r : r / 2); if (s > 0) printf "%.1f", 100 * (s - off) / s; else print "nan" }' "$f"
}
bl_local() {
	local f=$OUT/raw/calls.$1.bl.txt
	[[ -f $f ]] || { echo nan; return; }
	awk '{ if ($2 > 0) printf "%.1f", 100 * $4 / $2; else print "nan" }' "$f"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=""
[[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]] && DIRTY=" (with uncommitted changes)"

# ------------------------------------------------------------------- plots
PLOTS=""
if command -v gnuplot >/dev/null; then
	TERM_PNG=pngcairo
	gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || TERM_PNG=png
	D=$OUT/plot
	mkdir -p "$D"
	# peak RPS per page: columns Palladium / baseline for each placement
	{
		printf 'page'
		for pl in $PLS; do printf '\t"Palladium, %s"\t"baseline, %s"' "$(pl_name "$pl")" "$(pl_name "$pl")"; done
		echo
		for page in $PAGES mix; do
			printf '%s' "$page"
			for pl in $PLS; do printf '\t%s\t%s' "$(get "$pl" pd "$page" peak rps)" "$(get "$pl" bl "$page" peak rps)"; done
			echo
		done
	} >"$D/rps.dat"
	{
		printf 'page'
		for pl in $PLS; do printf '\t"Palladium, %s"\t"baseline, %s"' "$(pl_name "$pl")" "$(pl_name "$pl")"; done
		echo
		for page in $PAGES mix; do
			printf '%s' "$page"
			for pl in $PLS; do printf '\t%s\t%s' "$(ms "$(get "$pl" pd "$page" rate p50)")" "$(ms "$(get "$pl" bl "$page" rate p50)")"; done
			echo
		done
	} >"$D/p50.dat"
	# CPU per request of the mix (fixed rate) by class
	{
		echo 'setup ingress "engines / sidecars" "functions / adapters" redis'
		for pl in $PLS; do
			for side in pd bl; do
				name="Palladium"
				[[ $side == bl ]] && name="baseline"
				printf '"%s, %s"\t%s\t%s\t%s\t%s\n' "$name" "$(pl_name "$pl")" "$(get "$pl" "$side" mix rate cpu_ingress)" \
					"$(get "$pl" "$side" mix rate cpu_mid)" "$(get "$pl" "$side" mix rate cpu_fn)" "$(get "$pl" "$side" mix rate cpu_redis)"
			done
		done
	} >"$D/cpu.dat"
	ncol=$((2 * $(wc -w <<<"$PLS")))
	{
		echo "set terminal $TERM_PNG size 1100,560 font 'sans,10'"
		echo "set output '$OUT/rps.png'"
		echo "set title 'Online Boutique: peak requests/s per page and for the load generator mix (wrk -t$CONN -c$CONN)'"
		echo "set style data histograms; set style histogram clustered gap 1; set style fill solid 0.85 border -1"
		echo "set ylabel 'requests/s'; set grid ytics; set key outside bottom center horizontal; set yrange [0:*]"
		printf "plot '%s' using 2:xtic(1) title columnheader(2)" "$D/rps.dat"
		for ((c = 3; c <= ncol + 1; c++)); do printf ", '' using %d title columnheader(%d)" "$c" "$c"; done
		echo
		echo "set output '$OUT/p50.png'"
		echo "set title 'Online Boutique: p50 latency at a fixed rate ($FRAC x the lower peak, the same on both sides)'"
		echo "set ylabel 'ms'"
		printf "plot '%s' using 2:xtic(1) title columnheader(2)" "$D/p50.dat"
		for ((c = 3; c <= ncol + 1; c++)); do printf ", '' using %d title columnheader(%d)" "$c" "$c"; done
		echo
		echo "set output '$OUT/cpu.png'"
		echo "set title 'Online Boutique mix: CPU per request by component class (fixed rate)'"
		echo "set style histogram rowstacked; set boxwidth 0.6; set ylabel 'CPU-microseconds per request'; set key outside bottom center horizontal"
		echo "plot '$D/cpu.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4), '' using 5 title columnheader(5)"
	} >"$D/plots.gp"
	if gnuplot "$D/plots.gp" >"$D/gnuplot.log" 2>&1; then
		PLOTS="![peak RPS](rps.png)

![p50 at a fixed rate](p50.png)

![CPU per request](cpu.png)"
	else
		PLOTS="(gnuplot failed: see plot/gnuplot.log)"
	fi
fi

# ---------------------------------------------------------------- summary
ONE_RPS=nan TWO_RPS=nan WORST_P50=nan WORST_CPU=nan
declare -A SUM
for pl in $PLS; do
	SUM[$pl.rps]=$(ratio "$(get "$pl" pd mix peak rps)" "$(get "$pl" bl mix peak rps)")
	SUM[$pl.p50]=$(ratio "$(get "$pl" pd mix rate p50)" "$(get "$pl" bl mix rate p50)" %.3f)
	SUM[$pl.cpu]=$(ratio "$(cpu_total "$pl" pd mix rate)" "$(cpu_total "$pl" bl mix rate)" %.3f)
	[[ $pl == one ]] && ONE_RPS=${SUM[$pl.rps]}
	[[ $pl == two ]] && TWO_RPS=${SUM[$pl.rps]}
	WORST_P50=$(awk -v a="$WORST_P50" -v b="${SUM[$pl.p50]}" 'BEGIN { if (a == "nan" || b + 0 > a + 0) print b; else print a }')
	WORST_CPU=$(awk -v a="$WORST_CPU" -v b="${SUM[$pl.cpu]}" 'BEGIN { if (a == "nan" || b + 0 > a + 0) print b; else print a }')
done

summary_table() {
	echo "| mix | peak RPS Palladium | baseline | ratio (target) | p50 ms Palladium | baseline | ratio (<= 0.3) | p99 ms Palladium | baseline | CPU us/req Palladium | baseline | ratio (<= 0.35) | peak RSS MiB Palladium | baseline | calls on their node Palladium | baseline |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	for pl in $PLS; do
		echo "| $(pl_name "$pl") (rate $(get "$pl" pd mix rate rate)/s) | $(get "$pl" pd mix peak rps) | $(get "$pl" bl mix peak rps) | **${SUM[$pl.rps]}x** (>= $(rps_target "$pl"): $(mark "${SUM[$pl.rps]}" "$(rps_target "$pl")" ge)) | $(ms "$(get "$pl" pd mix rate p50)") | $(ms "$(get "$pl" bl mix rate p50)") | **${SUM[$pl.p50]}** ($(mark "${SUM[$pl.p50]}" 0.3 le)) | $(ms "$(get "$pl" pd mix rate p99)") | $(ms "$(get "$pl" bl mix rate p99)") | $(cpu_total "$pl" pd mix rate) | $(cpu_total "$pl" bl mix rate) | **${SUM[$pl.cpu]}** ($(mark "${SUM[$pl.cpu]}" 0.35 le)) | $(rss_total "$pl" pd mix peak) | $(rss_total "$pl" bl mix peak) | $(pd_local "$pl")% | $(bl_local "$pl")% |"
	done
}

page_table() {
	local pl=$1 page
	echo "| page | peak RPS Palladium | baseline | ratio | fixed rate /s | p50 ms Palladium | baseline | ratio | p99 ms Palladium | baseline | CPU us/req Palladium | baseline | ratio |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	for page in $PAGES mix; do
		echo "| $page | $(get "$pl" pd "$page" peak rps) | $(get "$pl" bl "$page" peak rps) | $(ratio "$(get "$pl" pd "$page" peak rps)" "$(get "$pl" bl "$page" peak rps)") | $(get "$pl" pd "$page" rate rate) | $(ms "$(get "$pl" pd "$page" rate p50)") | $(ms "$(get "$pl" bl "$page" rate p50)") | $(ratio "$(get "$pl" pd "$page" rate p50)" "$(get "$pl" bl "$page" rate p50)") | $(ms "$(get "$pl" pd "$page" rate p99)") | $(ms "$(get "$pl" bl "$page" rate p99)") | $(cpu_total "$pl" pd "$page" rate) | $(cpu_total "$pl" bl "$page" rate) | $(ratio "$(cpu_total "$pl" pd "$page" rate)" "$(cpu_total "$pl" bl "$page" rate)") |"
	done
}

class_table() {
	local kind=$1 pl side name
	echo "| setup | ingress | engines / sidecars | functions / adapters | redis | total | peak RSS MiB: ingress | engines / sidecars | functions / adapters | redis |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for pl in $PLS; do
		for side in pd bl; do
			name="Palladium"
			[[ $side == bl ]] && name="baseline"
			echo "| $name, $(pl_name "$pl") | $(get "$pl" $side mix "$kind" cpu_ingress) | $(get "$pl" $side mix "$kind" cpu_mid) | $(get "$pl" $side mix "$kind" cpu_fn) | $(get "$pl" $side mix "$kind" cpu_redis) | $(cpu_total "$pl" $side mix "$kind") | $(awk -v k="$(get "$pl" $side mix "$kind" rss_ingress)" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$(get "$pl" $side mix "$kind" rss_mid)" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$(get "$pl" $side mix "$kind" rss_fn)" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$(get "$pl" $side mix "$kind" rss_redis)" 'BEGIN { printf "%.1f", k / 1024 }') |"
		done
	done
}

# procs PLACEMENT SIDE KIND: "label us_per_request" of the processes of a mix run, busiest
# first (processes with the same label summed: nginx's master and worker).
procs() {
	local b=$OUT/raw/cpu.$1.$2.mix.$3 reqs
	[[ -f $b.before && -f $b.after ]] || return 0
	reqs=$(get "$1" "$2" mix "$3" reqs)
	awk -v r="$reqs" 'NR == FNR { a[$2] = $3; next } { d[$4] += $3 - ($2 in a ? a[$2] : $3) }
		END { for (l in d) if (r > 0) printf "%s %.1f\n", l, d[l] / 1e3 / r }' "$b.before" "$b.after" | sort -k2 -rn
}
proc_table() {
	local pl=$1 kind=$2
	echo "| | Palladium process | us/req | baseline process | us/req |"
	echo "|---|---|---:|---|---:|"
	local pad='NR <= 12 { print $1, $2 } END { for (i = NR; i < 12; i++) print "-", "-" }'
	paste -d' ' <(procs "$pl" pd "$kind" | awk "$pad") <(procs "$pl" bl "$kind" | awk "$pad") |
		awk '{ printf "| %d | %s | %s | %s | %s |\n", NR, $1, $2, $3, $4 }'
}

{
	echo "# bench-boutique: Online Boutique, Palladium against the HTTP + sidecar baseline"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname): $(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); commit \`$COMMIT\`$DIRTY; ${ELAPSED} s in all."
	echo
	echo "## The mix (the original load generator's weights)"
	echo
	summary_table
	echo
	echo "Targets (reported, not asserted): one node >= 4x the baseline's peak RPS, two nodes >= 2.5x; p50 <= 0.3x and CPU per request <= 0.35x in both."
	echo
	echo "## How"
	echo
	echo "- Same service code on both sides: \`apps/boutique/*.c\` and \`apps/boutique/frontend/\`, linked with libpalladium (\`build/functions/boutique-*\`) or with \`bench/knative/adapter.c\` (\`build/bench/knative/http-boutique-*\`, HTTP/1.1 on h2o; calls are HTTP requests to the callee's sidecar over pooled keep-alive connections). Same threads per function (frontend 8, checkout 4, recommendation, productcatalog, currency, cart 2, the rest 1)."
	echo "- Palladium: \`palladium ingress\` (1 thread) and one engine per node; route / = [frontend]. Baseline: nginx ingress (1 worker) -> nginx sidecar (1 worker) -> adapter, for every function."
	echo "- Placements: one node (everything on node a) and two nodes (frontend, recommendation, checkout on a; productcatalog, currency, cart, shipping, payment, email, ad on b). Network: $NET ($([[ $NET == netns ]] && echo "the client and ingress, node a and node b each in a network namespace over a bridge, MTU 9000" || echo "loopback addresses 127.0.0.1-3"))."
	echo "- Redis: one redis-server for both sides ($([[ $NET == netns ]] && echo "on the bridge, one hop from each node" || echo "on 127.0.0.4")), no persistence."
	echo "- Load: wrk -t$CONN -c$CONN with \`bench/boutique/boutique.lua\` (one session cookie per connection; every session starts on the home page). The mix: index 1, setCurrency 2, browseProduct 10, addToCart 2 (product page + add), viewCart 3, checkout 1 (product page + add + checkout), as in \`src/loadgenerator/locustfile.py\`, with its form fields and product ids. Pages alone: index (GET /), setCurrency (POST /setCurrency), browseProduct (GET /product/ID), addToCart (POST /cart only), viewCart (GET /cart, after two adds), checkout (POST /cart and POST /cart/checkout in turn: a checkout needs a cart; the RPS counts both). Each page ${PAGE_S} s, the mix ${MIX_S} s."
	echo "- Peak: closed loop (1 s warm-up first). Fixed rate: $FRAC x the lower of the two peaks, the same on both sides, each connection sending on a fixed schedule (late requests at once); p50/p99 (wrk --latency: from a request's send to its answer) and CPU per request come from this run."
	echo "- CPU per request: the run time of every thread (\`/proc/PID/task/TID/schedstat\`) of every process of a class, around the run, divided by the requests. Peak RSS: the sum of VmHWM per class over the mix's peak run (reset before it when root). The client (wrk) is not counted; it shares the CPUs."
	echo "- Calls on their node: Palladium from \`palladium stats\` around the mix's peak run: calls_started of every function against the tenant's calls_routed (a call to a function on the caller's node goes ring to ring without the engine; a call to another node is routed by both engines, so off-node calls = calls_routed / 2 with two nodes). Baseline: the requests each sidecar served (nginx stub_status) around the mix's peak run; every caller (frontend, checkout, recommendation) is on node a, so a call stayed on its node when its callee's sidecar is on node a."
	echo
	for pl in $PLS; do
		echo "## Per page, $(pl_name "$pl")"
		echo
		page_table "$pl"
		echo
	done
	echo "## CPU-microseconds per request by component class, the mix"
	echo
	echo "At the fixed rate:"
	echo
	class_table rate
	echo
	echo "At the peak:"
	echo
	class_table peak
	echo
	for pl in $PLS; do
		echo "## CPU per request by process, the mix at peak, $(pl_name "$pl") (the busiest 12 of each side)"
		echo
		proc_table "$pl" peak
		echo
	done
	echo "## Plots"
	echo
	echo "$PLOTS"
	echo
	for pl in $PLS; do
		if [[ -f $OUT/raw/profile.$pl.txt ]]; then
			echo "## Where the time goes, $(pl_name "$pl") (a target was missed)"
			echo
			echo '```'
			cat "$OUT/raw/profile.$pl.txt"
			echo '```'
			echo
		fi
	done
	if awk -F'\t' 'NR > 1 && $NF != "none" { f = 1 } END { exit !f }' "$R"; then
		echo "## Errors"
		echo
		awk -F'\t' 'NR > 1 && $NF != "none" { print "- " $1 " " $2 " " $3 " " $4 ": " $NF }' "$R"
		echo
	fi
	echo "## Files"
	echo
	echo "\`results.tsv\` (every run), \`raw/\`: wrk outputs, cluster files, nginx files, \`palladium stats\` and sidecar counts around the mix, per-process CPU before/after each run, profiles, the Lua script."
} >"$OUT/report.md"

summary_table | sed 's/\*\*//g'
echo "boutique: one_node_rps_ratio=$ONE_RPS two_node_rps_ratio=$TWO_RPS p50_ratio=$WORST_P50 cpu_ratio=$WORST_CPU"
