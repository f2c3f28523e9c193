// Sign-in through an OpenID Connect provider end to end: a real, certified provider
// (node-oidc-provider, in this process, with its development login and consent pages), real
// gateways with the embedded demo host, and Chromium following the whole redirect chain. A user an
// admin added signs in with the provider, comes back signed in (the token out of the history) and
// streams; a name with no moongate account is sent back to the sign-in page with the reason; with
// `MOONGATE_OIDC_AUTO_CREATE_ROLE=viewer` a new name becomes a viewer, who is refused a stream;
// a redirect back from the provider signs in only the browser that started the sign-in.
// The client secret lives in this file only; nothing secret is printed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { hostSessions, launchBrowser, repoRoot, screenshotDir, startGateway, until, within } from "./harness.mjs";

const ADMIN = "e2e-admin-" + randomBytes(8).toString("hex");
const CLIENT_ID = "moongate-e2e";
const CLIENT_SECRET = randomBytes(24).toString("hex");
const PROVIDER_NAME = "E2E Provider";
const shot = (page, name) => page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });

/** A loopback port free right now (listen on 0, read it, close). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * node-oidc-provider on a free loopback port: one confidential client for `redirectUris`, any
 * login name accepted (its development interactions), the name as `sub` and `preferred_username`.
 */
async function startProvider(redirectUris) {
  // oidc-provider is an ES module in web-client/'s node_modules (one package.json, one lockfile).
  const require = createRequire(path.join(repoRoot, "web-client", "package.json"));
  const { default: Provider } = await import(pathToFileURL(require.resolve("oidc-provider")).href);
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: redirectUris,
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, preferred_username: id }) }),
    claims: { openid: ["sub"], profile: ["preferred_username"] },
    // The provider's defaults: the profile claims are only in the userinfo answer (the code
    // flow's rule in the spec), which the gateway asks when the ID token lacks the name.
    cookies: { keys: [randomBytes(32).toString("hex")] },
    features: { devInteractions: { enabled: true } },
  });
  const server = http.createServer(provider.callback());
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const close = () =>
    within(5000, "closing the provider", new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    })).catch(() => {});
  return { issuer, close };
}

/** A gateway on a known port whose OIDC redirect URL is registered at the provider. */
function gatewayEnv(port, issuer, extra = {}) {
  return {
    MOONGATE_BIND: `127.0.0.1:${port}`,
    MOONGATE_ADMIN_CREDENTIALS: ADMIN,
    MOONGATE_OIDC_ISSUER: issuer,
    MOONGATE_OIDC_CLIENT_ID: CLIENT_ID,
    MOONGATE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    MOONGATE_OIDC_REDIRECT_URL: `http://127.0.0.1:${port}/api/auth/oidc/callback`,
    MOONGATE_OIDC_NAME: PROVIDER_NAME,
    ...extra,
  };
}

/** `GET /api/auth/me` with `token`. */
async function me(gw, token) {
  const r = await fetch(gw.url + "/api/auth/me", { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, "the sign-in token was not accepted");
  return r.json();
}

/**
 * From moongate's sign-in page through the provider's login (as `name`) and consent pages, until
 * the browser is back on the gateway. Screenshots the provider's login page as `shotName`.
 */
async function signInWithProvider(page, gw, issuer, name, shotName) {
  const button = page.locator("[data-testid=sso-login]");
  await button.waitFor({ timeout: 10000 });
  assert.equal((await button.textContent())?.trim(), `Sign in with ${PROVIDER_NAME}`);
  await button.click();
  await page.waitForURL((u) => u.href.startsWith(issuer + "/interaction/"), { timeout: 15000 });
  await page.fill("input[name=login]", name);
  await page.fill("input[name=password]", "any-password");
  if (shotName) await shot(page, shotName);
  await page.click("button[type=submit]");
  // The consent page comes at a first grant; the browser then goes back to the gateway.
  const consentOrBack = await until(15000, "the provider's consent page or the gateway", async () => {
    if (page.url().startsWith(gw.url + "/")) return "back";
    const onConsent = page.url().startsWith(issuer + "/interaction/") && (await page.locator("button:has-text('Continue')").count()) > 0;
    return onConsent ? "consent" : null;
  });
  if (consentOrBack === "consent") await page.click("button:has-text('Continue')");
  await page.waitForURL((u) => u.href.startsWith(gw.url + "/"), { timeout: 15000 });
}

/**
 * Opens the demo host's first app as the signed-in user; `expect` is "frames" (the stream plays
 * and Chromium decodes a frame) or a refusal's reason (the stream stops with it, shown on the page;
 * no session reaches the host). Screenshots the result as `shotName`.
 */
async function streamAs(page, gw, expect, shotName) {
  await page.click("[data-testid=open-host]");
  await page.click("[data-testid=app][data-app-id='1']");
  const ended = await page.waitForFunction(() => {
    const m = window.moongate;
    return m && ["streaming", "stopped"].includes(m.state) ? { state: m.state, reason: m.reason } : null;
  }, null, { timeout: 30000 });
  const { state, reason } = await ended.jsonValue();
  if (expect === "frames") {
    assert.equal(state, "streaming", `the stream stopped: ${reason}`);
    await page.waitForFunction(() => window.moongate.stats()?.firstFrameMs, null, { timeout: 10000 });
  } else {
    assert.equal(state, "stopped", "the stream started");
    assert.match(reason ?? "", expect);
    await page.locator("[data-testid=stream-error]").waitFor();
    assert.equal((await hostSessions(gw)).length, 0, "the refused stream reached the host");
  }
  await shot(page, shotName);
  await page.goto(gw.url + "/#/");
  await until(15000, "no host session after the stream", async () => (await hostSessions(gw)).length === 0);
}

/** Every URL in the tab's session history (Chromium's own list, through CDP). */
async function historyUrls(browser, page) {
  const cdp = await browser.context.newCDPSession(page);
  try {
    const { entries } = await cdp.send("Page.getNavigationHistory");
    return entries.map((e) => e.url);
  } finally {
    await cdp.detach().catch(() => {});
  }
}

let provider;
let gwPorts;

before(async () => {
  gwPorts = [await freePort(), await freePort()];
  while (gwPorts[1] === gwPorts[0]) gwPorts[1] = await freePort();
  provider = await startProvider(gwPorts.map((p) => `http://127.0.0.1:${p}/api/auth/oidc/callback`));
});

after(async () => {
  await provider?.close();
});

/**
 * A gateway for `env`, and a fresh Chromium whose pages reach nothing but loopback (the provider's
 * pages link a web font; there is no network here, and nothing should wait on it).
 */
async function startGatewayAndBrowser(env) {
  const gw = await startGateway({ env });
  try {
    const browser = await launchBrowser();
    await browser.context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (r) => r.abort());
    return { gw, browser };
  } catch (e) {
    await gw.stop();
    throw e;
  }
}

test("a user an admin added signs in through the provider and streams; an unknown name is refused", { timeout: 240000 }, async () => {
  const { gw, browser } = await startGatewayAndBrowser(gatewayEnv(gwPorts[0], provider.issuer));
  try {
    assert.equal(gw.url, `http://127.0.0.1:${gwPorts[0]}`);
    const providers = await (await fetch(gw.url + "/api/auth/providers")).json();
    assert.deepEqual(providers, { oidc: { name: PROVIDER_NAME } });
    const added = await fetch(gw.url + "/api/admin/users", {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "olga", password: "olga-password-unused", role: "user" }),
    });
    assert.equal(added.status, 201, "the admin could not add olga");

    // Olga: moongate → the provider's login and consent → moongate, signed in.
    const page = await browser.context.newPage();
    await page.goto(gw.url + "/");
    await shot(page, "oidc-login-page");
    await signInWithProvider(page, gw, provider.issuer, "olga", "oidc-provider-login");
    await page.waitForSelector("[data-testid=host][data-online=true]", { timeout: 20000 });
    await until(5000, "olga's name in the top bar", async () => ((await page.textContent("[data-testid=whoami]")) ?? "") === "olga");
    await shot(page, "oidc-olga-signed-in");
    const token = await page.evaluate(() => localStorage.getItem("moongate.credential"));
    assert.match(token ?? "", /^[0-9a-f]{64}$/, "the sign-in token is the stored credential");
    assert.equal(page.url(), gw.url + "/#/");
    const history = await historyUrls(browser, page);
    assert.ok(!history.some((u) => u.includes(token)), `the token stayed in the history: ${history.length} entries`);
    assert.ok(!history.some((u) => u.includes("#/sso/")), "an #/sso/ entry stayed in the history");
    const who = await me(gw, token);
    assert.equal(who.user, "olga");
    assert.equal(who.role, "user");

    // The token is a full sign-in: olga streams the test pattern, frames decoded in Chromium.
    await streamAs(page, gw, "frames", "oidc-olga-streaming");
    await page.click("text=Sign out");
    await page.waitForSelector("[data-testid=sso-login]");
    const out = await fetch(gw.url + "/api/hosts", { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(out.status, 401, "olga's token still worked after signing out");

    // Mallory has no moongate account: back on the sign-in page with the reason, nothing stored.
    await browser.context.clearCookies();
    await signInWithProvider(page, gw, provider.issuer, "mallory", null);
    const error = page.locator("[data-testid=login-error] .notice");
    await error.waitFor({ timeout: 10000 });
    assert.match((await error.textContent()) ?? "", /mallory has no moongate account; an administrator must add it first/);
    assert.equal(await page.evaluate(() => localStorage.getItem("moongate.credential")), null, "a credential was stored for mallory");
    await page.locator("[data-testid=sso-login]").waitFor();
    await shot(page, "oidc-mallory-refused");
    const users = await (await fetch(gw.url + "/api/admin/users", { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    assert.deepEqual(users.map((u) => u.name).sort(), ["olga"], "mallory was created");
  } finally {
    await browser.close();
    await gw.stop();
  }
});

test("with auto-create set to viewer, a new name signs in as a viewer and is refused a stream", { timeout: 180000 }, async () => {
  const { gw, browser } = await startGatewayAndBrowser(gatewayEnv(gwPorts[1], provider.issuer, { MOONGATE_OIDC_AUTO_CREATE_ROLE: "viewer" }));
  try {
    const page = await browser.context.newPage();
    await page.goto(gw.url + "/");
    await signInWithProvider(page, gw, provider.issuer, "victor", null);
    await page.waitForSelector("[data-testid=host][data-online=true]", { timeout: 20000 });
    await until(5000, "victor's name in the top bar", async () => ((await page.textContent("[data-testid=whoami]")) ?? "") === "victor (viewer)");
    const token = await page.evaluate(() => localStorage.getItem("moongate.credential"));
    assert.match(token ?? "", /^[0-9a-f]{64}$/);
    const who = await me(gw, token);
    assert.equal(who.user, "victor");
    assert.equal(who.role, "viewer");
    const users = await (await fetch(gw.url + "/api/admin/users", { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    assert.deepEqual(users.map((u) => [u.name, u.role]), [["victor", "viewer"]]);

    await streamAs(page, gw, /may not do this: a viewer-only account may not start a stream/, "oidc-victor-viewer-refused");

    // Login CSRF: eve goes through the provider in her browser but keeps the redirect back to
    // the gateway, and sends it to someone else. In that other browser it signs nobody in (the
    // sign-in is bound to the browser that started it, by a cookie); in hers it still works.
    await page.click("text=Sign out");
    await browser.context.clearCookies();
    // Playwright's routes do not see the requests of a redirect chain; Chromium's Fetch domain
    // does: the callback is held there and failed, so eve's browser never sends it.
    let captured = null;
    const cdp = await browser.context.newCDPSession(page);
    cdp.on("Fetch.requestPaused", (e) => {
      if (e.request.url.includes("/api/auth/oidc/callback")) {
        captured = e.request.url;
        cdp.send("Fetch.failRequest", { requestId: e.requestId, errorReason: "Aborted" }).catch(() => {});
      } else {
        cdp.send("Fetch.continueRequest", { requestId: e.requestId }).catch(() => {});
      }
    });
    await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*/api/auth/oidc/callback*", requestStage: "Request" }] });
    await page.locator("[data-testid=sso-login]").click();
    await page.waitForURL((u) => u.href.startsWith(provider.issuer + "/interaction/"), { timeout: 15000 });
    await page.fill("input[name=login]", "eve");
    await page.fill("input[name=password]", "any-password");
    await page.click("button[type=submit]");
    await until(15000, "eve's redirect back to the gateway", async () => {
      if (captured) return true;
      const consent = page.locator("button:has-text('Continue')");
      if (page.url().startsWith(provider.issuer + "/interaction/") && (await consent.count()) > 0) await consent.click().catch(() => {});
      return false;
    });
    assert.ok(captured.startsWith(gw.url + "/api/auth/oidc/callback?"), captured);
    const victim = await launchBrowser();
    try {
      const other = await victim.context.newPage();
      await other.goto(captured);
      const error = other.locator("[data-testid=login-error] .notice");
      await error.waitFor({ timeout: 10000 });
      assert.match((await error.textContent()) ?? "", /unknown or expired/);
      assert.equal(await other.evaluate(() => localStorage.getItem("moongate.credential")), null, "the link signed the other browser in");
      await shot(other, "oidc-login-csrf-refused");
    } finally {
      await victim.close();
    }
    await cdp.send("Fetch.disable");
    await cdp.detach().catch(() => {});
    await page.goto(captured);
    await until(10000, "eve signed in in her own browser", async () => ((await page.textContent("[data-testid=whoami]").catch(() => "")) ?? "") === "eve (viewer)");
  } finally {
    await browser.close();
    await gw.stop();
  }
});
