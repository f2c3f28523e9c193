// The microphone uplink end to end (issue 15): Chromium's fake microphone plays a sine from a WAV
// file; in WebSocket mode the client encodes it to Opus and sends MicOpus 0x18, in WebRTC mode the
// peer connection sends it as an Opus track on its send-only audio m-line; either way the gateway
// forwards the Opus packets to the embedded demo host's mic stream (MOONGATE_DEMO_HOST_MICROPHONE),
// which decodes them and reports the pitch it heard. "Pitch in, pitch out" at two frequencies per
// mode, one browser each (the fake device's file is fixed per launch); toggling off stops the
// packets.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { hostSessions, launchBrowser, screenshotDir, startGateway, until, wolfApi } from "./harness.mjs";

const shot = (page, name) => page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });

/** A mono 16-bit PCM WAV of a sine at `hz` (half scale), `secs` long at `rate`. */
function sineWav(file, hz, secs = 5, rate = 48000) {
  const n = secs * rate;
  const b = Buffer.alloc(44 + n * 2);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16); // fmt chunk size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28); // bytes per second
  b.writeUInt16LE(2, 32); // block align
  b.writeUInt16LE(16, 34); // bits per sample
  b.write("data", 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(16383 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  writeFileSync(file, b);
}

/** The demo host's microphone report for the stream's one session. */
async function micReport(gw) {
  const sessions = await hostSessions(gw);
  if (sessions.length !== 1) return null;
  return wolfApi(gw, `/api/v1/moongate/mic?session_id=${encodeURIComponent(sessions[0].client_id)}`);
}

/**
 * Signs in (unless `signedIn`: the browser profile keeps the credential), sets the stream mode,
 * opens the test pattern and waits until it streams.
 */
async function openApp(gw, page, mode, signedIn = false) {
  await page.goto(gw.url + "/");
  if (!signedIn) {
    await page.fill("[data-testid=credential]", gw.credential);
    await page.click("[data-testid=login]");
  }
  await page.waitForSelector("[data-testid=host][data-online=true][data-paired=true]", { timeout: 20000 });
  await page.goto(gw.url + "/#/settings");
  await page.waitForSelector("[data-testid=settings]");
  await page.selectOption("select[name=mode]", mode);
  // A restream (quality that adapts) starts a new host session, and this test reads the host's

  // input log by session: adaptation is off here and has its own test (adapt.test.mjs).

  await page.uncheck("input[name=adaptive]");
  await page.check("input[name=stats]");
  await page.goto(gw.url + "/#/");
  await page.click("[data-testid=open-host]");
  await page.click("[data-testid=app][data-app-id='1']");
  await until(30000, `the ${mode} stream reaches "streaming"`, () =>
    page.evaluate(() => {
      const m = window.moongate;
      if (m?.state === "stopped") throw new Error(`stream stopped: ${m.reason}`);
      return m?.state === "streaming";
    }),
  );
}

const micState = (page) => page.evaluate(() => ({ ...window.moongate.mic }));

/**
 * One browser whose fake microphone plays `hz`: the stream in `mode`, the toggle on, the host hears
 * the pitch within `tolerance`; the toggle off, nothing more is sent or heard.
 */
async function pitchInPitchOut(gw, dir, mode, hz, tolerance) {
  const tag = mode === "websocket" ? `${hz}` : `${mode}-${hz}`;
  const wav = path.join(dir, `sine-${hz}.wav`);
  sineWav(wav, hz);
  // Chromium loops the file (a "%noloop" suffix would play it once).
  const browser = await launchBrowser({
    args: ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", `--use-file-for-fake-audio-capture=${wav}`],
  });
  const page = await browser.context.newPage();
  try {
    await openApp(gw, page, mode);
    const toggle = page.locator("[data-testid=mic-toggle]");
    assert.equal(await toggle.getAttribute("aria-pressed"), "false");
    assert.deepEqual(await micState(page), { on: false, packetsSent: 0, error: null });

    await toggle.click();
    assert.equal(await toggle.getAttribute("aria-pressed"), "true");
    await until(10000, "the client sends microphone packets", async () => {
      const m = await micState(page);
      if (m.error) throw new Error(`the microphone stopped: ${m.error}`);
      return m.on && m.packetsSent > 0;
    });
    const sent1 = (await micState(page)).packetsSent;
    let report;
    await until(20000, `the host hears > 50 packets at ${hz} ± ${tolerance} Hz`, async () => {
      report = await micReport(gw);
      return report && report.packets > 50 && Math.abs(report.pitch_hz - hz) <= tolerance && report;
    }, 250);
    console.log(`${mode}: ${hz} Hz in → host: ${report.packets} packets, ${report.pitch_hz.toFixed(1)} Hz (${report.undecodable ?? "?"} undecodable, ${report.lost ?? "?"} lost)`);
    // WebRTC mode counts the track's RTP packets from getStats, once a second.
    if (mode === "webrtc") await until(3000, "packetsSent grows", async () => (await micState(page)).packetsSent > sent1);
    const sent2 = (await micState(page)).packetsSent;
    assert.ok(sent2 > sent1, `packetsSent grows (${sent1} → ${sent2})`);
    await page.waitForTimeout(600); // the stats overlay shows the microphone line
    await shot(page, `mic-${tag}-on`);

    // Off: the button says so, the client stops sending and the host stops receiving.
    await toggle.click();
    assert.equal(await toggle.getAttribute("aria-pressed"), "false");
    await page.waitForTimeout(300); // a packet already in the encoder (or on its way) may still go out
    const off = await micState(page);
    assert.equal(off.on, false);
    assert.equal(off.error, null, "switched off by the user: no error shown");
    assert.ok(await page.locator("[data-testid=mic-error]").isHidden());
    const hostAtOff = (await micReport(gw)).packets;
    await page.waitForTimeout(1500);
    assert.equal((await micState(page)).packetsSent, off.packetsSent, "no packets after toggling off");
    assert.equal((await micReport(gw)).packets, hostAtOff, "the host receives nothing after toggling off");
    assert.equal(await page.evaluate(() => window.moongate.state), "streaming", "the stream goes on without the microphone");
    await shot(page, `mic-${tag}-off`);
    await page.close({ runBeforeUnload: false });
    await until(15000, "the host reports 0 sessions after the tab closed", async () => (await hostSessions(gw)).length === 0);
  } catch (e) {
    await shot(page, `99-failed-mic-${tag}`).catch(() => {});
    throw e;
  } finally {
    await page.close().catch(() => {});
    await browser.close();
  }
}

/** Whether this gateway has the WebRTC signaling route. */
async function hasWebRtc(gw) {
  const probe = await fetch(gw.url + "/api/host/stream", { headers: { Authorization: `Bearer ${gw.credential}` } });
  return !(probe.status === 404 && (await probe.text()).includes("not_found"));
}

describe("microphone uplink (WebSocket and WebRTC modes)", () => {
  let gw;
  let dir;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-mic-"));
    gw = await startGateway({ env: { MOONGATE_DEMO_HOST_MICROPHONE: "true" } });
  });
  after(async () => {
    await gw?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [hz, tolerance] of [
    [440, 15],
    [880, 20],
  ]) {
    test(`a ${hz} Hz fake microphone is heard on the host as ${hz} ± ${tolerance} Hz`, { timeout: 120000 }, () => pitchInPitchOut(gw, dir, "websocket", hz, tolerance));
  }

  // WebRTC mode: the same tone through the peer connection's upward Opus track.
  for (const [hz, tolerance] of [
    [440, 15],
    [880, 20],
  ]) {
    test(`WebRTC mode: a ${hz} Hz fake microphone is heard on the host as ${hz} ± ${tolerance} Hz`, { timeout: 120000 }, async (t) => {
      if (!(await hasWebRtc(gw))) return t.skip("this gateway has no WebRTC signaling route");
      await pitchInPitchOut(gw, dir, "webrtc", hz, tolerance);
    });
  }

  test("a refused microphone says so in words, in both modes", { timeout: 120000 }, async (t) => {
    // A fake device but no fake permission UI: headless Chromium refuses getUserMedia.
    const browser = await launchBrowser({ args: ["--use-fake-device-for-media-stream"] });
    const page = await browser.context.newPage();
    try {
      await openApp(gw, page, "websocket");
      const toggle = page.locator("[data-testid=mic-toggle]");
      await toggle.click();
      const note = page.locator("[data-testid=mic-error]");
      await note.waitFor({ state: "visible", timeout: 10000 });
      assert.match(await note.textContent(), /did not allow the microphone/);
      assert.equal(await toggle.getAttribute("aria-pressed"), "false");
      const m = await micState(page);
      assert.equal(m.on, false);
      assert.match(m.error, /did not allow/);
      assert.equal(m.packetsSent, 0);
      await shot(page, "mic-denied");
      await page.close({ runBeforeUnload: false });
      await until(15000, "the host reports 0 sessions after the tab closed", async () => (await hostSessions(gw)).length === 0);

      if (!(await hasWebRtc(gw))) {
        t.diagnostic("this gateway has no WebRTC signaling route: the WebRTC half is not checked");
        return;
      }
      const rtc = await browser.context.newPage();
      try {
        await openApp(gw, rtc, "webrtc", true);
        await rtc.click("[data-testid=mic-toggle]");
        const rtcNote = rtc.locator("[data-testid=mic-error]");
        await rtcNote.waitFor({ state: "visible", timeout: 10000 });
        assert.match(await rtcNote.textContent(), /did not allow the microphone/);
        assert.equal(await rtc.locator("[data-testid=mic-toggle]").getAttribute("aria-pressed"), "false");
        const rm = await micState(rtc);
        assert.equal(rm.on, false);
        assert.match(rm.error, /did not allow/);
        assert.equal(await rtc.evaluate(() => window.moongate.state), "streaming", "the stream goes on without the microphone");
        await shot(rtc, "mic-webrtc");
      } finally {
        await rtc.close({ runBeforeUnload: false }).catch(() => {});
      }
      await until(15000, "the host reports 0 sessions after the WebRTC tab closed", async () => (await hostSessions(gw)).length === 0);
    } catch (e) {
      await shot(page, "99-failed-mic-denied").catch(() => {});
      throw e;
    } finally {
      await page.close().catch(() => {});
      await browser.close();
    }
  });
});
