#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# link-into.sh DIR TARGET STAMP: a symbolic link DIR/<name of TARGET> -> TARGET, then
# touch STAMP. Meson puts an executable in the build folder of its meson.build; this puts
# the boutique's functions beside the other functions (build/functions) as well, where a
# bare `exec: boutique-cart` finds them.
set -eu
mkdir -p "$1"
ln -sf "$2" "$1/$(basename "$2")"
touch "$3"
