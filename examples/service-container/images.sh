#!/usr/bin/env bash
# Builds this example's two images locally, from Debian's static busybox, since
# no image can be pulled: a base image for the test job and the `api` service.
set -euo pipefail
busybox=${BUSYBOX:-/usr/bin/busybox}
if [ ! -x "$busybox" ]; then
  echo "images.sh: $busybox not found; install Debian's busybox-static" >&2
  exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

cp "$busybox" "$ctx/busybox"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
DOCKERFILE
docker build -q -t ferry-example/base:1 "$ctx"

cp -r api "$ctx/api"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM ferry-example/base:1
COPY api /srv
EXPOSE 8080
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"]
DOCKERFILE
docker build -q -t ferry-example/api:1 "$ctx"
