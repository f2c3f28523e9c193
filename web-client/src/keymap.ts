/**
 * Browser key → Windows virtual-key code (what Moonlight hosts expect, docs/browser-protocol.md
 * §3.4). Keyed on `KeyboardEvent.code` (the physical key), so the host's own layout decides the
 * character, as with a local keyboard.
 */
import { Mod } from "./protocol";

const table: Record<string, number> = {
  Backspace: 0x08, Tab: 0x09, Enter: 0x0d, NumpadEnter: 0x0d, ShiftLeft: 0xa0, ShiftRight: 0xa1,
  ControlLeft: 0xa2, ControlRight: 0xa3, AltLeft: 0xa4, AltRight: 0xa5, Pause: 0x13, CapsLock: 0x14,
  Escape: 0x1b, Space: 0x20, PageUp: 0x21, PageDown: 0x22, End: 0x23, Home: 0x24, ArrowLeft: 0x25,
  ArrowUp: 0x26, ArrowRight: 0x27, ArrowDown: 0x28, PrintScreen: 0x2c, Insert: 0x2d, Delete: 0x2e,
  MetaLeft: 0x5b, MetaRight: 0x5c, OSLeft: 0x5b, OSRight: 0x5c, ContextMenu: 0x5d,
  NumpadMultiply: 0x6a, NumpadAdd: 0x6b, NumpadSubtract: 0x6d, NumpadDecimal: 0x6e, NumpadDivide: 0x6f,
  NumLock: 0x90, ScrollLock: 0x91, Semicolon: 0xba, Equal: 0xbb, Comma: 0xbc, Minus: 0xbd,
  Period: 0xbe, Slash: 0xbf, Backquote: 0xc0, BracketLeft: 0xdb, Backslash: 0xdc, BracketRight: 0xdd,
  Quote: 0xde, IntlBackslash: 0xe2, AudioVolumeMute: 0xad, AudioVolumeDown: 0xae, AudioVolumeUp: 0xaf,
  MediaTrackNext: 0xb0, MediaTrackPrevious: 0xb1, MediaStop: 0xb2, MediaPlayPause: 0xb3,
};
for (let i = 0; i < 26; i++) table["Key" + String.fromCharCode(65 + i)] = 0x41 + i;
for (let i = 0; i < 10; i++) {
  table["Digit" + i] = 0x30 + i;
  table["Numpad" + i] = 0x60 + i;
}
for (let i = 1; i <= 24; i++) table["F" + i] = 0x70 + i - 1;

/** The VK code for a `KeyboardEvent.code`, or undefined for keys Moonlight cannot carry. */
export function vkOf(code: string): number | undefined {
  return table[code];
}

/** Modifier bits from an event's state. */
export function modifiersOf(e: { shiftKey: boolean; ctrlKey: boolean; altKey: boolean; metaKey: boolean }): number {
  return (e.shiftKey ? Mod.Shift : 0) | (e.ctrlKey ? Mod.Ctrl : 0) | (e.altKey ? Mod.Alt : 0) | (e.metaKey ? Mod.Meta : 0);
}

/** Browser `MouseEvent.button` (0 left, 1 middle, 2 right, 3 back, 4 forward) → Moonlight button. */
export function moonlightButton(browserButton: number): number | undefined {
  return [1, 2, 3, 4, 5][browserButton];
}
