// The end-to-end harness: a real `moongate` (target/debug, with its embedded demo host) on a free
// loopback port with a temp data dir and a known credential, Debian's Chromium driven by
// playwright-core, and the demo host's Wolf API (Unix socket in the data dir) to read its sessions
// and input sink from outside the gateway. Every wait is bounded; `stop()` kills the gateway even
// when a test failed.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// playwright-core is a dependency of web-client/ (one package.json, one lockfile).
const require = createRequire(path.join(repoRoot, "web-client", "package.json"));
const { chromium } = require("playwright-core");

export const screenshotDir = process.env.MOONGATE_SCREENSHOTS ?? path.join(repoRoot, "target", "browser-screenshots");
mkdirSync(screenshotDir, { recursive: true });

/** Resolves with `p`, or rejects after `ms` with `what` in the message. */
export function within(ms, what, p) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/** Polls `fn` until it returns a truthy value (returned) or `ms` pass (throws with `what`). */
export async function until(ms, what, fn, every = 100) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${ms} ms: ${what} (last: ${JSON.stringify(last)})`);
}

/**
 * Starts target/debug/moongate. Options: `env` (extra MOONGATE_* variables), `credential`,
 * `dataDir` (an existing data directory to start on, e.g. a killed gateway's: it is then the
 * caller's and `stop()` leaves it in place). Returns { url, credential, dataDir, wolfSocket, log(),
 * stop(), kill() }; `kill()` is SIGKILL (no shutdown) and keeps the data directory.
 */
export async function startGateway(opts = {}) {
  const bin = process.env.MOONGATE_BIN ?? path.join(repoRoot, "target", "debug", "moongate");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build --workspace --bins\` first`);
  const webRoot = process.env.MOONGATE_WEB_ROOT ?? path.join(repoRoot, "web-client", "dist");
  if (!existsSync(path.join(webRoot, "index.html"))) {
    throw new Error(`${webRoot}/index.html is missing: run \`npm run build\` in web-client first`);
  }
  // Short path: the demo host's Wolf API socket must fit a Unix socket address (108 bytes).
  const ownDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "mge-"));
  const credential = opts.credential ?? "e2e-" + Math.random().toString(36).slice(2);
  const proc = spawn(bin, [], {
    cwd: repoRoot,
    env: {
      ...process.env,
      RUST_LOG: process.env.RUST_LOG ?? "info",
      MOONGATE_BIND: "127.0.0.1:0",
      MOONGATE_DATA_DIR: dataDir,
      MOONGATE_CREDENTIALS: credential,
      MOONGATE_WEB_ROOT: webRoot,
      // WebRTC peers on loopback only (Chromium gets --allow-loopback-in-peer-connection).
      MOONGATE_WEBRTC_BIND_ADDRESS: "127.0.0.1",
      ...(opts.env ?? {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => proc.once("exit", (code, sig) => r({ code, sig })));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 12000))]);
      if (!done) proc.kill("SIGKILL");
      await exited;
    }
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGKILL");
      await exited;
    }
  };
  try {
    const url = await within(
      60000,
      "moongate prints its URL",
      new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(/listening on (http:\/\/[^\s/]+)\//);
          if (m) resolve(m[1]);
        };
        proc.stdout.on("data", check);
        proc.stderr.on("data", check);
        exited.then(({ code, sig }) => reject(new Error(`moongate exited (${code ?? sig}):\n${out}`)));
      }),
    );
    await until(10000, "GET /healthz", async () => {
      const r = await fetch(url + "/healthz").catch(() => null);
      return r?.ok;
    });
    return { url, credential, dataDir, wolfSocket: path.join(dataDir, "demo-host", "wolf.sock"), log: () => out, stop, kill, proc };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * A request to the embedded demo host's Wolf API (its Unix socket); resolves with the JSON body.
 * `body` (an object) makes it a POST.
 */
export function wolfApi(gw, pathAndQuery, body) {
  return within(
    5000,
    `Wolf API ${pathAndQuery}`,
    new Promise((resolve, reject) => {
      const payload = body === undefined ? null : JSON.stringify(body);
      const req = http.request({
        socketPath: gw.wolfSocket,
        path: pathAndQuery,
        method: payload ? "POST" : "GET",
        headers: payload ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } : {},
      }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => {
          try {
            resolve(JSON.parse(body));
          } catch (e) {
            reject(new Error(`Wolf API ${pathAndQuery}: ${res.statusCode} ${body}`));
          }
        });
      });
      req.on("error", reject);
      req.end(payload ?? undefined);
    }),
  );
}

/** The host's live sessions (Wolf API). */
export async function hostSessions(gw) {
  return (await wolfApi(gw, "/api/v1/sessions")).sessions ?? [];
}

/** Every input event the host decoded for `sessionId` (Wolf API extension of the demo host). */
export async function hostInput(gw, sessionId) {
  return (await wolfApi(gw, `/api/v1/moongate/input?session_id=${encodeURIComponent(sessionId)}&since=0`)).events ?? [];
}

/** Frames the stream view in `page` decoded so far (throws when its stream stopped). */
export function decoded(page) {
  return page.evaluate(() => {
    const m = window.moongate;
    if (m?.state === "stopped") throw new Error(`stream stopped: ${m.reason}`);
    return m?.stats()?.framesDecoded ?? 0;
  });
}

/** Waits up to `ms` until `page` decodes `n` more frames than now. */
export async function framesGrow(page, n, what, ms = 20000) {
  const start = await decoded(page);
  await until(ms, `${what}: ${n} more decoded frames`, async () => (await decoded(page)) >= start + n);
}

/**
 * Debian's Chromium through playwright-core, with a fresh profile; flags for loopback WebRTC.
 * Options: `args` (more Chromium flags, e.g. a fake microphone).
 */
export async function launchBrowser(opts = {}) {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) throw new Error(`${executablePath} is missing: apt-get install chromium (scripts/install-test-deps.sh)`);
  const profile = mkdtempSync(path.join(tmpdir(), "mg-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      ...(opts.args ?? []),
    ],
    timeout: 30000,
  });
  browser.setDefaultTimeout(15000);
  const close = async () => {
    await within(10000, "closing Chromium", browser.close()).catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context: browser, close };
}
