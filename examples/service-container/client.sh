#!/bin/sh
# The "tests" of this example: they talk to the `api` service container by name.
set -e
base=${API_URL:-http://api:8080}
health=$(wget -qO- "$base/health")
[ "$health" = ok ] || { echo "health check said: $health"; exit 1; }
items=$(wget -qO- "$base/api/items.json")
echo "items: $items"
echo "$items" | grep -q '"pipeline"' || { echo "expected item missing"; exit 1; }
if wget -qO- "$base/api/missing.json" 2>/dev/null; then
  echo "a missing document must be a 404"; exit 1
fi
echo "all API checks passed"
