/**
 * `InputEvent` → bytes for each transport. WebSocket: the binary messages of
 * docs/browser-protocol.md §3. WebRTC: the data channels of the contract §3.4 (same payloads
 * without the type byte, except the controller layouts, which differ).
 */
import type { InputEvent } from "../input";
import * as P from "../protocol";

export function wsMessages(e: InputEvent): P.Bytes[] {
  switch (e.k) {
    case "key":
      return [P.keyboardKey(e.down, e.mods, e.vk)];
    case "text":
      return P.keyboardText(e.text);
    case "button":
      return [P.mouseButton(e.down, e.button)];
    case "wheel":
      return [P.mouseWheelHighRes(e.dx, e.dy)];
    case "abs":
      return [P.mouseAbsolute(e.x, e.y)];
    case "rel":
      return [P.mouseRelative(e.dx, e.dy)];
    case "touch":
      return [P.touch(e.t)];
    case "pad_arrival":
      return [P.controllerArrival(e.id, e.type, e.caps, e.buttons)];
    case "pad_removal":
      return [P.controllerRemoval(e.id)];
    case "pad_state":
      return [P.controllerState(e.s)];
  }
}

/** Data-channel labels the browser creates (contract §3.4). */
export const CHANNELS: ReadonlyArray<{ label: string; init: RTCDataChannelInit }> = [
  { label: "keyboard", init: { ordered: true } },
  { label: "mouseClicks", init: { ordered: false } },
  { label: "mouseAbsolute", init: { ordered: true, maxRetransmits: 0 } },
  { label: "mouseRelative", init: { ordered: false } },
  { label: "touch", init: { ordered: true } },
  { label: "controllers", init: { ordered: true } },
];

export function rtcMessages(e: InputEvent): { label: string; data: P.Bytes }[] {
  const strip = (label: string, ms: P.Bytes[]) => ms.map((m) => ({ label, data: P.withoutType(m) }));
  switch (e.k) {
    case "key":
    case "text":
      return strip("keyboard", wsMessages(e));
    case "button":
    case "wheel":
      return strip("mouseClicks", wsMessages(e));
    case "abs":
      return strip("mouseAbsolute", wsMessages(e));
    case "rel":
      return strip("mouseRelative", wsMessages(e));
    case "touch":
      // event, id (u32), x, y, force, radius_x, radius_y (f32), rotation (u16): the WS layout.
      return strip("touch", wsMessages(e));
    case "pad_arrival": {
      // 0, id (u8), supported_buttons (u32), capabilities (u16): the contract's 8 bytes; then
      // moongate's controller type (u8), so that the host sees an Xbox or a PlayStation pad.
      const b = new Uint8Array(9);
      const v = new DataView(b.buffer);
      v.setUint8(0, 0);
      v.setUint8(1, e.id);
      v.setUint32(2, e.buttons >>> 0);
      v.setUint16(6, e.caps);
      v.setUint8(8, e.type);
      return [{ label: "controllers", data: b }];
    }
    case "pad_removal":
      return [{ label: "controllers", data: Uint8Array.of(1, e.id) }];
    case "pad_state": {
      // controller<N>: 0, buttons (u32), LT, RT (u8), LSX, LSY, RSX, RSY (i16; Y up)
      const ws = P.controllerState(e.s);
      const b = new Uint8Array(15);
      b[0] = 0;
      b.set(ws.subarray(4, 18), 1);
      return [{ label: `controller${e.s.id}`, data: b }];
    }
  }
}
