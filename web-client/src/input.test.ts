import { describe, expect, it } from "vitest";
import { HeldInput, MoveCoalescer, videoPoint, wheelPixels } from "./input";
import { modifiersOf, moonlightButton, vkOf } from "./keymap";
import { Btn, padState, padType, SUPPORTED_BUTTONS } from "./gamepad";
import { PadType, hex } from "./protocol";
import { rtcMessages, wsMessages } from "./stream/encode";

describe("keyboard mapping", () => {
  it("maps physical keys to Windows virtual keys", () => {
    expect(vkOf("KeyA")).toBe(0x41);
    expect(vkOf("KeyZ")).toBe(0x5a);
    expect(vkOf("Digit0")).toBe(0x30);
    expect(vkOf("Enter")).toBe(0x0d);
    expect(vkOf("ShiftLeft")).toBe(0xa0);
    expect(vkOf("ControlRight")).toBe(0xa3);
    expect(vkOf("F12")).toBe(0x7b);
    expect(vkOf("Numpad5")).toBe(0x65);
    expect(vkOf("ArrowUp")).toBe(0x26);
    expect(vkOf("Semicolon")).toBe(0xba);
    expect(vkOf("Fn")).toBeUndefined();
  });
  it("modifier bits and mouse buttons", () => {
    expect(modifiersOf({ shiftKey: true, ctrlKey: false, altKey: true, metaKey: false })).toBe(0x05);
    expect([0, 1, 2, 3, 4].map(moonlightButton)).toEqual([1, 2, 3, 4, 5]);
    expect(moonlightButton(7)).toBeUndefined();
  });
  it("a key press is the contract's bytes on both transports", () => {
    const e = { k: "key", down: true, mods: 1, vk: 0x41 } as const;
    expect(wsMessages(e).map(hex)).toEqual(["10 00 01 01 00 41"]);
    expect(rtcMessages(e).map((m) => [m.label, hex(m.data)])).toEqual([["keyboard", "00 01 01 00 41"]]);
    expect(rtcMessages({ k: "button", down: true, button: 1 }).map((m) => [m.label, hex(m.data)])).toEqual([["mouseClicks", "02 01 01"]]);
  });
});

describe("mouse", () => {
  it("coalesces relative moves while backed up, then sends the sum", () => {
    const c = new MoveCoalescer();
    c.addRelative(3, 4);
    c.addRelative(2.5, -1);
    expect(c.flush(true)).toEqual([]);
    c.addRelative(1, 1);
    expect(c.flush(false)).toEqual([{ k: "rel", dx: 6, dy: 4 }]);
    // The fraction is kept for the next flush.
    c.addRelative(0.5, 0);
    expect(c.flush(false)).toEqual([{ k: "rel", dx: 1, dy: 0 }]);
    expect(c.pending()).toBe(false);
  });
  it("keeps only the last absolute position and splits huge deltas into i16 pieces", () => {
    const c = new MoveCoalescer();
    c.setAbsolute(1, 1);
    c.setAbsolute(2048, 1024);
    expect(c.flush(false)).toEqual([{ k: "abs", x: 2048, y: 1024 }]);
    c.addRelative(40000, 0);
    expect(c.flush(false)).toEqual([
      { k: "rel", dx: 32767, dy: 0 },
      { k: "rel", dx: 7233, dy: 0 },
    ]);
  });
  it("maps points on a letterboxed video and ignores the bars", () => {
    const box = { left: 0, top: 0, width: 1000, height: 1000 };
    // 16:9 video in a square box: 1000×562.5, bars of 218.75 above and below.
    expect(videoPoint(500, 500, box, 1920, 1080)).toEqual({ x: 0.5, y: 0.5 });
    expect(videoPoint(500, 100, box, 1920, 1080)).toBeNull();
    const p = videoPoint(0, 218.75, box, 1920, 1080)!;
    expect(p.x).toBeCloseTo(0);
    expect(p.y).toBeCloseTo(0);
  });
  it("wheel deltas become pixels", () => {
    expect(wheelPixels({ deltaX: 0, deltaY: 3, deltaMode: 1 })).toEqual({ dx: 0, dy: 120 });
    expect(wheelPixels({ deltaX: 5, deltaY: -7, deltaMode: 0 })).toEqual({ dx: 5, dy: -7 });
  });
});

describe("held input", () => {
  it("releases every held key, button and pad once", () => {
    const h = new HeldInput();
    h.key(true, 0x41, 0);
    h.key(true, 0xa0, 1);
    h.key(false, 0x41, 1);
    h.button(true, 1);
    h.button(true, 3);
    h.pad({ id: 0, activeMask: 1, buttons: Btn.A, lt: 0, rt: 0, lsx: 0, lsy: 0, rsx: 0, rsy: 0 });
    const rel = h.releaseAll();
    expect(rel).toEqual([
      { k: "key", down: false, mods: 0, vk: 0xa0 },
      { k: "button", down: false, button: 1 },
      { k: "button", down: false, button: 3 },
      { k: "pad_state", s: { id: 0, activeMask: 1, buttons: 0, lt: 0, rt: 0, lsx: 0, lsy: 0, rsx: 0, rsy: 0 } },
    ]);
    expect(h.releaseAll()).toEqual([]);
  });
});

describe("gamepads", () => {
  const pad = (pressed: number[], axes = [0, 0, 0, 0], lt = 0) => ({
    id: "Xbox Wireless Controller (STANDARD GAMEPAD Vendor: 045e Product: 0b13)",
    index: 0,
    buttons: Array.from({ length: 17 }, (_, i) => ({ pressed: pressed.includes(i), value: i === 6 ? lt : pressed.includes(i) ? 1 : 0 })),
    axes,
  });
  it("maps the standard layout to Moonlight flags, inverts Y, applies a dead zone", () => {
    const s = padState(pad([0, 3, 12, 16], [1, -1, 0.05, 0.5], 0.5), 0, 1);
    expect(s.buttons).toBe(Btn.A | Btn.Y | Btn.Up | Btn.Home);
    expect(s.lsx).toBe(32767);
    expect(s.lsy).toBe(32767); // browser up (-1) → Moonlight up (+)
    expect(s.rsx).toBe(0);
    expect(s.rsy).toBe(-16384);
    expect(s.lt).toBe(128);
    expect(SUPPORTED_BUTTONS & Btn.Home).toBe(Btn.Home);
  });
  it("recognises pad types and encodes the per-transport layouts", () => {
    expect(padType(pad([]).id)).toBe(PadType.Xbox);
    expect(padType("DualSense Wireless Controller (Vendor: 054c)")).toBe(PadType.PlayStation);
    const s = { id: 0, activeMask: 1, buttons: 0x1000, lt: 255, rt: 0, lsx: 32767, lsy: -32768, rsx: 0, rsy: -2 };
    expect(wsMessages({ k: "pad_state", s }).map(hex)).toEqual(["16 00 00 01 00 00 10 00 ff 00 7f ff 80 00 00 00 ff fe"]);
    expect(rtcMessages({ k: "pad_state", s }).map((m) => [m.label, hex(m.data)])).toEqual([
      ["controller0", "00 00 00 10 00 ff 00 7f ff 80 00 00 00 ff fe"],
    ]);
    expect(rtcMessages({ k: "pad_arrival", id: 1, type: 1, caps: 7, buttons: 0xffff }).map((m) => hex(m.data))).toEqual([
      "00 01 00 00 ff ff 00 07 01",
    ]);
  });
});
