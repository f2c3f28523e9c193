#!/usr/bin/env bash
# Creates the secrets the deploy files expect, owner-only, never overwriting one that exists.
#
#   deploy/gen-secrets.sh                 # compose: deploy/.env, deploy/secrets/store.key, deploy/tls/
#   deploy/gen-secrets.sh --kubernetes    # deploy/kubernetes/secrets.env, deploy/kubernetes/store.key
#
# Compose's public name and address (defaults: localhost, 127.0.0.1) come from the environment:
#   PUBLIC_HOSTNAME=gw.example.com PUBLIC_IP=203.0.113.7 deploy/gen-secrets.sh
# Every secret is 32 random bytes in hex (openssl rand -hex 32). All of these paths are in
# deploy/.gitignore. DEPLOY_DIR overrides where they go (the validator uses a scratch copy).
set -euo pipefail
umask 077
here="${DEPLOY_DIR:-$(cd "$(dirname "$0")" && pwd)}"
command -v openssl >/dev/null || { echo "gen-secrets: openssl is required" >&2; exit 1; }

secret() { openssl rand -hex 32; }

# new_file PATH: true (and a note) when PATH does not exist yet.
new_file() {
  if [ -e "$1" ]; then
    echo "kept     $1 (exists)"
    return 1
  fi
  echo "created  $1"
  return 0
}

store_key() {  # store_key PATH [uid]
  if new_file "$1"; then
    secret > "$1"
    chmod 0600 "$1"
    if [ -n "${2:-}" ]; then
      # The container runs as uid 10001 and reads the bind-mounted file as itself.
      if [ "$(id -u)" = 0 ]; then
        chown "$2:$2" "$1"
      else
        echo "         run: sudo chown $2:$2 $1   (the container user must read it)"
      fi
    fi
  fi
}

if [ "${1:-}" = "--kubernetes" ]; then
  k="$here/kubernetes"
  if new_file "$k/secrets.env"; then
    {
      echo "MOONGATE_CREDENTIALS=$(secret)"
      echo "MOONGATE_ADMIN_CREDENTIALS=$(secret)"
      echo "REDIS_PASSWORD=$(secret)"
    } > "$k/secrets.env"
    chmod 0600 "$k/secrets.env"
  fi
  store_key "$k/store.key"
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--kubernetes]" >&2
  exit 2
fi

name="${PUBLIC_HOSTNAME:-localhost}"
ip="${PUBLIC_IP:-127.0.0.1}"
if new_file "$here/.env"; then
  cat > "$here/.env" <<EOF
# deploy/.env: read by docker compose for the \${...} in compose.yaml. Mode 0600; never commit it.
PUBLIC_HOSTNAME=$name
PUBLIC_IP=$ip
HTTP_PORT=80
HTTPS_PORT=443
MOONGATE_CREDENTIALS=$(secret)
MOONGATE_ADMIN_CREDENTIALS=$(secret)
REDIS_PASSWORD=$(secret)
TURN_PASSWORD=$(secret)
EOF
  chmod 0600 "$here/.env"
fi

mkdir -p "$here/secrets" "$here/tls"
chmod 0700 "$here/secrets" "$here/tls"
store_key "$here/secrets/store.key" 10001

# A self-signed certificate so that the stack runs at once; replace fullchain.pem/privkey.pem
# with real ones (e.g. from your ACME client) and restart the proxy.
if new_file "$here/tls/privkey.pem"; then
  san="DNS:$name"
  case "$name" in localhost) san="$san,IP:127.0.0.1" ;; esac
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=$name" -addext "subjectAltName=$san" \
    -keyout "$here/tls/privkey.pem" -out "$here/tls/fullchain.pem" 2>/dev/null
  chmod 0600 "$here/tls/privkey.pem"
  chmod 0644 "$here/tls/fullchain.pem"
fi
