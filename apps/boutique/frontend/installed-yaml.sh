#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# installed-yaml.sh FILE FUNCTIONS_DIR BOUTIQUE_DIR: a boutique cluster file as `meson
# install` puts it in share/palladium/examples, on stdout: its data and static folders
# (../apps/boutique/... beside examples/ in the source tree) become the installed ones
# under BOUTIQUE_DIR, and engine.functions_dir is where the functions were installed.
set -eu
if grep -q '^engine:' "$1"; then
	echo "$1 has an engine section already: set functions_dir in it instead" >&2
	exit 1
fi
sed "s|\.\./apps/boutique/|$3/|g" "$1"
printf '\n# Where meson install put the functions.\nengine: { functions_dir: "%s" }\n' "$2"
