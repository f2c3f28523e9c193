// The input devices headless Chromium has no hardware for, end to end through the real client:
// a gamepad (the Gamepad API answers with a scripted pad; the client's polling, mapping and
// sending are the real ones) whose buttons, stick and trigger reach the host, and whose trigger
// comes back as rumble (the demo host's test app drives the motors with the triggers); touches
// (real touch input through the DevTools protocol) sent as touches; fullscreen with Keyboard Lock.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { hostInput, hostSessions, launchBrowser, screenshotDir, startGateway, until } from "./harness.mjs";

/** In the page, before the client loads: a standard-mapping Xbox pad that the test drives. */
function scriptedGamepad() {
  const buttons = Array.from({ length: 17 }, () => ({ pressed: false, touched: false, value: 0 }));
  const rumbles = [];
  const pad = {
    id: "Xbox Wireless Controller (STANDARD GAMEPAD Vendor: 045e Product: 0b13)",
    index: 0,
    connected: true,
    mapping: "standard",
    timestamp: 0,
    axes: [0, 0, 0, 0],
    buttons,
    vibrationActuator: {
      type: "dual-rumble",
      playEffect(type, params) {
        rumbles.push({ type, ...params });
        return Promise.resolve("complete");
      },
      reset() {
        rumbles.push({ type: "reset" });
        return Promise.resolve("complete");
      },
    },
  };
  let plugged = false;
  Object.defineProperty(Navigator.prototype, "getGamepads", {
    configurable: true,
    value: () => [plugged ? pad : null, null, null, null],
  });
  const locks = [];
  if (window.Keyboard) {
    const lock = Keyboard.prototype.lock;
    Keyboard.prototype.lock = function (...args) {
      locks.push(args);
      return lock.apply(this, args);
    };
  }
  window.testPad = {
    plug(on) {
      plugged = on;
      window.dispatchEvent(new Event(on ? "gamepadconnected" : "gamepaddisconnected"));
    },
    set(index, value) {
      buttons[index] = { pressed: value > 0.5, touched: value > 0, value };
      pad.timestamp++;
    },
    axis(index, value) {
      pad.axes[index] = value;
      pad.timestamp++;
    },
    rumbles,
    locks,
  };
}

describe("gamepad, touch and fullscreen end to end", () => {
  let gw;
  let browser;

  before(async () => {
    gw = await startGateway();
    browser = await launchBrowser();
    await browser.context.addInitScript(scriptedGamepad);
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  for (const mode of ["websocket", "webrtc"]) test(`${mode}: a gamepad with rumble, touches and fullscreen reach the host`, { timeout: 90000 }, async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(gw.url + "/");
      // The profile remembers the sign-in of the previous mode.
      const first = await page.waitForSelector("[data-testid=credential], [data-testid=host]");
      if ((await first.getAttribute("data-testid")) === "credential") {
        await page.fill("[data-testid=credential]", gw.credential);
        await page.click("[data-testid=login]");
      }
      await page.waitForSelector("[data-testid=host][data-online=true][data-paired=true]", { timeout: 20000 });
      await page.goto(gw.url + "/#/settings");
      await page.waitForSelector("[data-testid=settings]");
      await page.selectOption("select[name=resolution]", "1280x720");
      await page.selectOption("select[name=mode]", mode);
      await page.selectOption("select[name=touch]", "touch");
      // A restream (quality that adapts) starts a new host session, and this test reads the host's

      // input log by session: adaptation is off here and has its own test (adapt.test.mjs).

      await page.uncheck("input[name=adaptive]");
      await page.goto(gw.url + "/#/");
      await page.click("[data-testid=open-host]");
      await page.click("[data-testid=app][data-app-id='1']");
      await until(30000, "the stream reaches \"streaming\"", () =>
        page.evaluate(() => {
          const m = window.moongate;
          if (m?.state === "stopped") throw new Error(`stream stopped: ${m.reason}`);
          return m?.state === "streaming";
        }),
      );
      assert.equal(await page.evaluate(() => window.moongate.mode), mode);
      const sessions = await hostSessions(gw);
      assert.equal(sessions.length, 1);
      const sid = sessions[0].client_id;
      const since = async (seq) => (await hostInput(gw, sid)).filter((r) => r.seq > seq).map((r) => r.event);
      const lastSeq = async () => (await hostInput(gw, sid)).at(-1)?.seq ?? 0;

      // Gamepad: plugging it in announces an Xbox pad with rumble; A, the left stick to the left
      // and the right trigger arrive as one controller state.
      let seq = await lastSeq();
      await page.evaluate(() => window.testPad.plug(true));
      await page.evaluate(() => {
        window.testPad.set(0, 1);
        window.testPad.axis(0, -1);
        window.testPad.set(7, 1);
      });
      let seen = [];
      await until(10000, "controller arrival and state on the host", async () => {
        seen = await since(seq);
        const arrival = seen.find((e) => e.type === "controller_arrival");
        const state = seen.find((e) => e.type === "multi_controller" && e.buttons & 0x1000 && e.right_trigger === 255 && e.left_stick_x === -32767);
        if (!arrival || !state) return false;
        assert.equal(arrival.controller_number, 0);
        assert.equal(arrival.controller_type, 1, "an Xbox pad");
        assert.ok(arrival.capabilities & 0x02, "rumble announced");
        assert.equal(state.active_gamepad_mask, 1);
        assert.equal(state.left_stick_y, 0);
        return true;
      }).catch((e) => {
        throw new Error(`${e.message}; the host saw: ${JSON.stringify(seen.slice(-6))}`);
      });
      // The host's test app runs the fast motor with the right trigger: rumble comes back.
      const rumble = await until(10000, "rumble from the host on the pad", () =>
        page.evaluate(() => window.testPad.rumbles.find((r) => r.type === "dual-rumble")),
      );
      assert.equal(rumble.weakMagnitude, 1);
      assert.equal(rumble.strongMagnitude, 0);
      // Releasing the trigger stops the motors; unplugging removes the pad from the mask.
      seq = await lastSeq();
      await page.evaluate(() => {
        window.testPad.set(0, 0);
        window.testPad.axis(0, 0);
        window.testPad.set(7, 0);
      });
      await until(10000, "the motors stop", () => page.evaluate(() => window.testPad.rumbles.some((r) => r.type === "reset")));
      await page.evaluate(() => window.testPad.plug(false));
      await until(10000, "the pad leaves the active mask on the host", async () =>
        (await since(seq)).some((e) => e.type === "multi_controller" && e.active_gamepad_mask === 0),
      );

      // Touch: a finger down, moved to the right, lifted; the host gets touches at those points.
      const box = await page.locator("[data-testid=stream] canvas, [data-testid=stream] video").boundingBox();
      const cdp = await page.context().newCDPSession(page);
      await cdp.send("Emulation.setTouchEmulationEnabled", { enabled: true, maxTouchPoints: 5 });
      const at = (fx, fy) => ({ x: box.x + box.width * fx, y: box.y + box.height * fy, id: 1 });
      seq = await lastSeq();
      await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [at(0.25, 0.5)] });
      await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: [at(0.5, 0.5)] });
      await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: [at(0.75, 0.5)] });
      await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
      const touches = await until(10000, "touch down, move and up on the host", async () => {
        const t = (await since(seq)).filter((e) => e.type === "touch");
        const kinds = new Set(t.map((e) => e.event_type));
        // LI_TOUCH_EVENT_DOWN 1, UP 2, MOVE 3.
        return kinds.has(1) && kinds.has(2) && kinds.has(3) && t;
      });
      const down = touches.find((e) => e.event_type === 1);
      const lastMove = touches.filter((e) => e.event_type === 3).at(-1);
      assert.ok(Math.abs(down.x - 0.25) < 0.02 && Math.abs(down.y - 0.5) < 0.02, `touch down at (${down.x}, ${down.y})`);
      assert.ok(Math.abs(lastMove.x - 0.75) < 0.02, `last move at x ${lastMove.x}`);
      assert.ok(touches.every((e) => e.pointer_id === down.pointer_id), "one finger, one pointer id");
      assert.ok(!(await since(seq)).some((e) => e.type === "mouse_button_down"), "touches are not turned into clicks in touch mode");

      // Fullscreen takes the keyboard: the stream fills the screen and Keyboard Lock is asked for.
      await page.click("button:has-text('Fullscreen')");
      await until(5000, "fullscreen", () => page.evaluate(() => document.fullscreenElement !== null));
      const locks = await page.evaluate(() => window.testPad.locks.length);
      assert.ok(locks >= 1, "navigator.keyboard.lock() was called");
      await page.screenshot({ path: path.join(screenshotDir, `14-fullscreen-${mode}.png`) });
      seq = await lastSeq();
      await page.keyboard.press("Escape");
      await until(5000, "Escape reaches the host while locked", async () =>
        (await since(seq)).some((e) => e.type === "key_down" && (e.key_code & 0x7fff) === 0x1b),
      );
    } finally {
      await page.close({ runBeforeUnload: false }).catch(() => {});
    }
    await until(15000, "the host reports 0 sessions after the tab closed", async () => (await hostSessions(gw)).length === 0);
  });
});
