// Real hosts, as a user meets them: a Sunshine-style host with no pairing API (a separate
// `demo-host` process in Wolf-strict mode: video RTP timestamp 0, frames padded to 1000 bytes, a
// /cancel before the ENet disconnect counted as the crash it is on real Wolf) added through the
// web client, paired with the PIN typed on the host, streamed in WebSocket and WebRTC mode, and
// taken over by a second tab; then 20 tabs killed mid-stream against the embedded (strict) host,
// each leaving the host free.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { hostSessions, launchBrowser, repoRoot, screenshotDir, startGateway, until, within } from "./harness.mjs";

/** A `demo-host` process: strict, no Wolf API, ephemeral ports on loopback; commands on stdin. */
async function startDemoHost() {
  const bin = path.join(repoRoot, "target", "debug", "demo-host");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build --workspace --bins\` first`);
  const dataDir = mkdtempSync(path.join(tmpdir(), "mgh-"));
  const proc = spawn(bin, ["--bind", "127.0.0.1", "--ephemeral-ports", "--no-pairing-api", "--strict", "--data-dir", dataDir, "--hostname", "sunshine-style"], {
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => proc.once("exit", r));
  const http = await within(30000, "demo-host prints its ports", until(30000, "HTTP port", () => out.match(/HTTP\s+(\d+)/)?.[1]));
  return {
    http: Number(http),
    log: () => out,
    command: (line) => proc.stdin.write(line + "\n"),
    /** The host's own counters: `/cancel`s before the ENet disconnect, and live sessions. */
    async stats() {
      const mark = out.length;
      proc.stdin.write("stats\n");
      const m = await until(5000, "the stats line", () => out.slice(mark).match(/disconnects-after-cancel (\d+) violations \d+ sessions (\d+)/));
      return { disconnectsAfterCancel: Number(m[1]), sessions: Number(m[2]) };
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.stdin.write("quit\n");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `/serverinfo`'s state as any Moonlight client reads it. */
async function serverState(port) {
  const r = await fetch(`http://127.0.0.1:${port}/serverinfo?uniqueid=0123456789ABCDEF&uuid=00000000-0000-0000-0000-000000000000`);
  return (await r.text()).match(/<state>([^<]*)<\/state>/)?.[1];
}

/** Resolves with the mode once the page's stream is streaming; a failure says what the page showed. */
const streaming = (page) =>
  until(30000, "the stream reaches streaming", () =>
    page.evaluate(() => {
      const m = window.moongate;
      if (m?.state === "stopped") throw new Error(`stream stopped: ${m.reason}`);
      return m?.state === "streaming" && m.mode;
    }),
  50).catch(async (e) => {
    const seen = await page
      .evaluate(() => `state ${window.moongate?.state} (${window.moongate?.reason}); page: ${document.body.innerText.slice(0, 600)}`)
      .catch((err) => String(err));
    throw new Error(`${e.message}; ${seen}`);
  });

describe("real hosts", () => {
  let gw;
  let host;
  let browser;
  const figures = [];
  before(async () => {
    host = await startDemoHost();
    gw = await startGateway();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
    await host?.stop();
    for (const f of figures) console.log(`# ${f}`);
  });

  test("a host with no pairing API: add, pair with the PIN, stream in both modes, a second tab takes over", { timeout: 180000 }, async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(gw.url + "/");
      await page.fill("[data-testid=credential]", gw.credential);
      await page.click("[data-testid=login]");
      await page.waitForSelector("[data-testid=host][data-online=true]");
      await page.click("text=Add host");
      await page.fill("input[name=address]", "127.0.0.1");
      await page.fill("input[name=name]", "Sunshine-style host");
      await page.fill("input[name=http_port]", String(host.http));
      await page.click("dialog button[type=submit]");
      const card = page.locator("[data-testid=host]", { hasText: "Sunshine-style host" });
      await card.locator("text=not paired").waitFor({ timeout: 20000 });
      await card.locator("button", { hasText: "Pair" }).click();
      const pin = (await page.locator("[data-testid=pin]").textContent()).trim();
      assert.match(pin, /^\d{4}$/);
      assert.match(await page.locator("[data-testid=pairing-policy]").textContent(), /PIN/);
      await page.screenshot({ path: path.join(screenshotDir, "20-no-api-host-pin.png") });
      // The user types the PIN on the host (its console: no API can do it for them).
      await until(10000, "the host lists the pairing request", async () => {
        const mark = host.log().length;
        host.command("pending");
        await new Promise((r) => setTimeout(r, 200));
        return /\(127\.0\.0\.1\)/.test(host.log().slice(mark));
      });
      host.command(`pin ${pin}`);
      await page.locator("[data-testid=pair-dialog]", { hasText: "ready" }).waitFor({ timeout: 30000 });
      await page.click("[data-testid=pair-dialog] button:has-text('Done')");
      await card.locator(".badge.ok", { hasText: /^paired$/ }).waitFor({ timeout: 10000 });

      let streamUrl;
      for (const mode of ["websocket", "webrtc"]) {
        await page.goto(gw.url + "/#/settings");
        await page.selectOption("select[name=resolution]", "1280x720");
        await page.selectOption("select[name=fps]", "60");
        await page.selectOption("select[name=mode]", mode);
        await page.check("input[name=stats]");
        await page.goto(gw.url + "/#/");
        await card.locator("[data-testid=open-host]").click();
        await page.click("[data-testid=app][data-app-id='1']");
        assert.equal(await streaming(page), mode);
        await until(10000, "a first frame", () => page.evaluate(() => window.moongate.stats()?.framesDecoded > 0));
        const a = await page.evaluate(() => window.moongate.stats());
        await page.waitForTimeout(3000);
        const b = await page.evaluate(() => window.moongate.stats());
        const decoded = b.framesDecoded - a.framesDecoded;
        const received = b.framesReceived - a.framesReceived;
        figures.push(`no-pairing-API Wolf-strict host, ${mode}: ${decoded} frames decoded of ${received} received in 3 s (${b.codec} ${b.width}x${b.height})`);
        assert.ok(decoded >= 100, `${mode}: decoded ${decoded} frames in 3 s`);
        // The host sends RTP timestamp 0; the streamer's own clock keeps WebRTC frames apart.
        assert.ok(decoded * 100 >= received * 95, `${mode}: ${decoded} of ${received} frames decoded`);
        await page.screenshot({ path: path.join(screenshotDir, `21-no-api-host-${mode}.png`) });
        streamUrl = page.url();
        await page.goto(gw.url + "/#/");
        await until(15000, "the host has no session after the stream", async () => (await host.stats()).sessions === 0);
        assert.equal(await serverState(host.http), "SUNSHINE_SERVER_FREE");
      }

      // Every browser streams through the one PIN-paired identity: a second tab takes over.
      await page.goto(streamUrl);
      await streaming(page);
      const page2 = await browser.context.newPage();
      try {
        await page2.goto(streamUrl);
        await streaming(page2);
        const reason = await until(15000, "the first tab stops as superseded", () =>
          page.evaluate(() => window.moongate.state === "stopped" && window.moongate.reason),
        );
        assert.match(reason, /another tab|took over/);
      } finally {
        await page2.close({ runBeforeUnload: false });
      }
      await until(15000, "the host has no session after the tabs closed", async () => (await host.stats()).sessions === 0);
      assert.equal((await host.stats()).disconnectsAfterCancel, 0, `no /cancel before the ENet disconnect:\n${host.log().slice(-2000)}`);
    } finally {
      await page.close().catch(() => {});
    }
  });

  test("20 tabs killed mid-stream leave the host free every time", { timeout: 240000 }, async () => {
    const page = await browser.context.newPage();
    await page.goto(gw.url + "/");
    // Signed in already when the test above ran in this browser profile.
    if (await page.locator("[data-testid=credential]").isVisible().catch(() => false)) {
      await page.fill("[data-testid=credential]", gw.credential);
      await page.click("[data-testid=login]");
    }
    await page.waitForSelector("[data-testid=host][data-online=true]");
    await page.goto(gw.url + "/#/settings");
    await page.selectOption("select[name=resolution]", "1280x720");
    await page.selectOption("select[name=mode]", "websocket");
    await page.goto(gw.url + "/#/");
    await page.locator("[data-testid=host]", { hasText: "embedded" }).locator("[data-testid=open-host]").click();
    await page.click("[data-testid=app][data-app-id='1']");
    await streaming(page);
    const streamUrl = page.url();
    await page.close({ runBeforeUnload: false });
    await until(15000, "0 host sessions", async () => (await hostSessions(gw)).length === 0);
    const [{ http_port: httpPort }] = await (await fetch(gw.url + "/api/hosts", { headers: { Authorization: `Bearer ${gw.credential}` } })).json();
    const times = [];
    for (let n = 0; n < 20; n++) {
      const tab = await browser.context.newPage();
      await tab.goto(streamUrl);
      await streaming(tab);
      await until(10000, "a decoded frame", () => tab.evaluate(() => window.moongate.stats()?.framesDecoded > 0));
      // The renderer dies: no Close frame, no unload handler.
      const cdp = await browser.context.newCDPSession(tab);
      const crashed = new Promise((r) => tab.once("crash", r));
      const t = Date.now();
      // Page.crash never answers (the renderer it would answer from is gone).
      cdp.send("Page.crash").catch(() => {});
      await within(10000, `tab ${n}: the renderer crashed`, crashed);
      await tab.close({ runBeforeUnload: false }).catch(() => {});
      await until(15000, `tab ${n}: 0 host sessions`, async () => (await hostSessions(gw)).length === 0);
      await until(5000, `tab ${n}: the host is free`, async () => (await serverState(httpPort)) === "SUNSHINE_SERVER_FREE");
      times.push(Date.now() - t);
      assert.doesNotMatch(gw.log(), /ENet disconnect after \/cancel/, `tab ${n}: the strict host saw /cancel before the ENet disconnect`);
    }
    times.sort((x, y) => x - y);
    figures.push(`20 tabs killed mid-stream: tab killed → host free p50 ${times[10]} ms, worst ${times[19]} ms; 0 teardown-order violations`);
  });
});
