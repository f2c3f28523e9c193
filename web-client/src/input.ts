/**
 * Input capture for the stream view: keyboard (Keyboard Lock in fullscreen), mouse (pointer lock →
 * relative, otherwise absolute), high-resolution wheel, touch (as touch or as a trackpad),
 * gamepads with rumble, paste as text.
 *
 * The capture produces transport-neutral `InputEvent`s; each transport encodes them (WebSocket
 * binary messages or WebRTC data channels). Two sans-IO pieces carry the rules the tests check:
 * `MoveCoalescer` (mouse moves are summed while the socket is backed up or between flushes) and
 * `HeldInput` (every held key and button is released on blur, visibility loss and disconnect).
 */
import { modifiersOf, moonlightButton, vkOf } from "./keymap";
import { padCapabilities, padState, padType, sameState, SUPPORTED_BUTTONS } from "./gamepad";
import { TouchEvent as TE, type PadState, type TouchPoint } from "./protocol";

export type InputEvent =
  | { k: "key"; down: boolean; mods: number; vk: number }
  | { k: "text"; text: string }
  | { k: "button"; down: boolean; button: number }
  | { k: "wheel"; dx: number; dy: number }
  | { k: "abs"; x: number; y: number }
  | { k: "rel"; dx: number; dy: number }
  | { k: "touch"; t: TouchPoint }
  | { k: "pad_arrival"; id: number; type: number; caps: number; buttons: number }
  | { k: "pad_removal"; id: number }
  | { k: "pad_state"; s: PadState };

/** Where input goes: a transport. `backedUp()` = its send buffer is over budget. */
export interface InputSink {
  send(e: InputEvent): void;
  backedUp(): boolean;
}

/** The reference size of absolute positions (Helix and moongate use 4096×4096). */
export const ABS_REF = 4096;

/**
 * Sums relative moves and keeps only the last absolute position until `flush`. While the sink is
 * backed up, `flush` sends nothing and the sums grow, so a slow link gets fewer, larger moves
 * instead of a queue of stale ones.
 */
export class MoveCoalescer {
  private dx = 0;
  private dy = 0;
  private abs: { x: number; y: number } | null = null;

  addRelative(dx: number, dy: number): void {
    this.dx += dx;
    this.dy += dy;
  }
  setAbsolute(x: number, y: number): void {
    this.abs = { x, y };
  }
  pending(): boolean {
    return this.dx !== 0 || this.dy !== 0 || this.abs !== null;
  }
  /** The moves to send now (none while `backedUp`). Relative moves go out in whole pixels. */
  flush(backedUp: boolean): InputEvent[] {
    if (backedUp) return [];
    const out: InputEvent[] = [];
    if (this.abs) {
      out.push({ k: "abs", x: this.abs.x, y: this.abs.y });
      this.abs = null;
    }
    let ix = Math.trunc(this.dx);
    let iy = Math.trunc(this.dy);
    while (ix !== 0 || iy !== 0) {
      // One message carries i16 deltas.
      const sx = Math.max(-32768, Math.min(32767, ix));
      const sy = Math.max(-32768, Math.min(32767, iy));
      out.push({ k: "rel", dx: sx, dy: sy });
      ix -= sx;
      iy -= sy;
      this.dx -= sx;
      this.dy -= sy;
    }
    return out;
  }
  clear(): void {
    this.dx = this.dy = 0;
    this.abs = null;
  }
}

/** Tracks what is held so it can all be released at once. */
export class HeldInput {
  private keys = new Map<number, number>(); // vk → modifiers at press
  private buttons = new Set<number>();
  private pads = new Map<number, PadState>();

  key(down: boolean, vk: number, mods: number): void {
    if (down) this.keys.set(vk, mods);
    else this.keys.delete(vk);
  }
  button(down: boolean, b: number): void {
    if (down) this.buttons.add(b);
    else this.buttons.delete(b);
  }
  pad(s: PadState): void {
    if (s.buttons || s.lt || s.rt || s.lsx || s.lsy || s.rsx || s.rsy) this.pads.set(s.id, s);
    else this.pads.delete(s.id);
  }
  isKeyDown(vk: number): boolean {
    return this.keys.has(vk);
  }
  /** Release events for everything held, and forget it. */
  releaseAll(): InputEvent[] {
    const out: InputEvent[] = [];
    for (const vk of this.keys.keys()) out.push({ k: "key", down: false, mods: 0, vk });
    for (const b of this.buttons) out.push({ k: "button", down: false, button: b });
    for (const s of this.pads.values()) {
      out.push({ k: "pad_state", s: { ...s, buttons: 0, lt: 0, rt: 0, lsx: 0, lsy: 0, rsx: 0, rsy: 0 } });
    }
    this.keys.clear();
    this.buttons.clear();
    this.pads.clear();
    return out;
  }
}

/** Scroll deltas in pixels from a WheelEvent (line and page modes converted). */
export function wheelPixels(e: { deltaX: number; deltaY: number; deltaMode: number }, pageHeight = 800): { dx: number; dy: number } {
  const f = e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? pageHeight : 1;
  return { dx: e.deltaX * f, dy: e.deltaY * f };
}

/**
 * Where a point lands on a video shown with `object-fit: contain` in `box`: normalised 0…1, or
 * null when it is on the letterbox bars.
 */
export function videoPoint(
  clientX: number,
  clientY: number,
  box: { left: number; top: number; width: number; height: number },
  videoW: number,
  videoH: number,
): { x: number; y: number } | null {
  if (!videoW || !videoH || !box.width || !box.height) return null;
  const scale = Math.min(box.width / videoW, box.height / videoH);
  const w = videoW * scale;
  const h = videoH * scale;
  const x = (clientX - box.left - (box.width - w) / 2) / w;
  const y = (clientY - box.top - (box.height - h) / 2) / h;
  if (x < 0 || y < 0 || x > 1 || y > 1) return null;
  return { x, y };
}

export interface CaptureOptions {
  /** "touch": touches are sent as touch events (when the host supports it); "trackpad": they move the mouse. */
  touchMode: "touch" | "trackpad";
  /** Frame rate of the stream: mouse moves are flushed at most this often. */
  fps: number;
}

/**
 * Attaches to the stream element and feeds a sink. One instance per stream view; `detach()`
 * removes every listener and releases everything held.
 */
export class InputCapture {
  private readonly held = new HeldInput();
  private readonly moves = new MoveCoalescer();
  private readonly off: (() => void)[] = [];
  private flushTimer: ReturnType<typeof setInterval> | undefined;
  private padTimer: ReturnType<typeof setInterval> | undefined;
  private pads = new Map<number, PadState>(); // browser index → last state
  private sink: InputSink | null = null;
  private streamW = 0;
  private streamH = 0;
  private hostTouch = false;
  private trackpad: { id: number; x: number; y: number; t: number; moved: number; fingers: number } | null = null;
  private readonly touches = new Map<number, { x: number; y: number }>();
  /** Counts of what was sent, for the stats overlay and tests. */
  readonly sent = { keys: 0, buttons: 0, moves: 0, coalesced: 0 };

  constructor(
    private readonly el: HTMLElement,
    private readonly opts: CaptureOptions,
  ) {}

  /** Starts sending to `sink` (a connected stream of `w`×`h`). */
  connect(sink: InputSink, w: number, h: number, hostTouch: boolean): void {
    this.sink = sink;
    this.streamW = w;
    this.streamH = h;
    this.hostTouch = hostTouch;
    for (const s of this.pads.values()) this.emit({ k: "pad_state", s });
  }

  /** The stream is gone: release everything (on the old sink if it can still send), stop sending. */
  disconnect(): void {
    this.releaseAll();
    this.sink = null;
    this.moves.clear();
  }

  attach(): void {
    const el = this.el;
    el.tabIndex = 0;
    const on = <K extends keyof HTMLElementEventMap>(t: EventTarget, type: K | string, fn: (e: any) => void, opts?: AddEventListenerOptions) => {
      t.addEventListener(type, fn, opts);
      this.off.push(() => t.removeEventListener(type, fn, opts));
    };
    on(el, "keydown", (e: KeyboardEvent) => this.onKey(e, true));
    on(el, "keyup", (e: KeyboardEvent) => this.onKey(e, false));
    on(el, "pointerdown", (e: PointerEvent) => this.onPointerDown(e));
    on(el, "pointerup", (e: PointerEvent) => this.onPointerUp(e));
    on(el, "pointercancel", (e: PointerEvent) => this.onPointerUp(e, true));
    on(el, "pointermove", (e: PointerEvent) => this.onPointerMove(e));
    on(el, "wheel", (e: WheelEvent) => this.onWheel(e), { passive: false });
    on(el, "contextmenu", (e: Event) => e.preventDefault());
    on(el, "paste", (e: ClipboardEvent) => {
      const text = e.clipboardData?.getData("text/plain");
      if (text) {
        e.preventDefault();
        this.pasteText(text);
      }
    });
    on(window, "blur", () => this.releaseAll());
    on(document, "visibilitychange", () => {
      if (document.hidden) this.releaseAll();
    });
    on(window, "pagehide", () => this.releaseAll());
    on(window, "gamepadconnected", () => this.pollPads());
    on(window, "gamepaddisconnected", () => this.pollPads());
    el.style.touchAction = "none";
    this.flushTimer = setInterval(() => this.flushMoves(), Math.max(4, Math.floor(1000 / Math.max(1, this.opts.fps))));
    this.padTimer = setInterval(() => this.pollPads(), 8);
  }

  detach(): void {
    this.disconnect();
    this.off.splice(0).forEach((f) => f());
    clearInterval(this.flushTimer);
    clearInterval(this.padTimer);
  }

  /** Types `text` on the host (KeyboardInput subtype 1). */
  pasteText(text: string): void {
    this.emit({ k: "text", text });
  }

  releaseAll(): void {
    for (const e of this.held.releaseAll()) this.emit(e, false);
  }

  /** Rumble from the host: plays on the matching browser gamepad. */
  rumble(id: number, low: number, high: number): void {
    const pad = (navigator.getGamepads?.() ?? []).find((p) => p && this.padId(p.index) === id);
    const act = (pad as unknown as { vibrationActuator?: { playEffect?: Function; reset?: Function } })?.vibrationActuator;
    if (!act?.playEffect) return;
    if (low === 0 && high === 0) {
      act.reset?.call(act);
      return;
    }
    // Moonlight rumble lasts until the next rumble message; a long effect is renewed by it.
    act.playEffect.call(act, "dual-rumble", { duration: 5000, strongMagnitude: low / 65535, weakMagnitude: high / 65535 }).catch?.(() => {});
  }

  private emit(e: InputEvent, track = true): void {
    if (track) {
      if (e.k === "key") this.held.key(e.down, e.vk, e.mods);
      if (e.k === "button") this.held.button(e.down, e.button);
      if (e.k === "pad_state") this.held.pad(e.s);
    }
    if (!this.sink) return;
    this.flushMoves(true);
    this.sink.send(e);
    if (e.k === "key") this.sent.keys++;
    if (e.k === "button") this.sent.buttons++;
  }

  private flushMoves(force = false): void {
    if (!this.sink || !this.moves.pending()) return;
    const backed = !force && this.sink.backedUp();
    if (backed) this.sent.coalesced++;
    for (const m of this.moves.flush(backed)) {
      this.sink.send(m);
      this.sent.moves++;
    }
  }

  private onKey(e: KeyboardEvent, down: boolean): void {
    const vk = vkOf(e.code);
    if (vk === undefined) return;
    // Keep the browser's own shortcut for leaving fullscreen / pointer lock when not locked.
    e.preventDefault();
    e.stopPropagation();
    if (!down && !this.held.isKeyDown(vk)) return;
    this.emit({ k: "key", down, mods: modifiersOf(e), vk });
  }

  private relative(): boolean {
    return document.pointerLockElement === this.el;
  }

  private normalised(e: { clientX: number; clientY: number }) {
    const media = (this.el.querySelector("canvas, video") as HTMLElement | null) ?? this.el;
    return videoPoint(e.clientX, e.clientY, media.getBoundingClientRect(), this.streamW, this.streamH);
  }

  private onPointerDown(e: PointerEvent): void {
    this.el.focus({ preventScroll: true });
    if (e.pointerType === "touch") return this.onTouch(e, TE.Down);
    e.preventDefault();
    // Releases outside the element still reach us.
    this.el.setPointerCapture?.(e.pointerId);
    if (!this.relative()) {
      const p = this.normalised(e);
      if (!p) return;
      this.moves.setAbsolute(p.x * ABS_REF, p.y * ABS_REF);
    }
    const b = moonlightButton(e.button);
    if (b !== undefined) this.emit({ k: "button", down: true, button: b });
  }

  private onPointerUp(e: PointerEvent, cancel = false): void {
    if (e.pointerType === "touch") return this.onTouch(e, cancel ? TE.Cancel : TE.Up);
    const b = moonlightButton(e.button);
    if (b !== undefined) this.emit({ k: "button", down: false, button: b });
  }

  private onPointerMove(e: PointerEvent): void {
    if (e.pointerType === "touch") return this.onTouch(e, TE.Move);
    if (this.relative()) {
      // Coalesced events carry sub-pixel moves from high-rate mice.
      const scaleX = this.streamW / Math.max(1, this.el.clientWidth);
      const scaleY = this.streamH / Math.max(1, this.el.clientHeight);
      const s = Math.max(scaleX, scaleY, 1);
      this.moves.addRelative(e.movementX * s, e.movementY * s);
    } else {
      const p = this.normalised(e);
      if (p) this.moves.setAbsolute(p.x * ABS_REF, p.y * ABS_REF);
    }
  }

  private onWheel(e: WheelEvent): void {
    e.preventDefault();
    const { dx, dy } = wheelPixels(e, this.el.clientHeight);
    if (dx || dy) this.emit({ k: "wheel", dx, dy });
  }

  private onTouch(e: PointerEvent, event: number): void {
    e.preventDefault();
    const p = this.normalised(e) ?? { x: -1, y: -1 };
    if (this.opts.touchMode === "touch" && this.hostTouch) {
      if (p.x < 0) return;
      this.emit({
        k: "touch",
        t: { event, pointerId: e.pointerId, x: p.x, y: p.y, pressure: e.pressure || (event === TE.Up ? 0 : 1), contactMajor: 0, contactMinor: 0 },
      });
      return;
    }
    // Trackpad: one finger moves the mouse, a tap clicks, a two-finger tap right-clicks, two
    // fingers scroll.
    const now = performance.now();
    if (event === TE.Down) {
      this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (!this.trackpad) this.trackpad = { id: e.pointerId, x: e.clientX, y: e.clientY, t: now, moved: 0, fingers: 1 };
      else this.trackpad.fingers = Math.max(this.trackpad.fingers, this.touches.size);
      return;
    }
    const last = this.touches.get(e.pointerId);
    if (!last) return;
    const dx = e.clientX - last.x;
    const dy = e.clientY - last.y;
    this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const tp = this.trackpad;
    if (event === TE.Move && tp) {
      tp.moved += Math.abs(dx) + Math.abs(dy);
      if (this.touches.size >= 2) {
        if (e.pointerId === tp.id) this.emit({ k: "wheel", dx: -dx * 2, dy: -dy * 2 });
      } else {
        this.moves.addRelative(dx * 1.5, dy * 1.5);
      }
      return;
    }
    this.touches.delete(e.pointerId);
    if (this.touches.size === 0 && tp) {
      if (event === TE.Up && tp.moved < 12 && now - tp.t < 250) {
        const button = tp.fingers >= 2 ? 3 : 1;
        this.emit({ k: "button", down: true, button });
        this.emit({ k: "button", down: false, button });
      }
      this.trackpad = null;
    }
  }

  private padId(index: number): number {
    return index & 15;
  }

  private pollPads(): void {
    const list = navigator.getGamepads?.() ?? [];
    let mask = 0;
    for (const p of list) if (p && p.mapping === "standard") mask |= 1 << this.padId(p.index);
    for (const p of list) {
      if (!p || p.mapping !== "standard") continue;
      const id = this.padId(p.index);
      const s = padState(p, id, mask);
      const prev = this.pads.get(p.index);
      if (!prev) this.emit({ k: "pad_arrival", id, type: padType(p.id), caps: padCapabilities(p), buttons: SUPPORTED_BUTTONS });
      if (!sameState(prev, s)) {
        this.pads.set(p.index, s);
        this.emit({ k: "pad_state", s });
      }
    }
    for (const index of [...this.pads.keys()]) {
      if (!list[index]) {
        this.pads.delete(index);
        this.emit({ k: "pad_removal", id: this.padId(index) });
      }
    }
  }
}
