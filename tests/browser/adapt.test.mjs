// Quality that adapts (docs/adaptive-quality.md), the browser's side end to end in Chromium: the
// web client asks for adaptation (its default), streams the demo host's test pattern in WebSocket
// mode, and an administrator moves the stream down its ladder and back up
// (`POST /api/admin/streams/{key}/quality`). Each move restarts the host stream at the new size
// while the page stays: the page is told (the Quality notice), its decoder takes the new
// StreamInit and keeps decoding at the new size, and the host holds one session throughout.
// The same in WebRTC mode: the notice comes on the signaling socket, the peer connection and its
// track stay, and the video element's size follows the restarted stream.
// (The controller's own decisions on a narrowed link are measured by web-server/tests/adapt.rs.)
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { framesGrow, hostSessions, launchBrowser, screenshotDir, startGateway, until } from "./harness.mjs";

const ADMIN = "e2e-admin-" + Math.random().toString(36).slice(2);
const shot = (page, name) => page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });

let gw;
let browser;
before(async () => {
  gw = await startGateway({ env: { MOONGATE_ADMIN_CREDENTIALS: ADMIN } });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.stop();
});

/** The size of the picture the page draws (the canvas follows the decoded frames). */
const canvasSize = (page) => page.$eval("[data-testid=stream] canvas", (c) => `${c.width}x${c.height}`);

/** The admin's request for rung `rung` of stream `key`; resolves with the status. */
async function setRung(key, rung) {
  const r = await fetch(`${gw.url}/api/admin/streams/${encodeURIComponent(key)}/quality`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ rung }),
  });
  return r.status;
}

test("an adaptive stream moves down its ladder and back up while the page keeps decoding", { timeout: 180000 }, async () => {
  const page = await browser.context.newPage();
  try {
    await page.goto(gw.url + "/");
    await page.fill("[data-testid=credential]", gw.credential);
    await page.click("[data-testid=login]");
    await page.waitForSelector("[data-testid=host][data-online=true][data-paired=true]", { timeout: 20000 });
    await page.goto(gw.url + "/#/settings");
    for (const [name, value] of Object.entries({ resolution: "1280x720", mode: "websocket" })) await page.selectOption(`select[name=${name}]`, value);
    assert.equal(await page.isChecked("input[name=adaptive]"), true, "adaptation is on by default");
    await page.goto(gw.url + "/#/");
    await page.click("[data-testid=open-host]");
    await page.click("[data-testid=app][data-app-id='1']");
    await until(30000, "streaming", async () => (await page.evaluate(() => window.moongate?.state)) === "streaming");
    await framesGrow(page, 30, "at the start");
    assert.equal(await canvasSize(page), "1280x720");
    const key = await until(10000, "the stream's key", () => page.evaluate(() => window.moongate?.viewers?.share?.stream));

    // Rungs the ladder does not have are refused; nothing changes.
    assert.equal(await setRung(key, 99), 400);
    assert.equal(await setRung("no-such-stream", 1), 404);

    // Down to the last rung (1280×720 at 10 Mbit/s: 720p, 720p at 60 %, 540p, 360p).
    assert.equal(await setRung(key, 3), 204);
    const down = await until(15000, "the Quality notice", async () => (await page.evaluate(() => window.moongate.quality))[0]);
    assert.deepEqual({ w: down.width, h: down.height, rung: down.rung, reason: down.reason }, { w: 640, h: 360, rung: 3, reason: "admin" });
    assert.equal(down.rungs, 4);
    // The page says so for a few seconds.
    await until(5000, "the notice on the page", async () =>
      ((await page.textContent("[data-testid=stream] .status")) ?? "").includes("An administrator set the quality to 640×360 at 2.3 Mbit/s."),
    );
    await until(15000, "the picture at 640x360", async () => (await canvasSize(page)) === "640x360");
    await framesGrow(page, 30, "at 640x360");
    await shot(page, "adapt-01-lowered");
    assert.equal((await hostSessions(gw)).length, 1, "one host session after the restream");
    assert.equal(await page.evaluate(() => window.moongate.stats().width), 640);

    // And back up to the rung asked for.
    assert.equal(await setRung(key, 0), 204);
    await until(15000, "the picture back at 1280x720", async () => (await canvasSize(page)) === "1280x720");
    await framesGrow(page, 30, "back at 1280x720");
    const changes = await page.evaluate(() => window.moongate.quality.map((q) => `${q.width}x${q.height}`));
    assert.deepEqual(changes, ["640x360", "1280x720"]);
    assert.equal((await hostSessions(gw)).length, 1, "still one host session");
    await shot(page, "adapt-02-restored");
  } finally {
    await page.close();
  }
  await until(15000, "the host session ends with the page", async () => (await hostSessions(gw)).length === 0);
});

/** The key of the one stream on the gateway (`GET /api/admin/sessions`). */
async function onlyStreamKey() {
  return until(10000, "the stream in the admin list", async () => {
    const r = await fetch(`${gw.url}/api/admin/sessions`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    const list = r.ok ? await r.json() : [];
    return list.length === 1 && list[0].key;
  });
}

/** The size of the picture the WebRTC video element plays. */
const videoSize = (page) => page.$eval("[data-testid=stream] video", (v) => `${v.videoWidth}x${v.videoHeight}`);

test("WebRTC mode: the stream moves down its ladder and back up on the same peer connection", { timeout: 180000 }, async () => {
  const page = await browser.context.newPage();
  try {
    await page.goto(gw.url + "/#/settings");
    for (const [name, value] of Object.entries({ resolution: "1280x720", mode: "webrtc" })) await page.selectOption(`select[name=${name}]`, value);
    assert.equal(await page.isChecked("input[name=adaptive]"), true, "adaptation is on by default");
    await page.goto(gw.url + "/#/");
    await page.click("[data-testid=open-host]");
    await page.click("[data-testid=app][data-app-id='1']");
    await until(30000, "streaming", async () => (await page.evaluate(() => window.moongate?.state)) === "streaming");
    assert.equal(await page.evaluate(() => window.moongate.mode), "webrtc");
    await framesGrow(page, 30, "WebRTC at the start");
    await until(10000, "the video at 1280x720", async () => (await videoSize(page)) === "1280x720");
    const key = await onlyStreamKey();
    const peer = await page.evaluate(() => window.moongate.stats().framesDecoded);

    assert.equal(await setRung(key, 99), 400);
    assert.equal(await setRung(key, 3), 204);
    const down = await until(15000, "the Quality notice", async () => (await page.evaluate(() => window.moongate.quality))[0]);
    assert.deepEqual({ w: down.width, h: down.height, rung: down.rung, reason: down.reason }, { w: 640, h: 360, rung: 3, reason: "admin" });
    await until(15000, "the video at 640x360", async () => (await videoSize(page)) === "640x360");
    await framesGrow(page, 30, "WebRTC at 640x360");
    await shot(page, "adapt-03-webrtc-lowered");
    assert.equal((await hostSessions(gw)).length, 1, "one host session after the restream");

    assert.equal(await setRung(key, 0), 204);
    await until(15000, "the video back at 1280x720", async () => (await videoSize(page)) === "1280x720");
    await framesGrow(page, 30, "WebRTC back at 1280x720");
    // The same peer connection throughout: its decoded-frame count only grew.
    assert.ok((await page.evaluate(() => window.moongate.stats().framesDecoded)) > peer + 60);
    assert.equal(await page.evaluate(() => window.moongate.state), "streaming");
    const changes = await page.evaluate(() => window.moongate.quality.map((q) => `${q.width}x${q.height}`));
    assert.deepEqual(changes, ["640x360", "1280x720"]);
    assert.equal((await hostSessions(gw)).length, 1, "still one host session");
  } finally {
    await page.close();
  }
  await until(15000, "the host session ends with the page", async () => (await hostSessions(gw)).length === 0);
});
