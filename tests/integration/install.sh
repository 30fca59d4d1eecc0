#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make install DESTDIR=...` installs palladium, libpalladium with its header and
# palladium.pc, the example functions and cluster files, the docs and the systemd units.
# A function written outside the tree builds with `pkg-config --cflags --libs palladium`
# against the installed header and library only, links nothing of the config loader
# (libcyaml, libyaml), and serves requests in a cluster run by the installed palladium.
# The systemd units pass `systemd-analyze verify` (that part is skipped, with a message,
# where systemd-analyze is missing).
source "$(dirname "$0")/lib.sh"
init_test
need_cmd make meson cc pkg-config readelf ldd

BUILD_DIR=$(dirname "$PALLADIUM")
ROOT=$TMP/root
make -C "$SOURCE_ROOT" install BUILD="$BUILD_DIR" DESTDIR="$ROOT" >"$TMP/install.log" 2>&1 ||
	fail "make install DESTDIR=$ROOT: $(tail -n 20 "$TMP/install.log")"
pass "make install DESTDIR=\$TMP/root"

# Where things went: the prefix and libdir come from the installed palladium.pc.
mapfile -t pcs < <(find "$ROOT" -name palladium.pc)
assert_eq 1 "${#pcs[@]}" "one palladium.pc installed"
pcdir=$(dirname "${pcs[0]}")
prefix=$(sed -n 's/^prefix=//p' "${pcs[0]}")
[[ "$prefix" == /* ]] || fail "palladium.pc: prefix '$prefix' is not absolute"
P=$ROOT$prefix
for f in bin/palladium include/palladium/function.h \
	libexec/palladium/functions/echo libexec/palladium/functions/upper \
	share/palladium/examples/quickstart.yaml share/palladium/examples/two-node.yaml \
	share/doc/palladium/deploy.md share/doc/palladium/functions.md \
	lib/systemd/system/palladium-engine@.service lib/systemd/system/palladium-ingress.service; do
	[[ -e "$P/$f" ]] || fail "not installed: \$prefix/$f (installed: $(cd "$ROOT" && find . -type f | head -40))"
done
pass "binary, header, example functions and cluster files, docs and systemd units installed"
cmp -s "$SOURCE_ROOT/include/palladium/function.h" "$P/include/palladium/function.h" ||
	fail "the installed function.h differs from include/palladium/function.h"

# The installed examples run as they are: they find the installed example functions.
for ex in quickstart two-node; do
	"$P/bin/palladium" check "$P/share/palladium/examples/$ex.yaml" >"$TMP/check.out" 2>&1 ||
		fail "palladium check of the installed $ex.yaml: $(cat "$TMP/check.out")"
	assert_contains "$(cat "$P/share/palladium/examples/$ex.yaml")" \
		"functions_dir: \"$prefix/libexec/palladium/functions\"" \
		"installed $ex.yaml finds the installed example functions"
done

# --- pkg-config: only the installed files, only what a function needs
export PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_SYSROOT_DIR=$ROOT
unset PKG_CONFIG_PATH
cflags=$(pkg-config --cflags palladium) || fail "pkg-config --cflags palladium"
libs=$(pkg-config --libs palladium) || fail "pkg-config --libs palladium"
static_libs=$(pkg-config --libs --static palladium) || fail "pkg-config --libs --static palladium"
log "pkg-config: cflags '$cflags' libs '$libs' static '$static_libs'"
assert_contains "$cflags" "-I$P/include" "cflags point into the DESTDIR"
assert_contains "$libs" "-lpalladium" "libs name libpalladium"
assert_not_contains "$static_libs" "yaml" "pkg-config --libs --static: no libcyaml/libyaml"
assert_not_contains "$static_libs" "fabric" "pkg-config --libs --static: no libfabric"

lib=$(find "$ROOT" -name 'libpalladium.so.*.*' -type f)
[[ -n "$lib" ]] || fail "no libpalladium.so.X.Y installed"
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
log "libpalladium NEEDED: $needed"
for n in $needed; do
	case "$n" in
	libc.so.* | libasan.so.* | libubsan.so.*) ;; # the sanitizer build links its runtimes
	*) fail "libpalladium needs $n: a function needs only libc" ;;
	esac
done
pass "libpalladium needs only libc ($needed)"
exports=$(readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" { print $8 }' | sort)
bad=$(grep -v '^pd_\(serve\|request_\|response_\|call_\)' <<<"$exports" | grep -v '^_' | tr '\n' ' ')
[[ -z "$bad" ]] || fail "libpalladium exports more than function.h's API: $bad"
pass "libpalladium exports only function.h's API ($(wc -l <<<"$exports") symbols)"

# --- a function outside the tree, built against the installed files only
FN=$TMP/fn
mkdir -p "$FN"
cat >"$FN/hello.c" <<'EOF'
#include <stdio.h>
#include <string.h>

#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	char out[256];
	int len = snprintf(out, sizeof(out), "hello, %.*s\n", (int)(n < 200 ? n : 200), in);
	pd_response_append(res, out, (size_t)len);
	pd_response_set_header(res, "content-type", "text/plain");
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
EOF
san=()
[[ "$needed" == *libasan* ]] && san=("-fsanitize=address,undefined")
# shellcheck disable=SC2086 # pkg-config output is a list of flags
(cd "$FN" && cc -std=c17 -Wall -Wextra -Werror "${san[@]}" -H hello.c $cflags $libs \
	-Wl,--trace -o hello) >"$TMP/cc.out" 2>&1 || fail "cc hello.c \$(pkg-config ...): $(cat "$TMP/cc.out")"
header=$(grep -E '^\.+ .*palladium/function\.h$' "$TMP/cc.out" | awk '{ print $2 }')
assert_eq "$P/include/palladium/function.h" "$header" "hello.c included the installed function.h"
linked=$(grep -E 'libpalladium\.so' "$TMP/cc.out" | head -n 1)
assert_contains "$linked" "$ROOT" "hello linked the installed libpalladium ($linked)"
grep -q "$SOURCE_ROOT" "$TMP/cc.out" && fail "the compile used the source or build tree: $(grep "$SOURCE_ROOT" "$TMP/cc.out" | head -5)"
pass "the compile touched nothing of the source or build tree"

LD_LIBRARY_PATH=$(dirname "$lib")
export LD_LIBRARY_PATH
ldd "$FN/hello" >"$TMP/ldd.out" 2>&1 || fail "ldd hello: $(cat "$TMP/ldd.out")"
assert_contains "$(grep libpalladium "$TMP/ldd.out")" "$ROOT" "hello loads libpalladium from the DESTDIR"
assert_not_contains "$(cat "$TMP/ldd.out")" "yaml" "hello loads no libcyaml/libyaml"
assert_not_contains "$(cat "$TMP/ldd.out")" "not found" "hello finds every library"

# --- run it, with an installed example function, under the installed palladium
# Functions run as a tenant uid when the engine runs as root: let it reach them.
chmod 711 "$TMP"
chmod 755 "$FN" "$FN/hello"
PALLADIUM=$P/bin/palladium
# shellcheck disable=SC2317 # called by start_cluster
hello_yaml() {
	yaml_common 1 | sed "s|functions_dir: \"[^\"]*\"|functions_dir: \"$P/libexec/palladium/functions\"|"
	cat <<EOF
tenants:
  - { name: t, weight: 1, pool: 16MiB, buffer_size: 16KiB, max_inflight: 64 }
functions:
  - { name: hello, tenant: t, exec: "$FN/hello", node: a }
  - { name: upper, tenant: t, exec: upper, node: a }
routes:
  - { path: /hello, tenant: t, chain: [hello], timeout: 5s }
  - { path: /loud, tenant: t, chain: [hello, upper], timeout: 5s }
EOF
}
start_cluster hello_yaml 1
assert_contains "$(cat "$CFG")" "functions_dir: \"$P/libexec/palladium/functions\"" "the cluster uses the installed example functions"
wait_ready /hello
post /hello world
assert_status 200 "POST /hello (out-of-tree function)"
assert_eq "hello, world" "$(resp_body)" "/hello answer"
post /loud world
assert_status 200 "POST /loud (out-of-tree function, then the installed upper)"
assert_eq "HELLO, WORLD" "$(resp_body)" "/loud answer"
stop_cluster TERM
assert_eq 0 "$UP_RC" "installed palladium up exit status"

# --- systemd units
units=$P/lib/systemd/system
assert_contains "$(cat "$units/palladium-engine@.service")" \
	"ExecStart=$prefix/bin/palladium engine " "engine unit runs the installed palladium engine"
assert_contains "$(cat "$units/palladium-engine@.service")" "--node %i" "engine unit: instance = node"
assert_contains "$(cat "$units/palladium-ingress.service")" \
	"ExecStart=$prefix/bin/palladium ingress " "ingress unit runs the installed palladium ingress"
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify checks that ExecStart's binary exists: point the copies into the DESTDIR.
	mkdir -p "$TMP/units"
	for u in palladium-engine@.service palladium-ingress.service; do
		sed "s|$prefix/bin/palladium|$P/bin/palladium|" "$units/$u" >"$TMP/units/$u"
	done
	(cd "$TMP/units" && systemd-analyze verify ./palladium-engine@.service \
		./palladium-ingress.service) >"$TMP/verify.out" 2>&1
	rc=$?
	assert_eq "0:" "$rc:$(cat "$TMP/verify.out")" "systemd-analyze verify of both units (status: output)"
else
	log "NOTE: systemd-analyze is not installed: the units' syntax was not verified (the rest of this test ran)"
fi
exit 0
