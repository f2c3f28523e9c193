// The gateway SIGKILLed mid-stream and started again on the same port and data directory: the
// page, left alone, reconnects through the web client's one reconnect owner (the stream view and
// its ReconnectPolicy: a dropped socket, 1006, is retried with backoff) and decodes frames again.
// The page's stream sockets are counted from inside the page: never two open at once (one owner).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import path from "node:path";
import { launchBrowser, screenshotDir, startGateway, until } from "./harness.mjs";

/** Counts the page's stream sockets (opened, open now, most open at once) before any script runs. */
function countStreamSockets() {
  const Native = window.WebSocket;
  const c = { opened: 0, open: 0, peak: 0, closes: [] };
  window.__streamSockets = c;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (!String(url).includes("/api/ws/stream")) return;
      c.opened += 1;
      c.open += 1;
      c.peak = Math.max(c.peak, c.open);
      this.addEventListener("close", (e) => {
        c.open -= 1;
        c.closes.push(e.code);
      });
    }
  };
}

/** The page's stream: state, decoded frames of the current connection. */
const view = (page) =>
  page.evaluate(() => {
    const m = window.moongate;
    return { state: m?.state, reason: m?.reason, decoded: m?.stats()?.framesDecoded ?? 0, sockets: window.__streamSockets };
  });

describe("gateway restart", () => {
  let gw;
  let browser;
  let dataDir;
  const figures = [];
  before(async () => {
    gw = await startGateway();
    dataDir = gw.dataDir;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    for (const f of figures) console.log(`# ${f}`);
  });

  test("SIGKILL of the gateway mid-stream: the page reconnects by itself after the restart and decodes again", { timeout: 120000 }, async () => {
    const page = await browser.context.newPage();
    await page.addInitScript(countStreamSockets);
    await page.goto(gw.url + "/");
    await page.fill("[data-testid=credential]", gw.credential);
    await page.click("[data-testid=login]");
    await page.waitForSelector("[data-testid=host][data-online=true][data-paired=true]", { timeout: 20000 });
    await page.goto(gw.url + "/#/settings");
    await page.waitForSelector("[data-testid=settings]");
    await page.selectOption("select[name=mode]", "websocket");
    await page.goto(gw.url + "/#/");
    await page.click("[data-testid=open-host]");
    await page.click("[data-testid=app][data-app-id='1']");
    await until(30000, "the stream decodes", async () => {
      const v = await view(page);
      if (v.state === "stopped") throw new Error(`stream stopped: ${v.reason}`);
      return v.state === "streaming" && v.decoded > 30;
    }, 50);
    const port = new URL(gw.url).port;

    // kill -9: no close frame, the page's socket just drops (1006).
    await gw.kill();
    const killedAt = Date.now();
    const down = await until(10000, "the page notices the dropped gateway", async () => {
      const v = await view(page);
      return v.state !== "streaming" && v;
    }, 20);
    assert.notEqual(down.state, "stopped", `the page gave up at once: ${down.reason}`);
    // While the gateway is down, the page keeps trying (each attempt refused: 1006) and does not
    // give up: two failed attempts before the restart.
    const tried = await until(20000, "two reconnect attempts against the dead gateway", async () => {
      const v = await view(page);
      if (v.state === "stopped") throw new Error(`the page gave up: ${v.reason}`);
      return v.sockets.closes.length >= 3 && v;
    }, 20);
    await page.screenshot({ path: path.join(screenshotDir, "60-gateway-killed.png") });

    // The same port and data directory (its store: hosts, identities, credential).
    const restartAt = Date.now();
    gw = await startGateway({ dataDir, credential: gw.credential, env: { MOONGATE_BIND: `127.0.0.1:${port}` } });
    const upAt = Date.now();
    assert.equal(new URL(gw.url).port, port);
    // Nobody touches the page: its reconnect owner brings the stream back.
    await until(60000, "the page streams again by itself", async () => {
      const v = await view(page);
      if (v.state === "stopped") throw new Error(`the page stopped reconnecting: ${v.reason}`);
      return v.state === "streaming" && v.decoded > 0;
    }, 10);
    const firstFrameAt = Date.now();
    const a = (await view(page)).decoded;
    await page.waitForTimeout(2000);
    const b = await view(page);
    await page.screenshot({ path: path.join(screenshotDir, "61-gateway-restarted.png") });
    figures.push(
      `gateway restart: first decoded frame ${firstFrameAt - upAt} ms after the restarted gateway was up ` +
        `(${firstFrameAt - restartAt} ms after its start, ${firstFrameAt - killedAt} ms after the kill, ` +
        `${tried.sockets.closes.length - 1} attempts refused while it was down); ` +
        `${b.decoded - a} frames decoded in the next 2 s; stream sockets opened ${b.sockets.opened}, ` +
        `at most ${b.sockets.peak} open at once, closes ${JSON.stringify(b.sockets.closes)}`,
    );
    assert.ok(b.decoded - a >= 30, `decoded ${b.decoded - a} frames in 2 s after the reconnect`);
    assert.equal(b.sockets.peak, 1, "one stream socket at a time: one reconnect owner");
    assert.ok(b.sockets.closes.every((c) => c === 1006), `the kill and the refused attempts are 1006: ${b.sockets.closes}`);
    await page.close();
  });
});
