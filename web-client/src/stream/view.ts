/**
 * The stream view: the media element, input capture, stats overlay, toolbar, fullscreen — and the
 * one owner of reconnects. Every end of a transport comes here (`onClosed`), the reconnect policy
 * decides, and only this class starts a new transport.
 */
import type { Api, AppView, HostView } from "../api";
import { InputCapture } from "../input";
import { ReconnectPolicy, type Decision } from "../reconnect";
import { formatsFor, probeCodecs, rtcFormatsFor, webcodecsAvailable, webrtcAvailable, type Settings } from "../settings";
import { h } from "../ui";
import { RtcTransport } from "./rtc";
import type { StreamRequest, StreamStats, Transport, TransportEvents } from "./transport";
import { WsTransport } from "./ws";

export interface StreamViewOptions {
  api: Api;
  host: HostView;
  hostIndex: number;
  app: AppView;
  settings: Settings;
  clientUniqueId: string;
  /** Leave the view (back to the app grid). */
  exit(): void;
}

/** What tests and the curious can read: `window.moongate`. */
export interface StreamDebug {
  state: string;
  mode: string | null;
  stats(): StreamStats | null;
  reason: string | null;
}

declare global {
  interface Window {
    moongate?: StreamDebug;
  }
}


export class StreamView {
  readonly root: HTMLDivElement;
  private readonly stage: HTMLDivElement;
  private readonly statusBox: HTMLDivElement;
  private readonly overlay: HTMLDivElement;
  private readonly input: InputCapture;
  private readonly policy = new ReconnectPolicy();
  private transport: Transport | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private overlayTimer: ReturnType<typeof setInterval> | undefined;
  private rtcFailed = false;
  private destroyed = false;
  private audioCtx: AudioContext | null = null;
  private readonly debug: StreamDebug;
  private readonly onPageHide = () => this.transport?.close(true);
  private readonly onShortcut = (e: KeyboardEvent) => this.shortcut(e);

  constructor(private readonly o: StreamViewOptions) {
    this.stage = h("div", { class: "stage", style: "position:absolute;inset:0;display:grid;place-items:center" });
    this.statusBox = h("div", { class: "status", role: "status" });
    this.overlay = h("div", { class: "overlay", hidden: !o.settings.showStats });
    const btn = (label: string, title: string, fn: () => void, cls = "") => h("button", { class: cls, title, onclick: fn }, label);
    const bar = h(
      "div",
      { class: "bar" },
      btn("← Back", "Disconnect and go back to the apps (Ctrl+Alt+Shift+Q)", () => this.leave(false)),
      btn("Quit app", "End the app on the host", () => this.leave(true), "danger"),
      btn("Fullscreen", "Fullscreen with keyboard lock (Ctrl+Alt+Shift+F)", () => void this.toggleFullscreen()),
      btn("Capture mouse", "Relative mouse with pointer lock (Esc releases)", () => this.stage.requestPointerLock?.()),
      btn("Paste", "Type the clipboard's text on the host", () => void this.paste()),
      btn("Stats", "Show or hide statistics (Ctrl+Alt+Shift+S)", () => this.toggleStats()),
    );
    this.root = h("div", { class: "stream", dataset: { testid: "stream" } }, this.stage, this.overlay, this.statusBox, bar);
    this.input = new InputCapture(this.stage, { touchMode: o.settings.touchMode, fps: o.settings.fps });
    this.debug = { state: "starting", mode: null, stats: () => this.transport?.stats() ?? null, reason: null };
    window.moongate = this.debug;
  }

  /** Starts streaming (call after the root is in the document). */
  start(): void {
    try {
      // Created during the user's click (launch), so audio may play.
      this.audioCtx = this.o.settings.audioChannels > 0 ? new AudioContext({ latencyHint: "interactive" }) : null;
      void this.audioCtx?.resume();
    } catch {
      this.audioCtx = null;
    }
    this.input.attach();
    // Without a recent click (e.g. after a reload) the browser starts audio suspended; the first
    // interaction with the stream resumes it.
    const resume = () => void this.audioCtx?.resume().catch(() => {});
    this.stage.addEventListener("pointerdown", resume, { once: true });
    this.stage.addEventListener("keydown", resume, { once: true });
    window.addEventListener("pagehide", this.onPageHide);
    window.addEventListener("keydown", this.onShortcut, true);
    this.overlayTimer = setInterval(() => this.renderStats(), 500);
    void this.connect();
  }

  private chooseMode(): "websocket" | "webrtc" {
    const m = this.o.settings.mode;
    if (m === "websocket" || m === "webrtc") return m;
    // Surround reaches the browser over WebSocket only (WebRTC carries stereo Opus).
    if (this.o.settings.audioChannels > 2 && webcodecsAvailable()) return "websocket";
    if (webrtcAvailable() && !this.rtcFailed) return "webrtc";
    return "websocket";
  }

  private async connect(): Promise<void> {
    if (this.destroyed) return;
    const mode = this.chooseMode();
    const s = this.o.settings;
    let formats: number;
    if (mode === "websocket") {
      if (!webcodecsAvailable()) {
        return this.stopWith("This browser cannot decode video with WebCodecs (it needs a recent Chrome, Edge or Safari over HTTPS or localhost). Try WebRTC mode in the settings.");
      }
      formats = formatsFor(await probeCodecs(), s.codec);
    } else {
      const caps = RTCRtpReceiver.getCapabilities?.("video")?.codecs ?? [];
      formats = rtcFormatsFor(caps.map((c) => c.mimeType), s.codec);
    }
    if (this.destroyed) return; // left while the codecs were probed
    if (!formats) return this.stopWith(`This browser cannot decode ${s.codec === "auto" ? "any video format the host offers" : s.codec} in ${mode === "webrtc" ? "WebRTC" : "WebSocket"} mode. Pick another codec or mode in the settings.`);
    const req: StreamRequest = {
      base: "",
      credential: this.o.api.credential,
      hostIndex: this.o.hostIndex,
      appId: this.o.app.id,
      width: s.width,
      height: s.height,
      fps: s.fps,
      bitrateKbps: s.bitrateKbps,
      audioChannels: s.audioChannels,
      formats,
      // One stream per browser and host: a second tab takes over (the first sees "superseded").
      sessionId: `web-${this.o.host.id}`,
      clientUniqueId: this.o.clientUniqueId,
    };
    let t: Transport;
    const events: TransportEvents = {
      status: (text) => this.setStatus(text, true),
      connected: (info) => {
        if (this.transport !== t) return;
        this.debug.state = "streaming";
        this.setStatus(null);
        this.input.connect(t, info.width, info.height, info.touch);
        this.stage.focus({ preventScroll: true });
      },
      rumble: (id, a, b, trigger) => {
        if (!trigger) this.input.rumble(id, a, b);
      },
      closed: (info) => {
        if (this.transport !== t) return;
        this.input.disconnect();
        t.media.remove();
        this.transport = null;
        if (info.iceFailed && this.o.settings.mode === "auto" && t.mode === "webrtc" && !info.byUser) {
          this.rtcFailed = true;
          this.setStatus("WebRTC could not connect here; switching to WebSocket mode…", true);
          void this.connect();
          return;
        }
        this.onDecision(this.policy.decide(info));
      },
    };
    this.debug.mode = mode;
    this.debug.state = "connecting";
    t = mode === "webrtc" ? new RtcTransport(req, events) : new WsTransport(req, events, this.audioCtx);
    this.transport = t;
    t.media.tabIndex = -1;
    this.stage.replaceChildren(t.media);
  }

  private onDecision(d: Decision): void {
    if (this.destroyed) return;
    if (d.action === "retry") {
      this.debug.state = "reconnecting";
      this.debug.reason = d.reason;
      const secs = (d.delayMs / 1000).toFixed(1);
      this.setStatus(`${d.reason} Reconnecting in ${secs} s (attempt ${d.attempt})…`, true);
      this.retryTimer = setTimeout(() => void this.connect(), d.delayMs);
    } else {
      this.stopWith(d.reason);
    }
  }

  private stopWith(reason: string): void {
    this.debug.state = "stopped";
    this.debug.reason = reason;
    this.statusBox.replaceChildren(
      h(
        "div",
        { class: "stack" },
        h("div", { dataset: { testid: "stream-error" } }, reason),
        h(
          "div",
          { class: "row", style: "justify-content:center" },
          h("button", { class: "primary", onclick: () => { this.policy.reset(); void this.connect(); this.setStatus("Connecting…", true); } }, "Reconnect"),
          h("button", { onclick: () => this.leave(false) }, "Back to apps"),
        ),
      ),
    );
    this.statusBox.hidden = false;
  }

  private setStatus(text: string | null, spinner = false): void {
    this.statusBox.hidden = text === null;
    if (text !== null) this.statusBox.replaceChildren(h("div", { class: "row" }, spinner ? h("span", { class: "spinner" }) : null, text));
  }

  private renderStats(): void {
    if (this.overlay.hidden) return;
    const s = this.transport?.stats();
    if (!s) {
      this.overlay.textContent = `not connected (${this.debug.state})`;
      return;
    }
    const f = (n: number) => n.toFixed(0);
    this.overlay.textContent = [
      `${s.mode === "webrtc" ? "WebRTC" : "WebSocket"} · ${s.codec} ${s.width}×${s.height}`,
      `fps   received ${f(s.fpsReceived)}  decoded ${f(s.fpsDecoded)}`,
      `frames ${s.framesDecoded} decoded, ${s.framesDropped} dropped`,
      `bitrate ${(s.bitrateKbps / 1000).toFixed(1)} Mbit/s`,
      `RTT ${s.rttMs === null ? "–" : s.rttMs.toFixed(1) + " ms"}`,
      `decode queue ${s.decodeQueue}`,
      `keyframe requests ${s.keyframeRequests}`,
      `first frame ${s.firstFrameMs === null ? "–" : f(s.firstFrameMs) + " ms"} after connecting`,
      `audio ${s.audio}`,
      `input ${this.input.sent.keys} keys, ${this.input.sent.buttons} clicks, ${this.input.sent.moves} moves (${this.input.sent.coalesced} coalesced)`,
    ].join("\n");
  }

  private toggleStats(): void {
    this.overlay.hidden = !this.overlay.hidden;
    this.renderStats();
  }

  private async toggleFullscreen(): Promise<void> {
    const kb = (navigator as Navigator & { keyboard?: { lock?(keys?: string[]): Promise<void>; unlock?(): void } }).keyboard;
    if (document.fullscreenElement) {
      kb?.unlock?.();
      await document.exitFullscreen().catch(() => {});
      return;
    }
    await this.root.requestFullscreen({ navigationUI: "hide" }).catch(() => {});
    // Keyboard Lock: Esc, Alt+Tab, Cmd… go to the host while fullscreen (hold Esc to leave).
    await kb?.lock?.().catch(() => {});
    this.stage.focus({ preventScroll: true });
  }

  private async paste(): Promise<void> {
    try {
      const text = await navigator.clipboard.readText();
      if (text) this.input.pasteText(text);
    } catch {
      this.setStatus("The browser did not allow reading the clipboard. Press Ctrl+V inside the stream instead.");
      setTimeout(() => this.setStatus(null), 3000);
    }
    this.stage.focus({ preventScroll: true });
  }

  private shortcut(e: KeyboardEvent): void {
    if (!(e.ctrlKey && e.altKey && e.shiftKey)) return;
    const act: Record<string, () => void> = {
      KeyQ: () => this.leave(false),
      KeyS: () => this.toggleStats(),
      KeyF: () => void this.toggleFullscreen(),
      KeyM: () => this.stage.requestPointerLock?.(),
    };
    const f = act[e.code];
    if (!f) return;
    e.preventDefault();
    e.stopPropagation();
    this.input.releaseAll();
    f();
  }

  private leave(quitApp: boolean): void {
    this.destroy();
    if (quitApp) void this.o.api.cancel(this.o.host.id).catch(() => {});
    this.o.exit();
  }

  /** Ends everything this view owns (idempotent). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.overlayTimer);
    window.removeEventListener("pagehide", this.onPageHide);
    window.removeEventListener("keydown", this.onShortcut, true);
    this.input.detach();
    this.transport?.close(true);
    this.transport = null;
    if (document.pointerLockElement) document.exitPointerLock();
    if (document.fullscreenElement) void document.exitFullscreen().catch(() => {});
    void this.audioCtx?.close().catch(() => {});
    this.root.remove();
    if (window.moongate === this.debug) this.debug.state = "closed";
  }
}
