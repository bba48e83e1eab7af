#!/usr/bin/env bash
# Checks the built site: every page has a title, and every relative link resolves
# to a file that exists.
set -euo pipefail
cd public
fail=0
for page in $(find . -name '*.html' | sort); do
  grep -q '<title>[^<]' "$page" || { echo "$page: empty <title>"; fail=1; }
  for href in $(grep -o 'href="[^"#:]*"' "$page" | sed 's/href="\(.*\)"/\1/'); do
    target="$(dirname "$page")/$href"
    [ -f "$target" ] || { echo "$page: broken link to $href"; fail=1; }
  done
  echo "checked ${page#./}"
done
[ "$fail" = 0 ] || exit 1
echo "all links resolve"
