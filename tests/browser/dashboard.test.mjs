// The admin dashboard end to end: a real gateway with its embedded demo host, one Chromium tab
// streaming (a WebSocket speaking the Helix contract from the gateway's own origin), another tab
// on /admin.html signed in with the admin credential. The dashboard lists the stream with its
// client, kills it, and the row goes; the streaming tab's socket is closed with 4001 and the host
// has no session left. The stream's client identity is listed and revoked (unpaired on the host),
// and the same client streams again on a fresh identity. A user credential is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startGateway, launchBrowser, screenshotDir, until, hostSessions, wolfApi } from "./harness.mjs";

const ADMIN = "e2e-admin-" + Math.random().toString(36).slice(2);
const SESSION = "dash";
const CLIENT = "dashclient";
const KEY = `${SESSION}--${CLIENT}`;

/** Opens a stream from `page` (already on the gateway's origin); resolves once it is connected. */
async function openStream(page, credential) {
  await page.evaluate(
    ({ credential, session, client }) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/api/ws/stream?session_id=${session}`);
        ws.binaryType = "arraybuffer";
        window.__stream = { frames: 0, close: null };
        ws.onopen = () =>
          ws.send(
            JSON.stringify({
              type: "init",
              credentials: credential,
              host_id: 0,
              app_id: 1,
              session_id: session,
              client_unique_id: client,
              width: 640,
              height: 360,
              fps: 30,
              bitrate: 2000,
              packet_size: 1024,
              play_audio_local: false,
              video_supported_formats: 1,
            }),
          );
        ws.onmessage = (e) => {
          if (typeof e.data === "string") {
            if (e.data.includes("ConnectionComplete")) resolve();
            if (e.data.includes('"error"')) window.__stream.error = e.data;
          } else {
            window.__stream.frames++;
          }
        };
        ws.onclose = (e) => {
          window.__stream.close = { code: e.code, reason: e.reason };
          reject(new Error(`closed before ConnectionComplete: ${e.code} ${e.reason}`));
        };
        setTimeout(() => reject(new Error("no ConnectionComplete in 30 s")), 30000);
      }),
    { credential, session: SESSION, client: CLIENT },
  );
}

async function signIn(page, url, credential) {
  await page.goto(url + "/admin.html");
  await page.fill('input[name="admin-credential"]', credential);
  await page.click('button[type="submit"]');
}

test("the dashboard shows a live stream with its client, kills it and sees it go", { timeout: 120000 }, async () => {
  const gw = await startGateway({ env: { MOONGATE_ADMIN_CREDENTIALS: ADMIN } });
  const browser = await launchBrowser().catch(async (e) => {
    await gw.stop();
    throw e;
  });
  try {
    const player = await browser.context.newPage();
    await player.goto(gw.url + "/");
    await openStream(player, gw.credential);
    await until(10000, "video frames reach the streaming tab", () => player.evaluate(() => window.__stream.frames > 10));

    const admin = await browser.context.newPage();
    await signIn(admin, gw.url, ADMIN);
    const row = admin.locator(`#sessions tr[data-key="${KEY}"]`);
    await row.waitFor({ timeout: 5000 });
    assert.equal((await row.locator("td.client").textContent())?.trim(), CLIENT);
    // Rates arrive with the streamer's stats (about once a second); the charts draw them.
    await until(10000, "fps out shown", async () => Number((await row.locator("td.num").nth(4).textContent()) ?? "0") > 0);
    assert.ok((await row.locator("svg.spark").count()) >= 2, "bitrate and fps sparklines");
    // The certificate cache lists the client; the host card shows the stream and the Wolf session.
    await admin.locator(`#clients tr[data-client="${CLIENT}"]`).waitFor({ timeout: 10000 });
    await admin.locator("#hosts .host-card").first().waitFor({ timeout: 10000 });
    const hostText = await admin.locator("#hosts .host-card").first().textContent();
    assert.match(hostText ?? "", /1 streams/);
    // Log lines of the stream are in the log view.
    await until(10000, "log lines of the session", async () => ((await admin.locator("#logs").textContent()) ?? "").includes(KEY));
    await admin.screenshot({ path: path.join(screenshotDir, "dashboard-live.png"), fullPage: true });

    // Kill it from the dashboard.
    const t0 = Date.now();
    await row.locator("button.kill").click();
    await row.waitFor({ state: "detached", timeout: 10000 });
    console.log(`row gone ${Date.now() - t0} ms after the kill click`);
    const close = await until(5000, "the streaming tab's socket closed", () => player.evaluate(() => window.__stream.close));
    assert.equal(close.code, 4001);
    assert.equal(close.reason, "stopped by an administrator");
    assert.equal((await hostSessions(gw)).length, 0, "no host session left");
    await until(5000, "empty sessions table", async () => ((await admin.locator("#sessions-count").textContent()) ?? "").startsWith("0 live"));
    await admin.screenshot({ path: path.join(screenshotDir, "dashboard-killed.png"), fullPage: true });

    // The client's identity with the embedded host is listed; revoking it unpairs it on the host.
    const pairedBefore = (await wolfApi(gw, "/api/v1/clients")).clients.length;
    const idRow = admin.locator(`#identities tr[data-client="${CLIENT}"]`);
    await idRow.waitFor({ timeout: 10000 });
    assert.match((await idRow.textContent()) ?? "", /paired/);
    assert.match((await idRow.locator("td").nth(5).textContent()) ?? "", /^\d+d \d+h$/, "expiry in days (30 by default)");
    const revoke = idRow.locator("button.revoke");
    await revoke.click();
    assert.equal((await revoke.textContent())?.trim(), "Confirm revoke", "the first click only arms the button");
    await revoke.click();
    await until(5000, "the revocation note", async () => /Revoked dashclient: unpaired on the host/.test((await admin.locator("#identities-note").textContent()) ?? ""));
    await idRow.waitFor({ state: "detached", timeout: 5000 });
    assert.equal((await wolfApi(gw, "/api/v1/clients")).clients.length, pairedBefore - 1, "the host forgot the identity");
    await admin.screenshot({ path: path.join(screenshotDir, "dashboard-revoked.png"), fullPage: true });
    // The same client streams again: a new identity is made and paired on demand.
    await openStream(player, gw.credential);
    await until(10000, "video frames after the revocation", () => player.evaluate(() => window.__stream.frames > 10));
    await idRow.waitFor({ timeout: 10000 });
    await player.close();
    await until(10000, "no host session after the tab closed", async () => (await hostSessions(gw)).length === 0);

    // The user credential does not open the dashboard.
    const user = await browser.context.newPage();
    await user.goto(gw.url + "/admin.html");
    await user.evaluate(() => sessionStorage.clear());
    await signIn(user, gw.url, gw.credential);
    await user.locator('[role="alert"]').waitFor({ timeout: 5000 });
    assert.match((await user.locator('[role="alert"]').textContent()) ?? "", /admin credential/);
    assert.equal(await user.locator("#sessions").count(), 0);
  } finally {
    await browser.close();
    await gw.stop();
  }
});
