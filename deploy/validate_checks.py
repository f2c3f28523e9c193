#!/usr/bin/env python3
"""The checks of deploy/validate.sh that no off-the-shelf validator makes.

Schema validators prove that each file is well-formed for its tool; these prove that the files
agree with moongate and with each other, and run the pieces that can run here without Docker:

  env-names FILE...        every MOONGATE_* name exists in web-server/src (or is announced)
  toml FILE...             moongate config files: keys against config.rs's Deserialize structs
  dockerfile DOCKERFILE    COPY sources vs Dockerfile.dockerignore, cargo bin names, paths
  healthcheck SCRIPT       the image's health check against a live HTTP server (200/503/closed)
  compose COMPOSE ENVFILE  references, interpolation, ports vs UDP ranges, secrets agree, coturn;
                           then redis-server with compose's arguments (AOF really on, auth)
  nginx CONF SCRATCH       nginx -t and a live run of a copy (addresses mapped to loopback)
  turn CONF SCRATCH        coturn with the config: auth required, relay range, peer filtering
  kubernetes RENDERED SCRATCH  the kustomize output: probes, grace period, secret keys,
                           selectors; then redis-server with the StatefulSet's arguments
  readme README            every deploy/ path the README names exists

Quiet on success; on failure prints what is wrong and exits 1. Only loopback is ever contacted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

# Names the other half of the Redis work introduces (web-server); accepted before they land.
ANNOUNCED_ENV = {"MOONGATE_REDIS_URL", "MOONGATE_NODE_ID"}
# Names the deploy files define for themselves (not read by moongate).
DEPLOY_ONLY_ENV = {"MOONGATE_HEALTHCHECK_HOST"}


class CheckError(Exception):
    pass


def fail(msg: str) -> None:
    raise CheckError(msg)


# ---------------------------------------------------------------------------------------------
# moongate's own names


def known_env_names() -> set[str]:
    names: set[str] = set()
    for rs in (ROOT / "web-server" / "src").rglob("*.rs"):
        names.update(re.findall(r'"(MOONGATE_[A-Z0-9_]+)"', rs.read_text()))
    return names


def check_env_names(files: list[str]) -> None:
    known = known_env_names() | ANNOUNCED_ENV | DEPLOY_ONLY_ENV
    bad = []
    for f in files:
        text = Path(f).read_text()
        for name in sorted(set(re.findall(r"\bMOONGATE_[A-Z0-9_]*[A-Z0-9]\b", text))):
            if name not in known:
                bad.append(f"{f}: {name} is read nowhere in web-server/src")
    if bad:
        fail("\n".join(bad))


def config_schema() -> dict:
    """Keys of the TOML config from config.rs: {struct: {field: type}} of Deserialize structs."""
    src = (ROOT / "web-server" / "src" / "config.rs").read_text()
    structs: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"#\[derive\([^)]*Deserialize[^)]*\)\][^{;]*?struct (\w+) \{(.*?)\n\}", src, re.S):
        fields = {}
        for fm in re.finditer(r"^\s*(?:pub )?(\w+): ([^,\n]+),", m.group(2), re.M):
            fields[fm.group(1)] = fm.group(2)
        structs[m.group(1)] = fields
    if "FileConfig" not in structs:
        fail("config.rs: struct FileConfig not found (the checker needs updating)")
    return structs


def check_toml_value(structs: dict, struct: str, value, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a table")
        return
    fields = structs[struct]
    for key, v in value.items():
        if key not in fields:
            errors.append(f"{where}.{key}: unknown key (moongate refuses unknown keys)")
            continue
        ty = fields[key]
        inner = next((s for s in structs if re.search(rf"\b{s}\b", ty)), None)
        if inner is None:
            continue
        if "Vec<" in ty:
            if not isinstance(v, list):
                errors.append(f"{where}.{key}: expected an array of tables")
                continue
            for i, item in enumerate(v):
                check_toml_value(structs, inner, item, f"{where}.{key}[{i}]", errors)
        else:
            check_toml_value(structs, inner, v, f"{where}.{key}", errors)


def check_toml(files: list[str]) -> None:
    structs = config_schema()
    errors: list[str] = []
    for f in files:
        try:
            data = tomllib.loads(Path(f).read_text())
        except tomllib.TOMLDecodeError as e:
            errors.append(f"{f}: {e}")
            continue
        check_toml_value(structs, "FileConfig", data, f, errors)
        for i, host in enumerate(data.get("hosts", [])):
            api = host.get("wolf_api")
            if api and not (api.startswith("/") or re.fullmatch(r"http://[^/:]+:\d+/?", api)):
                errors.append(f"{f}: hosts[{i}].wolf_api {api!r} is neither a socket path nor http://host:port")
        webrtc = data.get("webrtc", {})
        if webrtc.get("nat_candidate_type", "host") not in ("host", "srflx"):
            errors.append(f"{f}: webrtc.nat_candidate_type must be host or srflx")
        for t in webrtc.get("network_types", []):
            if t not in ("udp4", "udp6"):
                errors.append(f"{f}: webrtc.network_types: {t!r} is not udp4 or udp6")
    if errors:
        fail("\n".join(errors))


def cargo_bins() -> set[str]:
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    meta = json.loads(out)
    return {t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}


# ---------------------------------------------------------------------------------------------
# Dockerfile and its ignore file


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern]]:
    """.dockerignore rules as (exclude?, regex), moby patternmatcher semantics."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:] if neg else line
        pat = os.path.normpath(pat).lstrip("/")
        rx = ""
        i = 0
        while i < len(pat):
            c = pat[i]
            if pat.startswith("**", i):
                rx += ".*"
                i += 2
                if i < len(pat) and pat[i] == "/":
                    i += 1
                    rx = rx[:-2] + "(.*/)?"
                continue
            rx += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
            i += 1
        rules.append((not neg, re.compile(rf"^{rx}$")))
    return rules


def excluded(rules, rel: str) -> bool:
    """A path is excluded if the last rule matching it or one of its parents excludes it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for exclude, rx in rules:
        if any(rx.match(p) for p in prefixes):
            result = exclude
    return result


def check_dockerfile(dockerfile: str) -> None:
    df = Path(dockerfile)
    text = df.read_text()
    errors = []
    ignore = df.with_name(df.name + ".dockerignore")
    if not ignore.is_file():
        fail(f"{ignore} missing: the build context would be the whole repository, target/ included")
    rules = dockerignore_rules(ignore)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    # COPY sources from the build context (not --from=stage).
    for m in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
        args = [a for a in m.group(1).split() if not a.startswith("--")]
        for src in args[:-1]:
            src = src.rstrip("/")
            if not (ROOT / src).exists():
                errors.append(f"COPY {src}: no such path in the repository")
                continue
            needed = [t for t in tracked if t == src or t.startswith(src + "/")]
            if (ROOT / src).is_file() and excluded(rules, src):
                errors.append(f"COPY {src}: excluded by {ignore.name}")
            lost = [t for t in needed if excluded(rules, t) and not t.startswith("gamestream/fuzz/")]
            if lost:
                errors.append(f"COPY {src}: {len(lost)} tracked files excluded by {ignore.name}, e.g. {lost[0]}")
    for junk in ("target/release/moongate", "web-client/node_modules/vite/package.json",
                 "web-client/dist/index.html", "streamer/target/x", "gamestream/fuzz/Cargo.toml",
                 "tests/browser/x.mjs", "moongate-data/moongate.db", "docs/ipc.md"):
        if not excluded(rules, junk):
            errors.append(f"{ignore.name} lets {junk} into the build context")
    bins = cargo_bins()
    for b in re.findall(r"--bin (\S+)", text):
        if b not in bins:
            errors.append(f"cargo build --bin {b}: no such binary target (cargo metadata: {sorted(bins)})")
    for b in re.findall(r"target/release/(\S+)", text):
        if b not in bins:
            errors.append(f"target/release/{b}: not a binary of the workspace")
    # What the runtime ENV points at must be what the stages install.
    env = dict(re.findall(r"(MOONGATE_[A-Z_]+)=(\S+)", text))
    if env.get("MOONGATE_STREAMER") != "/usr/local/bin/streamer":
        errors.append("MOONGATE_STREAMER must be /usr/local/bin/streamer (where the binaries go)")
    if "MOONGATE_WEB_ROOT" not in env or f"/src/web-client/dist/ {env['MOONGATE_WEB_ROOT']}/" not in text:
        errors.append("MOONGATE_WEB_ROOT does not name the directory the web client is copied to")
    port = env.get("MOONGATE_BIND", ":").rsplit(":", 1)[1]
    if not re.search(rf"^EXPOSE {port}/tcp$", text, re.M):
        errors.append(f"EXPOSE does not list the HTTP port {port}/tcp of MOONGATE_BIND")
    lo, hi = env.get("MOONGATE_WEBRTC_UDP_PORT_MIN"), env.get("MOONGATE_WEBRTC_UDP_PORT_MAX")
    if not re.search(rf"^EXPOSE {lo}-{hi}/udp$", text, re.M):
        errors.append(f"EXPOSE does not document the WebRTC range {lo}-{hi}/udp")
    if not re.search(r"^USER (\d+)(:\d+)?$", text, re.M) or re.search(r"^USER 0", text, re.M):
        errors.append("the runtime must run as a numeric non-root USER (Kubernetes runAsNonRoot)")
    if "HEALTHCHECK" not in text or "/readyz" not in (DEPLOY / "docker" / "healthcheck.sh").read_text():
        errors.append("HEALTHCHECK must probe /readyz")
    if errors:
        fail("\n".join(errors))


# ---------------------------------------------------------------------------------------------
# A tiny HTTP server on loopback (the health check, nginx's backends)


class Backend:
    """HTTP/1.1 on 127.0.0.1: answers JSON describing the request; 101 + echo for upgrades."""

    def __init__(self, name: str, status: int = 200):
        self.name, self.status, self.hits = name, status, []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[length:]
                self.hits.append((method, path, headers))
                if headers.get("upgrade", "").lower() == "websocket" and \
                        "upgrade" in headers.get("connection", "").lower():
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n\r\n" + buf)
                    while True:
                        data = conn.recv(65536)
                        if not data:
                            return
                        conn.sendall(data)
                body = json.dumps({"backend": self.name, "method": method, "path": path,
                                   "headers": headers}).encode()
                reason = {200: "OK", 503: "Service Unavailable"}.get(self.status, "X")
                conn.sendall(f"HTTP/1.1 {self.status} {reason}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.running = False
        self.sock.close()


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_healthcheck(script: str) -> None:
    def run(port: int) -> int:
        env = dict(os.environ, MOONGATE_BIND=f"0.0.0.0:{port}")
        return subprocess.run(["bash", script], env=env, capture_output=True, timeout=20).returncode

    ok, down = Backend("ready", 200), Backend("not-ready", 503)
    try:
        if run(ok.port) != 0:
            fail("healthcheck.sh: unhealthy although /readyz answered 200")
        if not ok.hits or ok.hits[0][1] != "/readyz":
            fail(f"healthcheck.sh: requested {ok.hits[:1]}, not GET /readyz")
        if run(down.port) == 0:
            fail("healthcheck.sh: healthy although /readyz answered 503")
        if run(free_port()) == 0:
            fail("healthcheck.sh: healthy with nothing listening")
    finally:
        ok.close()
        down.close()


# ---------------------------------------------------------------------------------------------
# compose


def read_env_file(path: str) -> dict[str, str]:
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


INTERP = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str], where: str = ""):
    """Compose's ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?e}, ${VAR?e}, $VAR and $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        val = env.get(name)
        empty = val is None or (op is not None and op.startswith(":") and val == "")
        if op and op.endswith("?") and empty:
            fail(f"{where}: ${{{name}}} is required ({arg}) and the env file lacks it")
        if op and op.endswith("-") and empty:
            return arg
        if val is None:
            fail(f"{where}: ${{{name}}} has no value and no default")
        return val

    return INTERP.sub(sub, value)


def port_range(spec: str) -> tuple[int, int, int, int, str]:
    """'a-b:c-d/udp' → (a, b, c, d, proto)."""
    m = re.fullmatch(r"(?:[\d.]+:)?(\d+)(?:-(\d+))?:(\d+)(?:-(\d+))?(?:/(tcp|udp))?", spec)
    if not m:
        fail(f"port mapping {spec!r} not understood")
    a, b, c, d, proto = m.groups()
    return int(a), int(b or a), int(c), int(d or c), proto or "tcp"


def check_compose(compose: str, env_file: str) -> None:
    base = Path(compose).parent
    raw = yaml.safe_load(Path(compose).read_text())
    env = read_env_file(env_file)
    doc = interpolate(raw, env, Path(compose).name)
    errors = []
    services = doc["services"]
    for kind in ("networks", "volumes", "configs", "secrets"):
        defined = set((doc.get(kind) or {}).keys())
        for name, svc in services.items():
            refs = svc.get(kind) or []
            if isinstance(refs, dict):
                refs = list(refs)
            for r in refs:
                ref = r if isinstance(r, str) else r.get("source")
                if kind == "volumes":
                    ref = ref.split(":")[0]
                    if ref.startswith((".", "/")):
                        if not (base / ref).exists():
                            errors.append(f"{name}: bind mount {ref} does not exist (gen-secrets.sh makes it)")
                        continue
                if ref not in defined:
                    errors.append(f"{name}: {kind[:-1]} {ref!r} is not defined at the top level")
    for kind in ("configs", "secrets"):
        for name, spec in (doc.get(kind) or {}).items():
            if "file" in spec and not (base / spec["file"]).is_file():
                errors.append(f"{kind}.{name}: {spec['file']} does not exist")
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            if dep not in services:
                errors.append(f"{name}: depends_on {dep!r}, no such service")
        build = svc.get("build")
        if build:
            ctx = base / build["context"]
            if not (ctx / build["dockerfile"]).is_file():
                errors.append(f"{name}: build {build['dockerfile']} not found in context {ctx}")

    known = known_env_names() | ANNOUNCED_ENV
    gateways = {n: s for n, s in services.items() if "MOONGATE_NODE_ID" in (s.get("environment") or {})}
    if len(gateways) < 2:
        errors.append("expected at least two gateway services (MOONGATE_NODE_ID)")
    ranges, node_ids = [], set()
    redis_pw = None
    redis_cmd = services.get("redis", {}).get("command") or []
    if "--requirepass" in redis_cmd:
        redis_pw = redis_cmd[redis_cmd.index("--requirepass") + 1]
    if "--appendonly" not in redis_cmd or redis_cmd[redis_cmd.index("--appendonly") + 1] != "yes":
        errors.append("redis: --appendonly yes missing")
    turn_cmd = services.get("coturn", {}).get("command") or []
    turn_user = next((a.split("=", 1)[1] for a in turn_cmd if a.startswith("--user=")), "")
    for name, svc in gateways.items():
        e = {k: str(v) for k, v in svc["environment"].items()}
        for k in e:
            if k.startswith("MOONGATE_") and k not in known:
                errors.append(f"{name}: {k} is read nowhere in web-server/src")
        if e["MOONGATE_NODE_ID"] in node_ids:
            errors.append(f"{name}: MOONGATE_NODE_ID {e['MOONGATE_NODE_ID']} is not unique")
        node_ids.add(e["MOONGATE_NODE_ID"])
        lo, hi = int(e["MOONGATE_WEBRTC_UDP_PORT_MIN"]), int(e["MOONGATE_WEBRTC_UDP_PORT_MAX"])
        published = [port_range(p) for p in svc.get("ports", [])]
        if (lo, hi, lo, hi, "udp") not in published:
            errors.append(f"{name}: UDP {lo}-{hi} must be published 1:1 (the streamer advertises the port it binds)")
        for olo, ohi, other in ranges:
            if lo <= ohi and olo <= hi:
                errors.append(f"{name}: UDP range {lo}-{hi} overlaps {other}'s {olo}-{ohi}")
        ranges.append((lo, hi, name))
        url = e.get("MOONGATE_REDIS_URL", "")
        m = re.fullmatch(r"redis://:([^@]*)@([\w.-]+):(\d+)/\d*", url)
        if not m or m.group(2) not in services:
            errors.append(f"{name}: MOONGATE_REDIS_URL {url.split('@')[-1]!r} does not name the redis service")
        elif m.group(1) != redis_pw:
            errors.append(f"{name}: the password in MOONGATE_REDIS_URL is not redis's --requirepass")
        key = e.get("MOONGATE_STORE_KEY", "")
        if not key.startswith("/run/secrets/"):
            errors.append(f"{name}: MOONGATE_STORE_KEY must be the shared secret file, got {key!r}")
        try:
            ice = json.loads(e.get("MOONGATE_WEBRTC_ICE_SERVERS", "[]"))
            for s in ice:
                if not all(u.startswith(("stun:", "turn:", "turns:")) for u in s["urls"]):
                    errors.append(f"{name}: ICE server URLs must start with stun:/turn:/turns:")
                if s.get("username") and f"{s['username']}:{s.get('credential')}" != turn_user:
                    errors.append(f"{name}: TURN user/credential differ from coturn's --user")
        except (ValueError, KeyError, TypeError) as err:
            errors.append(f"{name}: MOONGATE_WEBRTC_ICE_SERVERS is not a JSON array of {{urls,…}}: {err}")
        grace = str(svc.get("stop_grace_period", "10s"))
        if int(re.sub(r"s$", "", grace)) < 15:
            errors.append(f"{name}: stop_grace_period {grace} < 15 s (moongate waits up to 10 s for streams)")
        if "8080" not in [str(p) for p in svc.get("expose", [])]:
            errors.append(f"{name}: expose 8080 (the image's MOONGATE_BIND port)")

    conf = (base / "coturn" / "turnserver.conf").read_text()
    cmin = int(conf_value(conf, r"^min-port=(\d+)", "no min-port"))
    cmax = int(conf_value(conf, r"^max-port=(\d+)", "no max-port"))
    cport = int(conf_value(conf, r"^listening-port=(\d+)", "no listening-port"))
    published = [port_range(p) for p in services["coturn"].get("ports", [])]
    if (cmin, cmax, cmin, cmax, "udp") not in published:
        errors.append(f"coturn: relay range {cmin}-{cmax}/udp of turnserver.conf is not published 1:1")
    if (cport, cport, cport, cport, "udp") not in published:
        errors.append(f"coturn: listening port {cport}/udp is not published")
    subnet = doc["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    net = re.fullmatch(r"(\d+\.\d+\.\d+)\.0/24", subnet)
    allowed = re.findall(r"^allowed-peer-ip=(\S+)", conf, re.M)
    if not net or allowed != [f"{net.group(1)}.0-{net.group(1)}.255"]:
        errors.append(f"coturn: allowed-peer-ip {allowed} must be exactly the edge subnet {subnet}")
    if "edge" not in services["coturn"].get("networks", []) or "backend" in services["coturn"].get("networks", []):
        errors.append("coturn must be on the edge network only (never next to Redis)")
    if not doc["networks"]["backend"].get("internal"):
        errors.append("the backend network must be internal")

    nginx = (base / "nginx" / "nginx.conf").read_text()
    for upstream in re.findall(r"upstream (\w+) \{(.*?)\}", nginx, re.S):
        servers = sorted(re.findall(r"server ([\w.-]+):(\d+)", upstream[1]))
        if servers != sorted((n, "8080") for n in gateways):
            errors.append(f"nginx upstream {upstream[0]}: {servers} are not the gateway services on 8080")
    if errors:
        fail("\n".join(errors))
    # What the live checks run: redis's arguments.
    return redis_cmd


# ---------------------------------------------------------------------------------------------
# nginx: nginx -t and a live run of a copy whose addresses are mapped to loopback


def check_nginx(conf: str, scratch: str) -> None:
    sd = Path(scratch)
    b1, b2 = Backend("moongate-1"), Backend("moongate-2")
    http_port, https_port = free_port(), free_port()
    # Comments dropped (they may name the real paths); everything else as written.
    text = re.sub(r"^\s*#.*\n", "", Path(conf).read_text(), flags=re.M)
    mapped = (text.replace("moongate-1:8080", f"127.0.0.1:{b1.port}")
                  .replace("moongate-2:8080", f"127.0.0.1:{b2.port}")
                  .replace("/etc/nginx/tls/", f"{sd}/tls/")
                  .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
                  .replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
                  .replace("error_log /dev/stderr", f"error_log {sd}/nginx-error.log")
                  .replace("access_log /dev/stdout", f"access_log {sd}/nginx-access.log"))
    for needle in ("moongate-1:", "moongate-2:", "/etc/nginx/", "listen 80", "listen 443"):
        if needle in mapped:
            fail(f"nginx: could not map {needle!r} in the copy (the checker needs updating)")
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"^\s*{directive} (\d+)s;", text, re.M)
        if not m or int(m.group(1)) < 3600:
            fail(f"nginx: {directive} must be at least 3600s (a stream's socket lives that long)")
    if not re.search(r"^\s*proxy_buffering off;", text, re.M):
        fail("nginx: proxy_buffering off (media frames and the SSE log feed go out as written)")
    copy = sd / "nginx.conf"
    copy.write_text(mapped)
    pid = f"pid {sd}/nginx.pid;"
    t = subprocess.run(["nginx", "-t", "-q", "-c", str(copy), "-g", pid], capture_output=True, text=True)
    if t.returncode != 0:
        fail(f"nginx -t: {t.stderr.strip()}")
    proc = subprocess.Popen(["nginx", "-c", str(copy), "-g", f"daemon off; {pid}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    fail(f"nginx did not start: {proc.stderr.read().decode() if proc.poll() is not None else 'timeout'}")
                time.sleep(0.05)
        live_nginx_checks(http_port, https_port, b1, b2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        b1.close()
        b2.close()


def live_nginx_checks(http_port: int, https_port: int, b1: Backend, b2: Backend) -> None:
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE

    def request(method: str, path: str, host: str = "gw.test:8443", body: bytes = b"",
                headers: dict | None = None, secure: bool = True):
        sock = socket.create_connection(("127.0.0.1", https_port if secure else http_port), timeout=10)
        if secure:
            sock = tls.wrap_socket(sock, server_hostname="gw.test")
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1]) if data else 0
        head, _, rest = data.partition(b"\r\n\r\n")
        hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
                for l in head.decode("latin-1").split("\r\n")[1:] if ":" in l}
        if status != 101:
            n = int(hdrs.get("content-length", "0"))
            while len(rest) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        return status, hdrs, rest, sock

    status, hdrs, _, s = request("GET", "/hosts?x=1", host="gw.test", secure=False)
    s.close()
    if status != 301 or hdrs.get("location") != "https://gw.test/hosts?x=1":
        fail(f"nginx: plain HTTP must redirect to HTTPS, got {status} {hdrs.get('location')}")

    seen = set()
    for _ in range(6):
        status, _, body, s = request("GET", "/api/hosts")
        s.close()
        if status != 200:
            fail(f"nginx: GET /api/hosts through TLS → {status}")
        info = json.loads(body)
        seen.add(info["backend"])
        h = info["headers"]
        if h.get("host") != "gw.test:8443":
            fail(f"nginx: the backend saw Host {h.get('host')!r}, not the browser's gw.test:8443 "
                 "(moongate's same-origin check compares Origin with it)")
        if h.get("x-forwarded-proto") != "https":
            fail("nginx: X-Forwarded-Proto https missing")
        if "upgrade" in h.get("connection", "").lower():
            fail("nginx: a plain request was sent upstream with Connection: upgrade")
    if seen != {"moongate-1", "moongate-2"}:
        fail(f"nginx: 6 requests reached only {seen}: not balanced over both nodes")

    status, _, rest, s = request("GET", "/api/ws/stream", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Origin": "https://gw.test:8443",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    if status != 101:
        fail(f"nginx: the WebSocket upgrade of /api/ws/stream answered {status}, not 101")
    payload = b"\x82\x05media"
    s.sendall(payload)
    echoed = rest
    s.settimeout(5)
    while len(echoed) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            break
        echoed += chunk
    s.close()
    if echoed != payload:
        fail("nginx: bytes after the upgrade were not tunnelled both ways")

    owners = set()
    for method, path in (("POST", "/api/whep?host_id=0"), ("PATCH", "/api/whep/r1"),
                         ("DELETE", "/api/whep/r1"), ("POST", "/api/whep"), ("PATCH", "/api/whep/r2")):
        status, _, body, s = request(method, path, body=b"v=0\r\n")
        s.close()
        owners.add(json.loads(body)["backend"] if status == 200 else f"status {status}")
    if len(owners) != 1:
        fail(f"nginx: one client's WHEP requests reached {owners}: PATCH/DELETE would miss the resource")

    before = len(b1.hits) + len(b2.hits)
    status, _, _, s = request("GET", "/metrics")
    s.close()
    if status != 404 or len(b1.hits) + len(b2.hits) != before:
        fail(f"nginx: /metrics must not be served through the balancer (got {status})")
    status, _, _, s = request("POST", "/api/whep", body=b"x" * (2 << 20))
    s.close()
    if status != 413:
        fail(f"nginx: a 2 MiB body must be refused (413), got {status}")


# ---------------------------------------------------------------------------------------------
# coturn: a live TURN server with the config, probed with STUN/TURN requests on loopback

MAGIC = 0x2112A442


def stun_attr(t: int, v: bytes) -> bytes:
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)


def stun_request(mtype: int, attrs: list[tuple[int, bytes]], key: bytes | None = None) -> tuple[bytes, bytes]:
    tid = secrets.token_bytes(12)
    body = b"".join(stun_attr(t, v) for t, v in attrs)
    if key is not None:
        head = struct.pack("!HHI12s", mtype, len(body) + 24, MAGIC, tid)
        body += stun_attr(0x0008, hmac.new(key, head + body, hashlib.sha1).digest())
    return tid, struct.pack("!HHI12s", mtype, len(body), MAGIC, tid) + body


def stun_parse(data: bytes) -> tuple[int, dict[int, bytes]]:
    mtype, length, _magic, _tid = struct.unpack("!HHI12s", data[:20])
    attrs, i = {}, 20
    while i + 4 <= 20 + length:
        t, n = struct.unpack("!HH", data[i:i + 4])
        attrs.setdefault(t, data[i + 4:i + 4 + n])
        i += 4 + n + (4 - n % 4) % 4
    return mtype, attrs


def xor_addr(ip: str, port: int) -> bytes:
    return struct.pack("!BBH4s", 0, 1, port ^ (MAGIC >> 16),
                       bytes(a ^ b for a, b in zip(socket.inet_aton(ip), struct.pack("!I", MAGIC))))


def unxor_addr(v: bytes) -> tuple[str, int]:
    _, _, port, ip = struct.unpack("!BBH4s", v[:8])
    return socket.inet_ntoa(bytes(a ^ b for a, b in zip(ip, struct.pack("!I", MAGIC)))), port ^ (MAGIC >> 16)


def error_code(attrs: dict[int, bytes]) -> int:
    v = attrs.get(0x0009)
    return v[2] * 100 + v[3] if v else 0


def conf_value(text: str, pattern: str, what: str) -> str:
    m = re.search(pattern, text, re.M)
    if not m:
        fail(f"turnserver.conf: {what}")
    return m.group(1)


def check_turn(conf: str, scratch: str) -> None:
    sd = Path(scratch)
    text = Path(conf).read_text()
    cmin = int(conf_value(text, r"^min-port=(\d+)", "no min-port (the relay range to publish)"))
    cmax = int(conf_value(text, r"^max-port=(\d+)", "no max-port (the relay range to publish)"))
    allowed = conf_value(text, r"^allowed-peer-ip=(\d+\.\d+\.\d+)\.0-",
                         "no allowed-peer-ip range: with private ranges denied the relay cannot reach the gateways")
    port = free_port(socket.SOCK_DGRAM)
    password, realm, public = secrets.token_hex(16), "gw.test", "203.0.113.7"
    # The compose command line, with the listener on loopback and scratch files.
    cmd = ["turnserver", "-c", conf, f"--external-ip={public}", f"--realm={realm}",
           f"--user=moongate:{password}", "--listening-ip=127.0.0.1", f"--listening-port={port}",
           f"--userdb={sd}/turndb", f"--pidfile={sd}/turnserver.pid",
           # On the command line too: before reading the file coturn would log to /var/log.
           "--log-file=stdout"]
    log = open(sd / "turnserver.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.3)

    def ask(mtype, attrs, key=None):
        tid, msg = stun_request(mtype, attrs, key)
        for _ in range(30):
            sock.sendto(msg, ("127.0.0.1", port))
            try:
                while True:
                    data, _ = sock.recvfrom(4096)
                    if data[8:20] == tid:
                        return stun_parse(data)
            except socket.timeout:
                if proc.poll() is not None:
                    break
        fail(f"coturn did not answer (exit {proc.poll()}); log:\n{(sd / 'turnserver.log').read_text()[-2000:]}")

    try:
        transport = [(0x0019, bytes([17, 0, 0, 0]))]
        mtype, attrs = ask(0x0003, transport)
        bad = [l for l in (sd / "turnserver.log").read_text().splitlines()
               if re.search(r"Bad configuration|CONFIG ERROR|Unknown argument|cannot find|ERROR:", l)]
        if bad:
            fail("coturn rejected the configuration:\n" + "\n".join(bad))
        if mtype != 0x0113 or error_code(attrs) != 401:
            fail(f"coturn: an Allocate without credentials must get 401, got {mtype:#x} {error_code(attrs)}")
        if attrs.get(0x0014, b"").decode() != realm:
            fail(f"coturn: realm {attrs.get(0x0014)!r}, expected the --realm given")
        nonce = attrs[0x0015]

        def auth(user, pw):
            key = hashlib.md5(f"{user}:{realm}:{pw}".encode()).digest()
            return key, [(0x0006, user.encode()), (0x0014, realm.encode()), (0x0015, nonce)]

        key, ident = auth("moongate", "wrong-" + password)
        mtype, attrs = ask(0x0003, ident + transport, key)
        if mtype != 0x0113 or error_code(attrs) != 401:
            fail(f"coturn: a wrong password must get 401, got {mtype:#x} {error_code(attrs)}")
        key, ident = auth("moongate", password)
        mtype, attrs = ask(0x0003, ident + transport, key)
        if mtype != 0x0103:
            fail(f"coturn: Allocate with the right password failed: {error_code(attrs)} "
                 f"{attrs.get(0x0009, b'')[4:].decode(errors='replace')}")
        rip, rport = unxor_addr(attrs[0x0016])
        if rip != public or not cmin <= rport <= cmax:
            fail(f"coturn: relayed address {rip}:{rport}, expected {public}:{cmin}-{cmax}")
        for peer, want in ((f"{allowed}.10", 0x0108), ("10.1.2.3", 0x0118), ("192.168.1.1", 0x0118),
                           ("169.254.169.254", 0x0118), ("127.0.0.1", 0x0118)):
            mtype, attrs = ask(0x0008, ident + [(0x0012, xor_addr(peer, 40000))], key)
            if mtype != want:
                verdict = "allowed" if mtype == 0x0108 else f"refused ({error_code(attrs)})"
                fail(f"coturn: a permission for peer {peer} was {verdict}; the config says otherwise")
        ask(0x0004, ident + [(0x000D, struct.pack("!I", 0))], key)  # Refresh lifetime 0: release
    finally:
        sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# ---------------------------------------------------------------------------------------------
# redis: the deploy files' arguments on a scratch server (Unix socket only, no TCP port)


def check_redis_args(scratch: str, args_json: str) -> None:
    args = json.loads(args_json)
    sd = Path(scratch) / f"redis-{secrets.token_hex(4)}"
    sd.mkdir()
    password = secrets.token_hex(16)
    if args and args[0] == "redis-server":
        args = args[1:]
    args = [password if a in ("$(REDIS_PASSWORD)", "<password>") else a for a in args]
    args = [str(sd) if a == "/data" else a for a in args]
    sock = sd / "redis.sock"
    cmd = ["redis-server", *args, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
           "--dir", str(sd), "--daemonize", "no", "--logfile", str(sd / "redis.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env = dict(os.environ, REDISCLI_AUTH=password)

    def cli(*a):
        return subprocess.run(["redis-cli", "-s", str(sock), *a], env=env, capture_output=True,
                              text=True, timeout=10).stdout.split()

    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if proc.poll() is not None:
                fail(f"redis-server refused the arguments: {(sd / 'redis.log').read_text()[-1000:]}"
                     f"{proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                fail("redis-server did not start")
            time.sleep(0.05)
        ping = subprocess.run(["sh", "-c", f"redis-cli -s {sock} ping | grep -q PONG"], env=env)
        if ping.returncode != 0:
            fail("redis: the health check `redis-cli ping | grep -q PONG` fails with REDISCLI_AUTH")
        noauth = subprocess.run(["redis-cli", "-s", str(sock), "get", "x"], capture_output=True, text=True)
        if "NOAUTH" not in noauth.stdout + noauth.stderr:
            fail("redis: a client without the password was not refused")
        got = dict(zip(*[iter(cli("config", "get", "append*") + cli("config", "get", "maxmemory-policy"))] * 2))
        if got.get("appendonly") != "yes" or got.get("appendfsync") != "always":
            fail(f"redis: appendonly/appendfsync are {got.get('appendonly')}/{got.get('appendfsync')}")
        if got.get("maxmemory-policy") != "noeviction":
            fail("redis: maxmemory-policy must be noeviction (shared state must not be evicted)")
        cli("set", "moongate:check", "1")
        if not any(sd.rglob("*.aof")):
            fail("redis: no append-only file was written")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(sd, ignore_errors=True)


def compose_redis_args(compose: str, env_file: str) -> str:
    doc = interpolate(yaml.safe_load(Path(compose).read_text()), read_env_file(env_file))
    env = read_env_file(env_file)
    return json.dumps(["<password>" if a == env.get("REDIS_PASSWORD") else a
                       for a in doc["services"]["redis"]["command"]])


# ---------------------------------------------------------------------------------------------
# Kubernetes: the rendered kustomization


def check_kubernetes(rendered: str) -> str:
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    errors = []
    known = known_env_names() | ANNOUNCED_ENV
    secrets_ = {n: set((d.get("data") or {}) | (d.get("stringData") or {}))
                for (k, n), d in by.items() if k == "Secret"}
    configmaps = {n for (k, n) in by if k == "ConfigMap"}
    workloads = {n: d for (k, n), d in by.items() if k in ("Deployment", "StatefulSet")}
    for name, w in workloads.items():
        if w["metadata"].get("namespace") != "moongate":
            errors.append(f"{name}: not in the moongate namespace")
        pod = w["spec"]["template"]["spec"]
        sel = w["spec"]["selector"]["matchLabels"]
        if any(w["spec"]["template"]["metadata"]["labels"].get(k) != v for k, v in sel.items()):
            errors.append(f"{name}: the selector does not match the pod labels")
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets_:
                    errors.append(f"{name}: Secret {ref['name']} is not generated")
                elif ref and ref["key"] not in secrets_[ref["name"]] and not ref.get("optional"):
                    errors.append(f"{name}: Secret {ref['name']} has no key {ref['key']}")
                if e["name"].startswith("MOONGATE_") and e["name"] not in known:
                    errors.append(f"{name}: {e['name']} is read nowhere in web-server/src")
            sc = c.get("securityContext", {})
            if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]):
                errors.append(f"{name}/{c['name']}: read-only root, no privilege escalation, drop ALL")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            errors.append(f"{name}: runAsNonRoot")
        for v in pod.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                errors.append(f"{name}: ConfigMap {v['configMap']['name']} is not generated")
            if "secret" in v and v["secret"]["secretName"] not in secrets_:
                errors.append(f"{name}: Secret {v['secret']['secretName']} is not generated")

    gw = workloads.get("moongate")
    if not gw:
        fail("no Deployment moongate")
    pod = gw["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    if gw["spec"]["replicas"] != 2:
        errors.append("moongate: 2 replicas expected")
    if c["livenessProbe"]["httpGet"]["path"] != "/healthz" or c["readinessProbe"]["httpGet"]["path"] != "/readyz":
        errors.append("moongate: liveness on /healthz, readiness on /readyz")
    bind_port = int(env["MOONGATE_BIND"]["value"].rsplit(":", 1)[1])
    if [p["containerPort"] for p in c["ports"]] != [bind_port]:
        errors.append("moongate: containerPort must be MOONGATE_BIND's port")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if pod["terminationGracePeriodSeconds"] < pre + 10 + 5:
        errors.append(f"moongate: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} < "
                      f"preStop {pre} + 10 s stream wait + 5 s reap")
    if env.get("MOONGATE_NODE_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        errors.append("moongate: MOONGATE_NODE_ID must be unique per pod (metadata.name)")
    if not str(env.get("MOONGATE_REDIS_URL", {}).get("value", "")).startswith("redis://:$(REDIS_PASSWORD)@moongate-redis:"):
        errors.append("moongate: MOONGATE_REDIS_URL must use $(REDIS_PASSWORD) and the moongate-redis Service")
    if list(env).index("REDIS_PASSWORD") > list(env).index("MOONGATE_REDIS_URL"):
        errors.append("moongate: REDIS_PASSWORD must precede MOONGATE_REDIS_URL for $(…) expansion")
    key_mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "store-key")
    if env["MOONGATE_STORE_KEY"]["value"] != f"{key_mount}/store.key":
        errors.append("moongate: MOONGATE_STORE_KEY does not point into the store-key Secret mount")
    if pod.get("hostNetwork"):
        if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
            errors.append("moongate: hostNetwork needs dnsPolicy ClusterFirstWithHostNet to resolve Services")
        anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        if not anti:
            errors.append("moongate: hostNetwork pods need required anti-affinity (one per node)")
        ns = by.get(("Namespace", "moongate"), {})
        if ns.get("metadata", {}).get("labels", {}).get("pod-security.kubernetes.io/enforce") != "privileged":
            errors.append("namespace: hostNetwork pods need the privileged Pod Security level")
    for (k, n), d in by.items():
        if k in ("Service", "PodDisruptionBudget"):
            sel = d["spec"]["selector"] if k == "Service" else d["spec"]["selector"]["matchLabels"]
            if not any(all(w["spec"]["template"]["metadata"]["labels"].get(a) == b for a, b in sel.items())
                       for w in workloads.values()):
                errors.append(f"{k} {n}: selects no pods")
        if k == "Ingress":
            for rule in d["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    svc = p["backend"]["service"]["name"]
                    if ("Service", svc) not in by:
                        errors.append(f"Ingress {n}: Service {svc} does not exist")
    main = by[("Ingress", "moongate")]["metadata"]["annotations"]
    for a in ("proxy-read-timeout", "proxy-send-timeout"):
        if int(main.get(f"nginx.ingress.kubernetes.io/{a}", "60")) < 3600:
            errors.append(f"Ingress moongate: {a} must be at least 3600 (stream sockets)")
    if main.get("nginx.ingress.kubernetes.io/proxy-buffering") != "off":
        errors.append("Ingress moongate: proxy-buffering off")
    whep = by[("Ingress", "moongate-whep")]["metadata"]["annotations"]
    if "nginx.ingress.kubernetes.io/upstream-hash-by" not in whep:
        errors.append("Ingress moongate-whep: upstream-hash-by (WHEP resources live in one pod)")
    redis = workloads["moongate-redis"]
    if not redis["spec"].get("volumeClaimTemplates"):
        errors.append("moongate-redis: a PersistentVolumeClaim for the AOF")
    if errors:
        fail("\n".join(errors))
    return json.dumps(redis["spec"]["template"]["spec"]["containers"][0]["args"])


# ---------------------------------------------------------------------------------------------


def check_readme(readme: str) -> None:
    """Every file path the README names (in backticks, or as deploy/…) exists, generated
    secrets aside."""
    text = Path(readme).read_text()
    generated = re.compile(r"(^|/)(\.env|secrets/?|tls/?|secrets\.env|store\.key|fullchain\.pem|privkey\.pem)$"
                           r"|^(deploy/)?(secrets|tls)/|^target/|/dist$")
    names = set(re.findall(r"\bdeploy/[\w./-]*\w", text))
    names |= {t for t in re.findall(r"`([\w.-]+(?:/[\w.-]+)+/?)`", text)}
    missing = sorted(n for n in names if not generated.search(n.rstrip("/"))
                     and not (ROOT / n).exists() and not (DEPLOY / n).exists())
    if missing:
        fail("README names paths that do not exist: " + ", ".join(missing))
    if "MOONGATE_REDIS_LEASE_SECS" not in text:
        fail("README: the node-loss section must state the lease (MOONGATE_REDIS_LEASE_SECS)")


def main() -> int:
    cmd, *args = sys.argv[1:]
    try:
        if cmd == "env-names":
            check_env_names(args)
        elif cmd == "toml":
            check_toml(args)
        elif cmd == "dockerfile":
            check_dockerfile(args[0])
        elif cmd == "healthcheck":
            check_healthcheck(args[0])
        elif cmd == "compose":
            check_compose(args[0], args[1])
            check_redis_args(str(Path(args[1]).parent), compose_redis_args(args[0], args[1]))
        elif cmd == "nginx":
            check_nginx(args[0], args[1])
        elif cmd == "turn":
            check_turn(args[0], args[1])
        elif cmd == "kubernetes":
            check_redis_args(args[1], check_kubernetes(args[0]))
        elif cmd == "readme":
            check_readme(args[0])
        else:
            print(f"unknown check {cmd}", file=sys.stderr)
            return 2
    except CheckError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
