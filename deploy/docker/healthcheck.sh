#!/bin/bash
# The image's HEALTHCHECK: GET /readyz on moongate's own port (from MOONGATE_BIND, default 8080)
# over loopback, with bash's /dev/tcp (the slim image has no curl). Healthy = HTTP 200, i.e. the
# store answers and the streamer executable exists (see /readyz in web-server/README.md).
# A MOONGATE_BIND on one specific non-loopback address needs MOONGATE_HEALTHCHECK_HOST.
set -u
port="${MOONGATE_BIND:-0.0.0.0:8080}"
port="${port##*:}"
host="${MOONGATE_HEALTHCHECK_HOST:-127.0.0.1}"
exec 3<>"/dev/tcp/${host}/${port}" || exit 1
printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
IFS= read -r -t 3 status <&3 || exit 1
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "readyz: ${status%$'\r'}" >&2; exit 1 ;;
esac
