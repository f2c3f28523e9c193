/**
 * Gamepad API (standard mapping) → Moonlight controller packets (docs/browser-protocol.md §3.9,
 * §3.10). Pure mapping functions; `input.ts` polls and sends.
 */
import { PadType, type PadState } from "./protocol";

/** Moonlight button flags (low 16 = buttonFlags, high 16 = buttonFlags2). */
export const Btn = {
  Up: 0x0001, Down: 0x0002, Left: 0x0004, Right: 0x0008, Start: 0x0010, Back: 0x0020,
  LeftStick: 0x0040, RightStick: 0x0080, LB: 0x0100, RB: 0x0200, Home: 0x0400,
  A: 0x1000, B: 0x2000, X: 0x4000, Y: 0x8000, Touchpad: 0x100000, Misc: 0x200000,
} as const;

/** Moonlight `LI_CCAP_*` capability bits. */
export const Cap = { AnalogTriggers: 0x01, Rumble: 0x02, TriggerRumble: 0x04, Touchpad: 0x08 } as const;

// Standard mapping index → flag (6, 7 are the analog triggers).
const STANDARD: (number | undefined)[] = [
  Btn.A, Btn.B, Btn.X, Btn.Y, Btn.LB, Btn.RB, undefined, undefined, Btn.Back, Btn.Start,
  Btn.LeftStick, Btn.RightStick, Btn.Up, Btn.Down, Btn.Left, Btn.Right, Btn.Home, Btn.Touchpad,
];

export const SUPPORTED_BUTTONS = STANDARD.reduce<number>((m, b) => m | (b ?? 0), 0);

export interface PadLike {
  id: string;
  index: number;
  buttons: ReadonlyArray<{ pressed: boolean; value: number }>;
  axes: ReadonlyArray<number>;
  vibrationActuator?: unknown;
}

export function padType(id: string): number {
  const s = id.toLowerCase();
  if (/054c|dualshock|dualsense|playstation/.test(s)) return PadType.PlayStation;
  if (/057e|nintendo|switch|joy-con/.test(s)) return PadType.Nintendo;
  if (/045e|xbox|xinput/.test(s)) return PadType.Xbox;
  return PadType.Unknown;
}

export function padCapabilities(p: PadLike): number {
  let caps = Cap.AnalogTriggers;
  if (p.vibrationActuator) caps |= Cap.Rumble;
  if (p.buttons.length > 17) caps |= Cap.Touchpad;
  return caps;
}

const axis = (v: number | undefined) => Math.round(Math.max(-1, Math.min(1, v ?? 0)) * 32767);
const deadzone = (v: number | undefined) => (Math.abs(v ?? 0) < 0.08 ? 0 : (v ?? 0));

/** The ControllerState of one pad (`activeMask` is the set of pads present). */
export function padState(p: PadLike, id: number, activeMask: number): PadState {
  let buttons = 0;
  p.buttons.forEach((b, i) => {
    const flag = STANDARD[i];
    if (flag !== undefined && b.pressed) buttons |= flag;
  });
  return {
    id,
    activeMask,
    buttons,
    lt: Math.round((p.buttons[6]?.value ?? 0) * 255),
    rt: Math.round((p.buttons[7]?.value ?? 0) * 255),
    lsx: axis(deadzone(p.axes[0])),
    // The Gamepad API's Y axis points down; Moonlight's points up.
    lsy: -axis(deadzone(p.axes[1])),
    rsx: axis(deadzone(p.axes[2])),
    rsy: -axis(deadzone(p.axes[3])),
  };
}

export function sameState(a: PadState | undefined, b: PadState): boolean {
  return !!a && a.buttons === b.buttons && a.lt === b.lt && a.rt === b.rt && a.lsx === b.lsx && a.lsy === b.lsy &&
    a.rsx === b.rsx && a.rsy === b.rsy && a.activeMask === b.activeMask;
}
