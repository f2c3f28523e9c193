// Surround in the real client: pick 5.1 or 7.1 in the settings, stream the demo host, and check
// what Chromium's WebCodecs decoder puts out. The demo host plays each speaker at its own pitch,
// so the decoded channel order (after the gateway's layout, the client's OpusHead and Chromium's
// own channel handling) is checked speaker by speaker.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { hostSessions, launchBrowser, screenshotDir, startGateway, until } from "./harness.mjs";

/** The demo host's pitch per speaker (FL FR FC LFE BL BR SL SR), relative to front left. */
const SPEAKER_PITCH = [1.0, 1.25, 1.5, 0.25, 1.75, 2.0, 2.25, 2.5];

/** In the page, before the client loads: keep a copy of the first 0.6 s the AudioDecoder outputs. */
function tapAudioDecoder() {
  const tap = { configs: [], planes: null, frames: 0, rate: 48000 };
  window.__audioTap = tap;
  const Original = window.AudioDecoder;
  if (!Original) return;
  window.AudioDecoder = class extends Original {
    constructor(init) {
      super({
        ...init,
        output: (d) => {
          if (tap.frames < 0.6 * d.sampleRate) {
            tap.rate = d.sampleRate;
            tap.planes ??= Array.from({ length: d.numberOfChannels }, () => []);
            for (let c = 0; c < d.numberOfChannels; c++) {
              const p = new Float32Array(d.numberOfFrames);
              d.copyTo(p, { planeIndex: c, format: "f32-planar" });
              tap.planes[c].push(...p);
            }
            tap.frames += d.numberOfFrames;
          }
          init.output(d);
        },
      });
    }
    configure(config) {
      tap.configs.push({ channels: config.numberOfChannels, description: !!config.description });
      return super.configure(config);
    }
  };
}

/** In the page: each decoded channel's pitch (zero crossings, after 0.1 s of warm-up). */
function tappedPitches() {
  const t = window.__audioTap;
  if (!t.planes || t.frames < 0.6 * t.rate) return null;
  return t.planes.map((samples) => {
    const s = samples.slice(Math.round(0.1 * t.rate));
    let crossings = 0;
    for (let i = 1; i < s.length; i++) if (s[i - 1] < 0 !== s[i] < 0) crossings++;
    return crossings / 2 / (s.length / t.rate);
  });
}

describe("surround audio in the web client", () => {
  let gw;
  let browser;
  const figures = [];

  before(async () => {
    gw = await startGateway();
    browser = await launchBrowser();
    const page = await browser.context.newPage();
    await page.goto(gw.url + "/");
    await page.fill("[data-testid=credential]", gw.credential);
    await page.click("[data-testid=login]");
    await page.waitForSelector("[data-testid=host][data-online=true]", { timeout: 20000 });
    await page.close();
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
    for (const f of figures) console.log(`# ${f}`);
  });

  for (const [channels, label] of [
    [6, "5.1 surround"],
    [8, "7.1 surround"],
  ]) {
    test(`${label}: every speaker decoded in its place`, { timeout: 90000 }, async () => {
      const page = await browser.context.newPage();
      try {
        await page.addInitScript(tapAudioDecoder);
        await page.goto(gw.url + "/#/settings");
        await page.waitForSelector("[data-testid=settings]");
        const options = await page.$$eval("select[name=audio] option", (o) => o.map((x) => x.textContent));
        assert.ok(options.includes(label), `Chromium decodes ${label} (offered: ${options})`);
        await page.selectOption("select[name=audio]", String(channels));
        // Auto mode picks WebSocket for surround, even where WebRTC would connect.
        await page.selectOption("select[name=mode]", "auto");
        await page.check("input[name=stats]");
        assert.match(await page.textContent("[data-testid=audio-note]"), /Surround streams in WebSocket mode/);
        await page.goto(gw.url + "/#/");
        await page.click("[data-testid=open-host]");
        await page.click("[data-testid=app][data-app-id='1']");
        await until(30000, "streaming", () =>
          page.evaluate(() => {
            const m = window.moongate;
            if (m?.state === "stopped") throw new Error(`stream stopped: ${m.reason}`);
            return m?.state === "streaming";
          }),
        );
        assert.equal(await page.evaluate(() => window.moongate.mode), "websocket");
        const pitches = await until(15000, "0.6 s of decoded surround", () => page.evaluate(tappedPitches));
        const configs = await page.evaluate(() => window.__audioTap.configs);
        assert.deepEqual(configs.at(-1), { channels, description: true }, "the decoder got an OpusHead");
        assert.equal(pitches.length, channels, "decoded channels");
        const base = pitches[0];
        figures.push(`${label}: decoded pitches ${pitches.map((p) => p.toFixed(0)).join(", ")} Hz`);
        pitches.forEach((got, speaker) => {
          const want = base * SPEAKER_PITCH[speaker];
          assert.ok(Math.abs(got - want) <= want * 0.03 + 3, `${label}, speaker ${speaker}: ${got.toFixed(0)} Hz, want ${want.toFixed(0)} (all: ${pitches.map((p) => p.toFixed(0))})`);
        });
        const audioStat = await until(5000, "the stats overlay names the channels", () =>
          page.evaluate(() => {
            const a = window.moongate.stats()?.audio;
            return /packets/.test(a ?? "") && a;
          }),
        );
        assert.match(audioStat, new RegExp(`^${channels} ch`));
        await page.screenshot({ path: path.join(screenshotDir, `08-surround-${channels}ch.png`) });
        await page.close({ runBeforeUnload: false });
        await until(15000, "0 host sessions after the tab closed", async () => (await hostSessions(gw)).length === 0);
      } finally {
        if (!page.isClosed()) await page.close().catch(() => {});
      }
    });
  }
});
