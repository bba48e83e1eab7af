#!/usr/bin/env bash
# Wraps every page of content/ in template.html and writes the site to public/.
set -euo pipefail
sha=${FERRY_SHA:-unknown}
rm -rf public
find content -name '*.html' | sort | while read -r page; do
  out="public/${page#content/}"
  mkdir -p "$(dirname "$out")"
  title=$(sed -n 's:.*<h1>\(.*\)</h1>.*:\1:p' "$page" | head -n 1)
  body_file=$(mktemp)
  cp "$page" "$body_file"
  awk -v title="$title" -v sha="${sha:0:8}" -v body="$body_file" '
    /\{\{BODY\}\}/ { while ((getline line < body) > 0) print line; next }
    { gsub(/\{\{TITLE\}\}/, title); gsub(/\{\{SHA\}\}/, sha); print }
  ' template.html > "$out"
  rm -f "$body_file"
  echo "built $out"
done
