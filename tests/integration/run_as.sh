#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tenants[].run_as when the engine runs as root: "user:group" and numeric ids are applied
# to the tenant's function processes (uid, gid, only that group, no_new_privs), a tenant
# without run_as gets its default identity (61000 + its index); an unknown user or
# group, an account that resolves to root, or two tenants on one uid stop the engine at
# start-up with a clear message and exit status 1.
source "$(dirname "$0")/lib.sh"
init_test
[[ $(id -u) == 0 ]] || skip "needs root: run_as is applied only when the engine runs as root"
need_cmd getent
nobody_uid=$(getent passwd nobody | cut -d: -f3)
nogroup=$(getent group nogroup | cut -d: -f1)
[[ -z "$nogroup" ]] && nogroup=$(getent group nobody | cut -d: -f1)
[[ -n "$nobody_uid" && -n "$nogroup" ]] || skip "needs the user nobody and a group nogroup or nobody"
nogroup_gid=$(getent group "$nogroup" | cut -d: -f3)

# TENANTS: the tenants section, one line per tenant (a, b, c); functions echo for each.
cluster_yaml() {
	yaml_common 1
	echo "tenants:"
	printf '%s\n' "${TENANTS[@]}"
	cat <<EOF
functions:
  - { name: fa, tenant: a, exec: echo, node: a }
  - { name: fb, tenant: b, exec: echo, node: a }
  - { name: fc, tenant: c, exec: echo, node: a }
routes:
  - { path: /a, tenant: a, chain: [fa], timeout: 2s }
  - { path: /b, tenant: b, chain: [fb], timeout: 2s }
  - { path: /c, tenant: c, chain: [fc], timeout: 2s }
EOF
}

status_field() {
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ +/, ""); print; exit }' "/proc/$1/status" | tr -s '\t ' ' ' | sed 's/ *$//'
}

# --- applied
TENANTS=(
	"  - { name: a, pool: 4MiB, run_as: \"nobody:$nogroup\" }"
	"  - { name: b, pool: 4MiB, run_as: \"54321:54322\" }"
	"  - { name: c, pool: 4MiB }"
)
start_cluster cluster_yaml 1
for r in a b c; do wait_ready "/$r"; done
pa=$(instance_pid fa)
pb=$(instance_pid fb)
pc=$(instance_pid fc)
assert_eq "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" "$(status_field "$pa" Uid)" "run_as nobody:$nogroup: uid"
assert_eq "$nogroup_gid $nogroup_gid $nogroup_gid $nogroup_gid" "$(status_field "$pa" Gid)" "run_as nobody:$nogroup: gid"
assert_eq "$nogroup_gid" "$(status_field "$pa" Groups)" "run_as nobody:$nogroup: only that group"
assert_eq "54321 54321 54321 54321" "$(status_field "$pb" Uid)" "run_as 54321:54322: numeric uid, no passwd entry needed"
assert_eq "54322 54322 54322 54322" "$(status_field "$pb" Gid)" "run_as 54321:54322: numeric gid"
assert_eq "61002 61002 61002 61002" "$(status_field "$pc" Uid)" "no run_as: tenants[2] runs as 61002"
for p in "$pa" "$pb" "$pc"; do
	assert_eq 1 "$(status_field "$p" NoNewPrivs)" "pid $p: no_new_privs"
done
post /a hello
assert_status 200 "tenant a's function answers as nobody"
assert_eq hello "$(resp_body)" "tenant a's answer"
stop_cluster TERM
assert_eq 0 "$UP_RC" "palladium up exit status"

# --- refused at start-up: the engine alone, in the foreground; it must exit 1 and say why
# engine_refuses WHAT MESSAGE: write the cluster file, run the engine, check.
engine_refuses() {
	local what=$1 msg=$2 rc
	alloc_ports 1
	cluster_yaml >"$CFG"
	timeout -k 5 $((30 * TIME_SCALE)) "$PALLADIUM" engine "$CFG" --node a >"$TMP/engine.out" 2>&1 </dev/null
	rc=$?
	assert_eq 1 "$rc" "$what: the engine exits 1"
	assert_contains "$(cat "$TMP/engine.out")" "$msg" "$what: the engine says why"
}

TENANTS=(
	"  - { name: a, pool: 4MiB, run_as: \"pd-no-such-user\" }"
	"  - { name: b, pool: 4MiB }"
	"  - { name: c, pool: 4MiB }"
)
engine_refuses "unknown user" 'tenant a: run_as "pd-no-such-user": no such user "pd-no-such-user" on this host'

TENANTS=(
	"  - { name: a, pool: 4MiB, run_as: \"nobody:pd-no-such-group\" }"
	"  - { name: b, pool: 4MiB }"
	"  - { name: c, pool: 4MiB }"
)
engine_refuses "unknown group" 'no such group "pd-no-such-group" on this host'

TENANTS=(
	"  - { name: a, pool: 4MiB, run_as: \"root\" }"
	"  - { name: b, pool: 4MiB }"
	"  - { name: c, pool: 4MiB }"
)
engine_refuses "run_as root" 'resolves to uid 0'

TENANTS=(
	"  - { name: a, pool: 4MiB, run_as: nobody }"
	"  - { name: b, pool: 4MiB, run_as: \"$nobody_uid\" }"
	"  - { name: c, pool: 4MiB }"
)
engine_refuses "two tenants, one uid" "tenants a and b would both run as uid $nobody_uid"

# A run_as that takes another tenant's default identity is the same collision.
TENANTS=(
	"  - { name: a, pool: 4MiB }"
	"  - { name: b, pool: 4MiB, run_as: \"61000\" }"
	"  - { name: c, pool: 4MiB }"
)
engine_refuses "run_as on another tenant's default uid" "tenants a and b would both run as uid 61000"
finish
