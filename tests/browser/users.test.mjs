// Named users end to end: a real gateway with its embedded demo host, the admin dashboard adding a
// user and a viewer through its Users card, then the main page signing each of them in with a name
// and a password. The user streams the test pattern (frames decoded in Chromium) and signs out, and
// her token stops working; a wrong password is told as such; the viewer sees the hosts, and the
// gateway refuses her stream with the reason shown. (The proxy header, which a browser cannot
// send from another address, is tested against the real gateway in web-server/tests/users.rs.)
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { hostSessions, launchBrowser, screenshotDir, startGateway, until } from "./harness.mjs";

const ADMIN = "e2e-admin-" + Math.random().toString(36).slice(2);
const shot = (page, name) => page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });

/** Adds a user through the dashboard's Users card and waits for its row. */
async function addUser(admin, name, password, role) {
  await admin.fill("[data-testid=user-name]", name);
  await admin.fill("[data-testid=user-password]", password);
  await admin.selectOption("[data-testid=user-role]", role);
  await admin.click("[data-testid=add-user]");
  await admin.locator(`#users tr[data-user="${name}"]`).waitFor({ timeout: 10000 });
}

/** Signs `name` in on the main page's account form; resolves once the host list is shown. */
async function signInAs(page, url, name, password) {
  await page.goto(url + "/#/login");
  await page.fill("[data-testid=username]", name);
  await page.fill("[data-testid=password]", password);
  await page.click("[data-testid=login-user]");
  await page.waitForSelector("[data-testid=host][data-online=true]", { timeout: 20000 });
  await until(5000, "the signed-in name in the top bar", async () => ((await page.textContent("[data-testid=whoami]")) ?? "").includes(name));
}

/** Opens the demo host's first app and waits until the stream plays or stops. */
async function openApp(page) {
  await page.click("[data-testid=open-host]");
  await page.click("[data-testid=app][data-app-id='1']");
  return until(30000, "the stream plays or stops", () =>
    page.evaluate(() => {
      const m = window.moongate;
      return m && (m.state === "streaming" || m.state === "stopped") ? { state: m.state, reason: m.reason } : null;
    }),
  );
}

test("an admin adds users; a user streams and signs out, a viewer is refused a stream", { timeout: 180000 }, async () => {
  const gw = await startGateway({ env: { MOONGATE_ADMIN_CREDENTIALS: ADMIN } });
  const browser = await launchBrowser().catch(async (e) => {
    await gw.stop();
    throw e;
  });
  try {
    const admin = await browser.context.newPage();
    await admin.goto(gw.url + "/admin.html");
    await admin.fill('input[name="admin-credential"]', ADMIN);
    await admin.click('button[type="submit"]');
    await admin.locator("#users").waitFor({ timeout: 10000 });
    await addUser(admin, "alice", "alice-password", "user");
    await addUser(admin, "vic", "vic-password", "viewer");
    assert.match((await admin.textContent('#users tr[data-user="vic"]')) ?? "", /viewer/);
    await shot(admin, "users-admin");

    // A wrong password is said plainly, and nothing is stored.
    const page = await browser.context.newPage();
    await page.goto(gw.url + "/#/login");
    await page.fill("[data-testid=username]", "alice");
    await page.fill("[data-testid=password]", "not-her-password");
    await page.click("[data-testid=login-user]");
    await page.waitForSelector(".notice", { timeout: 10000 });
    assert.match(await page.textContent(".notice"), /Wrong user name or password/);

    // Alice signs in and streams: frames are decoded.
    await signInAs(page, gw.url, "alice", "alice-password");
    const token = await page.evaluate(() => localStorage.getItem("moongate.credential"));
    assert.match(token, /^[0-9a-f]{64}$/, "the sign-in token is the stored credential");
    const played = await openApp(page);
    assert.equal(played.state, "streaming", `alice's stream: ${played.reason}`);
    await until(10000, "a decoded frame", () => page.evaluate(() => window.moongate.stats()?.firstFrameMs));
    await shot(page, "users-alice-streaming");
    await page.goto(gw.url + "/#/");
    await until(15000, "no host session after leaving the stream", async () => (await hostSessions(gw)).length === 0);
    await page.click("text=Sign out");
    await page.waitForSelector("[data-testid=username]");
    const after = await fetch(gw.url + "/api/hosts", { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(after.status, 401, "the token still worked after signing out");

    // Vic sees the hosts but may not start a stream; the reason is shown.
    await signInAs(page, gw.url, "vic", "vic-password");
    assert.match((await page.textContent("[data-testid=whoami]")) ?? "", /vic \(viewer\)/);
    const refused = await openApp(page);
    assert.equal(refused.state, "stopped", "a viewer's stream started");
    assert.match(refused.reason ?? "", /may not do this: a viewer-only account may not start a stream/);
    await page.waitForSelector("[data-testid=stream-error]");
    await shot(page, "users-viewer-refused");
    assert.equal((await hostSessions(gw)).length, 0, "the viewer's refusal reached the host");

    // Removing alice from the dashboard: she can no longer sign in.
    await admin.locator('#users tr[data-user="alice"] button').click();
    await admin.locator('#users tr[data-user="alice"]').waitFor({ state: "detached", timeout: 10000 });
    const gone = await fetch(gw.url + "/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "alice", password: "alice-password" }),
    });
    assert.equal(gone.status, 401);
  } finally {
    await browser.close();
    await gw.stop();
  }
});
