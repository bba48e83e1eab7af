#!/usr/bin/env bash
# Checks the built site: every page has a title, and every relative link resolves
# to a file that exists. Then it serves the site and fetches each page over HTTP.
set -euo pipefail
cd public
fail=0
for page in $(find . -name '*.html' | sort); do
  grep -q '<title>[^<]' "$page" || { echo "$page: empty <title>"; fail=1; }
  for href in $(grep -o 'href="[^"#:]*"' "$page" | sed 's/href="\(.*\)"/\1/'); do
    target="$(dirname "$page")/$href"
    [ -f "$target" ] || { echo "$page: broken link to $href"; fail=1; }
  done
done
[ "$fail" = 0 ] || exit 1
echo "all links resolve"

port=$((20000 + RANDOM % 20000))
busybox httpd -f -p "127.0.0.1:$port" -h . &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 50); do busybox wget -qO /dev/null "http://127.0.0.1:$port/index.html" 2>/dev/null && break; sleep 0.1; done
for page in $(find . -name '*.html' | sort); do
  busybox wget -qO- "http://127.0.0.1:$port/${page#./}" | grep -q '</html>' \
    || { echo "GET ${page#./} failed"; exit 1; }
  echo "served ${page#./}"
done
