#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The palladium command: --help on every command, clear failures on bad use.
source "$(dirname "$0")/lib.sh"
init_test

for cmd in "" up engine ingress check stats; do
	# shellcheck disable=SC2086
	out=$("$PALLADIUM" $cmd --help 2>&1)
	rc=$?
	assert_eq 0 "$rc" "palladium $cmd --help: exit status"
	assert_contains "$out" "usage: palladium" "palladium $cmd --help: usage text"
done

"$PALLADIUM" no-such-command >/dev/null 2>"$TMP/err"
rc=$?
assert_int -ne "$rc" 0 "unknown command: non-zero exit"
assert_contains "$(cat "$TMP/err")" "no-such-command" "unknown command: named in the error"

"$PALLADIUM" up >/dev/null 2>&1
assert_int -ne "$?" 0 "up without a file: non-zero exit"

# stats on a cluster that is not running: exit 1, says which node did not answer.
alloc_ports 1
yaml_common 1 >"$CFG"
cat >>"$CFG" <<YAML
tenants:
  - { name: demo, pool: 8MiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo] }
YAML
timeout $((20 * TIME_SCALE)) "$PALLADIUM" stats "$CFG" >"$TMP/stats.out" 2>&1
rc=$?
assert_eq 1 "$rc" "stats with no engine running: exit status"
assert_contains "$(cat "$TMP/stats.out")" "node a" "stats with no engine running: names the node"
exit 0
