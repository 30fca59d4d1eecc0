#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# installed.sh FILE FUNCTIONS_DIR: FILE with engine.functions_dir set to FUNCTIONS_DIR, on
# stdout (the example cluster files that `meson install` puts in share/palladium/examples).
set -eu
if grep -q '^engine:' "$1"; then
	echo "$1 has an engine section already: set functions_dir in it instead" >&2
	exit 1
fi
cat "$1"
printf '\n# Where meson install put the example functions.\nengine: { functions_dir: "%s" }\n' "$2"
