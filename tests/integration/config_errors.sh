#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Broken cluster files: `palladium check` and `palladium up` print FILE:LINE:COL errors
# pointing at the right line, exit 1, and start nothing. A good file passes.
source "$(dirname "$0")/lib.sh"
init_test

alloc_ports 1

good_yaml() {
	yaml_common 1
	cat <<EOF
tenants:
  - { name: demo, pool: 8MiB, buffer_size: 16KiB }
functions:
  - { name: echo, tenant: demo, exec: echo, node: a }
  - { name: upper, tenant: demo, exec: upper, node: a }
routes:
  - { path: /echo, tenant: demo, chain: [echo], timeout: 2s }
EOF
}

# The good file's lines, numbered, so that each broken variant names its line exactly.
good_yaml >"$TMP/good.yaml"
line_of() { grep -n -- "$1" "$TMP/good.yaml" | head -1 | cut -d: -f1; }

# expect_error NAME EXPECTED_LINE NEEDLE: `palladium check NAME.yaml` exits 1 and stderr
# has NAME.yaml:EXPECTED_LINE:COL: error: ... (and NEEDLE in that message, if given).
expect_error() {
	local f=$TMP/$1.yaml line=$2 needle=${3:-}
	"$PALLADIUM" check "$f" >"$TMP/$1.out" 2>"$TMP/$1.err"
	local rc=$?
	[[ $rc -eq 1 ]] || fail "$1: palladium check exit status: expected 1, got $rc (stderr: $(head -c 400 "$TMP/$1.err"))"
	local hit
	hit=$(grep -E "^$f:$line:[0-9]+: error: " "$TMP/$1.err" | head -1)
	[[ -n "$hit" ]] || fail "$1: expected an error at $f:$line:COL, got: $(cat "$TMP/$1.err")"
	if [[ -n "$needle" ]]; then
		grep -E "^$f:$line:[0-9]+: error: " "$TMP/$1.err" | grep -qi -- "$needle" ||
			fail "$1: the error at line $line does not mention '$needle': $(cat "$TMP/$1.err")"
	fi
	pass "$1: exit 1, ${hit#"$TMP/"}"
}

# --- a good file
"$PALLADIUM" check "$TMP/good.yaml" >"$TMP/good.out" 2>"$TMP/good.err"
rc=$?
[[ $rc -eq 0 ]] || fail "good file: palladium check exit status $rc: $(cat "$TMP/good.err")"
pass "good file: palladium check exits 0 ($(head -1 "$TMP/good.out"))"

# --- YAML syntax error: a mapping value where none may be
l=$(line_of 'tenants:')
sed "$((l + 1))s/.*/  - { name: demo, pool: 8MiB: oops }/" "$TMP/good.yaml" >"$TMP/syntax.yaml"
expect_error syntax $((l + 1))

# --- YAML syntax error: bad indentation
sed "s/^  address: \"127.0.0.1\"/ address: \"127.0.0.1\"/" "$TMP/good.yaml" >"$TMP/indent.yaml"
l=$(grep -n '^ address:' "$TMP/indent.yaml" | cut -d: -f1)
[[ -n "$l" ]] || fail "indent.yaml: could not build the broken file"
expect_error indent "$l"

# --- unknown key
l=$(line_of 'name: upper')
sed "${l}s/node: a }/node: a, colour: blue }/" "$TMP/good.yaml" >"$TMP/unknown_key.yaml"
expect_error unknown_key "$l" colour

# --- unknown top-level section
{ cat "$TMP/good.yaml"; echo "extras: { x: 1 }"; } >"$TMP/unknown_section.yaml"
expect_error unknown_section "$(wc -l <"$TMP/unknown_section.yaml")" extras

# --- a chain naming an unknown function
l=$(line_of 'path: /echo')
sed "${l}s/chain: \[echo\]/chain: [echo, nosuchfn]/" "$TMP/good.yaml" >"$TMP/chain.yaml"
expect_error chain "$l" nosuchfn

# --- functions[].calls: a list of the tenant's functions (itself included) passes; an
# unknown name is refused at its line
l=$(line_of 'name: echo')
sed "${l}s/node: a }/node: a, calls: [upper, echo] }/" "$TMP/good.yaml" >"$TMP/calls_ok.yaml"
grep -q 'calls: \[upper, echo\]' "$TMP/calls_ok.yaml" || fail "calls_ok.yaml: could not build the file"
"$PALLADIUM" check "$TMP/calls_ok.yaml" >"$TMP/calls_ok.out" 2>"$TMP/calls_ok.err"
rc=$?
[[ $rc -eq 0 ]] || fail "calls: palladium check exit status $rc: $(cat "$TMP/calls_ok.err")"
pass "calls: a valid list passes palladium check"
sed "${l}s/node: a }/node: a, calls: [upper, nosuchfn] }/" "$TMP/good.yaml" >"$TMP/calls.yaml"
expect_error calls "$l" 'functions\[0\]\.calls\[1\]: unknown function "nosuchfn"'

# --- duplicate function name
l=$(line_of 'name: upper')
sed "${l}s/name: upper/name: echo/" "$TMP/good.yaml" >"$TMP/dup.yaml"
expect_error dup "$l" echo

# --- bad size
l=$(line_of 'name: demo')
sed "${l}s/pool: 8MiB/pool: 8 parsecs/" "$TMP/good.yaml" >"$TMP/size.yaml"
expect_error size "$l" parsecs

# --- bad duration
l=$(line_of 'path: /echo')
sed "${l}s/timeout: 2s/timeout: soon/" "$TMP/good.yaml" >"$TMP/duration.yaml"
expect_error duration "$l" soon

# --- two errors in one file: both reported
l1=$(line_of 'name: demo')
l2=$(line_of 'path: /echo')
sed -e "${l1}s/pool: 8MiB/pool: 8 parsecs/" -e "${l2}s/chain: \[echo\]/chain: [nosuchfn]/" \
	"$TMP/good.yaml" >"$TMP/two.yaml"
expect_error two "$l1" parsecs
grep -qE "^$TMP/two.yaml:$l2:[0-9]+: error: .*nosuchfn" "$TMP/two.err" ||
	fail "two errors: the second one (line $l2) is not reported: $(cat "$TMP/two.err")"
pass "two errors: both reported"

# --- a file that does not exist
"$PALLADIUM" check "$TMP/missing.yaml" >/dev/null 2>"$TMP/missing.err"
assert_eq 1 "$?" "missing file: palladium check exit status"
assert_contains "$(cat "$TMP/missing.err")" "$TMP/missing.yaml" "missing file: the error names the file"

# --- not a regular file: refused at once with the path and what it is, never waited on
# (a FIFO with no writer blocked open() forever; one with a silent writer, read()).
# Every command that reads the cluster file shares the loader.
mkfifo "$TMP/fifo.yaml" || fail "mkfifo"
not_regular() {
	local what=$1 kind=$2
	shift 2
	timeout $((10 * TIME_SCALE)) "$PALLADIUM" "$@" >"$TMP/notreg.out" 2>"$TMP/notreg.err" </dev/null
	local rc=$?
	assert_eq 1 "$rc" "palladium $* ($what): exit status, at once (timeout would give 124)"
	assert_contains "$(cat "$TMP/notreg.err")" "${!#}: error: cannot read: not a regular file ($kind)" \
		"palladium $* ($what): says the file is $kind"
}
not_regular "FIFO, no writer" "a FIFO" check "$TMP/fifo.yaml"
not_regular "FIFO, no writer" "a FIFO" up "$TMP/fifo.yaml"
not_regular "FIFO, no writer" "a FIFO" engine --node a "$TMP/fifo.yaml"
not_regular "FIFO, no writer" "a FIFO" ingress "$TMP/fifo.yaml"
not_regular "FIFO, no writer" "a FIFO" stats "$TMP/fifo.yaml"
# A writer that holds the FIFO open and never writes (its pid recorded, stopped below).
sleep 600 >"$TMP/fifo.yaml" &
fifo_writer=$!
BG_PIDS+=("$fifo_writer")
not_regular "FIFO with a silent writer" "a FIFO" check "$TMP/fifo.yaml"
kill "$fifo_writer" 2>/dev/null
wait "$fifo_writer" 2>/dev/null
not_regular "character device" "a character device" check /dev/null

# --- `palladium up` on a broken file: exit 1, nothing started, no listener
timeout $((20 * TIME_SCALE)) setsid "$PALLADIUM" up "$TMP/chain.yaml" >"$TMP/up_broken.out" 2>"$TMP/up_broken.err" </dev/null
rc=$?
assert_eq 1 "$rc" "palladium up on a broken file: exit status"
grep -qE "^$TMP/chain.yaml:[0-9]+:[0-9]+: error: " "$TMP/up_broken.err" ||
	fail "palladium up on a broken file: no FILE:LINE:COL error: $(cat "$TMP/up_broken.err")"
pass "palladium up on a broken file: prints FILE:LINE:COL"
for p in "$HTTP_PORT" "$ADMIN_PORT" "${NODE_PORTS[0]}"; do
	port_listening "$p" && fail "palladium up on a broken file left a listener on port $p"
done
pass "palladium up on a broken file: no listener on its ports"
# Nothing still runs with the broken file on its command line.
left=""
for d in /proc/[0-9]*; do
	[[ -r $d/cmdline ]] || continue
	tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF "$TMP/chain.yaml" && left+=" ${d#/proc/}"
done
[[ -z "$left" ]] || fail "palladium up on a broken file left processes:$left"
pass "palladium up on a broken file: no process left"
exit 0
