/**
 * The stream view: the media element, input capture, stats overlay, toolbar, fullscreen — and the
 * one owner of reconnects. Every end of a transport comes here (`onClosed`), the reconnect policy
 * decides, and only this class starts a new transport. It either opens a host's app (this browser
 * owns the stream) or watches another member's stream (browser-protocol §8); both show the
 * Viewers panel once the gateway sends a roster.
 */
import type { Api, AppView, HostView } from "../api";
import { InputCapture } from "../input";
import { ReconnectPolicy, type Decision } from "../reconnect";
import { formatsFor, probeCodecs, rtcFormatsFor, webcodecsAvailable, webrtcAvailable, type Settings } from "../settings";
import { h } from "../ui";
import { RtcTransport } from "./rtc";
import type { StreamRequest, StreamStats, Transport, TransportEvents } from "./transport";
import { WsTransport } from "./ws";
import { MIC_MODE_CHANGED, Microphone, type MicDebug, type MicOutput } from "./mic";
import { qualityNotice, type QualityInfo } from "./quality";
import { roleOf, watchLink, type ViewersInfo, type WatchTarget } from "./viewers";

interface ViewBase {
  api: Api;
  settings: Settings;
  clientUniqueId: string;
  /** Leave the view (back to the app grid, or the hosts when watching). */
  exit(): void;
}

/** Open a host's app: this view starts the stream and owns it… */
export interface OpenOptions extends ViewBase {
  host: HostView;
  hostIndex: number;
  app: AppView;
  watch?: undefined;
}

/** …or join another member's stream from its watch link (WebSocket mode only). */
export interface WatchOptions extends ViewBase {
  watch: WatchTarget;
}

export type StreamViewOptions = OpenOptions | WatchOptions;

/** What tests and the curious can read: `window.moongate`. */
export interface StreamDebug {
  state: string;
  mode: string | null;
  stats(): StreamStats | null;
  reason: string | null;
  /** The last roster the gateway sent (browser-protocol §8.2), null before the first. */
  viewers: ViewersInfo | null;
  /** Why this member's input was last refused, null while it holds control. */
  inputRefused: string | null;
  /** The microphone uplink (MicOpus in WebSocket mode, an audio track in WebRTC mode). */
  mic: MicDebug;
  /** Every quality change the gateway announced, oldest first. */
  quality: QualityInfo[];
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
  private readonly viewers: ViewersPanel;
  private readonly input: InputCapture;
  private readonly policy = new ReconnectPolicy();
  private transport: Transport | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private qualityTimer: ReturnType<typeof setTimeout> | undefined;
  private overlayTimer: ReturnType<typeof setInterval> | undefined;
  private rtcFailed = false;
  private destroyed = false;
  private audioCtx: AudioContext | null = null;
  private mic: Microphone | null = null;
  private readonly micButton: HTMLButtonElement;
  private readonly micNote: HTMLDivElement;
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
      btn("← Back", o.watch ? "Stop watching (Ctrl+Alt+Shift+Q)" : "Disconnect and go back to the apps (Ctrl+Alt+Shift+Q)", () => this.leave(false)),
      o.watch ? null : btn("Quit app", "End the app on the host", () => this.leave(true), "danger"),
      btn("Fullscreen", "Fullscreen with keyboard lock (Ctrl+Alt+Shift+F)", () => void this.toggleFullscreen()),
      btn("Capture mouse", "Relative mouse with pointer lock (Esc releases)", () => this.stage.requestPointerLock?.()),
      btn("Paste", "Type the clipboard's text on the host", () => void this.paste()),
      btn("Stats", "Show or hide statistics (Ctrl+Alt+Shift+S)", () => this.toggleStats()),
    );
    this.micButton = h(
      "button",
      { class: "mic", title: "Send this device's microphone to the host", "aria-pressed": "false", dataset: { testid: "mic-toggle" }, onclick: () => this.toggleMic() },
      "Microphone",
    );
    bar.append(this.micButton);
    this.micNote = h("div", { class: "notice mic-note", role: "alert", hidden: true, dataset: { testid: "mic-error" } });
    this.viewers = new ViewersPanel({
      request: () => this.transport?.requestControl(),
      grant: (id) => this.transport?.grantControl(id),
      release: () => this.transport?.releaseControl(),
      done: () => this.stage.focus({ preventScroll: true }),
    });
    this.root = h("div", { class: "stream", dataset: { testid: "stream" } }, this.stage, this.overlay, this.viewers.el, this.statusBox, this.micNote, bar);
    this.input = new InputCapture(this.stage, { touchMode: o.settings.touchMode, fps: o.settings.fps });
    this.debug = { state: "starting", mode: null, stats: () => this.transport?.stats() ?? null, reason: null, viewers: null, inputRefused: null, mic: { on: false, packetsSent: 0, error: null }, quality: [] };
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
    if (this.o.watch) return "websocket"; // a watcher is always WebSocket mode (§8)
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
    const o = this.o;
    let formats: number;
    if (mode === "websocket") {
      if (!webcodecsAvailable()) {
        return this.stopWith("This browser cannot decode video with WebCodecs (it needs a recent Chrome, Edge or Safari over HTTPS or localhost). Try WebRTC mode in the settings.");
      }
      // A watcher takes the owner's codec: it offers nothing.
      formats = o.watch ? 0 : formatsFor(await probeCodecs(), s.codec);
    } else {
      const caps = RTCRtpReceiver.getCapabilities?.("video")?.codecs ?? [];
      formats = rtcFormatsFor(caps.map((c) => c.mimeType), s.codec);
    }
    if (this.destroyed) return; // left while the codecs were probed
    if (!formats && !o.watch) return this.stopWith(`This browser cannot decode ${s.codec === "auto" ? "any video format the host offers" : s.codec} in ${mode === "webrtc" ? "WebRTC" : "WebSocket"} mode. Pick another codec or mode in the settings.`);
    const req: StreamRequest = {
      base: "",
      credential: o.api.credential,
      watch: o.watch,
      hostIndex: o.watch ? 0 : o.hostIndex,
      appId: o.watch ? 0 : o.app.id,
      width: s.width,
      height: s.height,
      fps: s.fps,
      bitrateKbps: s.bitrateKbps,
      audioChannels: s.audioChannels,
      formats,
      // One stream per browser and host: a second tab takes over (the first sees "superseded").
      // A watcher joins by the stream id and token instead (its socket carries no session id).
      sessionId: o.watch ? "" : `web-${o.host.id}`,
      clientUniqueId: o.clientUniqueId,
      adaptive: s.adaptive,
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
      viewers: (v) => {
        if (this.transport !== t) return;
        this.debug.viewers = v;
        if (roleOf(v).hasControl) this.debug.inputRefused = null;
        this.viewers.show(v);
      },
      micSent: (packets) => {
        // Counted while the microphone is on: a poll after switching off reports the last packets before it.
        if (this.transport === t && this.debug.mic.on) this.debug.mic.packetsSent += packets;
      },
      quality: (q) => {
        if (this.transport !== t) return;
        this.debug.quality.push(q);
        this.setStatus(qualityNotice(q));
        clearTimeout(this.qualityTimer);
        const notice = qualityNotice(q);
        this.qualityTimer = setTimeout(() => {
          if (this.statusBox.textContent === notice) this.setStatus(null);
        }, 4000);
      },
      inputRefused: (reason) => {
        if (this.transport !== t) return;
        this.debug.inputRefused = reason;
        this.viewers.refused(reason);
      },
      closed: (info) => {
        if (this.transport !== t) return;
        this.viewers.hide();
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
    // A running microphone follows the stream: its track goes on the new peer connection; a
    // switch of mode (`auto`'s fallback) stops it, its output belonging to the other mode.
    if (this.mic && (this.mic.kind === "track") !== (t.mode === "webrtc")) this.mic.stop(MIC_MODE_CHANGED);
    else if (this.mic?.captureTrack) t.setMicTrack?.(this.mic.captureTrack);
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
    this.mic?.stop();
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
      `microphone ${this.debug.mic.on ? "on" : "off"}, ${this.debug.mic.packetsSent} packets sent`,
      `input ${this.input.sent.keys} keys, ${this.input.sent.buttons} clicks, ${this.input.sent.moves} moves (${this.input.sent.coalesced} coalesced)`,
    ].join("\n");
  }

  /** Microphone on (asks for permission the first time) or off. */
  private toggleMic(): void {
    this.stage.focus({ preventScroll: true });
    if (this.mic) {
      this.mic.stop();
      return;
    }
    const mode = this.transport?.mode ?? this.chooseMode();
    const out: MicOutput =
      mode === "webrtc"
        ? { track: (track) => this.transport?.setMicTrack?.(track) }
        : { packets: (timestamp, packet) => this.transport?.sendMic?.(timestamp, packet) ?? false };
    const mic = new Microphone(
      out,
      this.debug.mic,
      (error) => {
        if (this.mic === mic) this.mic = null;
        this.micStopped(error);
      },
    );
    this.mic = mic;
    this.micNote.hidden = true;
    this.micButton.setAttribute("aria-pressed", "true");
    void mic.start();
  }

  /** The toggle shows off; `error` (null when the user switched it off) is shown in words. */
  private micStopped(error: string | null): void {
    this.debug.mic.on = false;
    this.debug.mic.error = error;
    this.micButton.setAttribute("aria-pressed", "false");
    this.micNote.hidden = error === null;
    this.micNote.textContent = error ?? "";
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
    if (quitApp && !this.o.watch) void this.o.api.cancel(this.o.host.id).catch(() => {});
    this.o.exit();
  }

  /** Ends everything this view owns (idempotent). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.qualityTimer);
    clearInterval(this.overlayTimer);
    window.removeEventListener("pagehide", this.onPageHide);
    window.removeEventListener("keydown", this.onShortcut, true);
    this.input.detach();
    this.mic?.stop();
    this.transport?.close(true);
    this.transport = null;
    if (document.pointerLockElement) document.exitPointerLock();
    if (document.fullscreenElement) void document.exitFullscreen().catch(() => {});
    void this.audioCtx?.close().catch(() => {});
    this.root.remove();
    if (window.moongate === this.debug) this.debug.state = "closed";
  }
}

interface PanelActions {
  request(): void;
  grant(viewer: number): void;
  release(): void;
  /** After a button: keys go back to the stream. */
  done(): void;
}

/**
 * The Viewers panel (browser-protocol §8): who watches, who holds control, the watch link for the
 * owner and the hand-over buttons. A disclosure in the corner, so that one viewer alone is not
 * covered by it; it opens by itself when someone joins, asks for control or this member's input
 * is refused.
 */
class ViewersPanel {
  readonly el: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  private readonly body: HTMLDivElement;
  private last: ViewersInfo | null = null;
  private refusedReason: string | null = null;

  constructor(private readonly act: PanelActions) {
    this.summary = h("summary", null, "Viewers");
    this.body = h("div", { class: "stack" });
    this.el = h("details", { class: "viewers", hidden: true, dataset: { testid: "viewers" } }, this.summary, this.body);
  }

  show(v: ViewersInfo): void {
    const prev = this.last;
    const role = roleOf(v);
    const asked = (p: ViewersInfo | null) => (p ? roleOf(p).grantable.map((m) => m.id) : []);
    const before = new Set(asked(prev));
    if (role.hasControl) this.refusedReason = null;
    if ((prev && v.viewers.length > prev.viewers.length) || role.grantable.some((m) => !before.has(m.id))) this.el.open = true;
    this.last = v;
    this.render();
  }

  refused(reason: string): void {
    if (this.refusedReason === null) this.el.open = true;
    this.refusedReason = reason;
    this.render();
  }

  hide(): void {
    this.el.hidden = true;
    this.last = null;
    this.refusedReason = null;
  }

  private render(): void {
    const v = this.last;
    if (!v) return;
    const role = roleOf(v);
    const act = (fn: () => void) => () => {
      fn();
      this.act.done();
    };
    this.el.hidden = false;
    this.el.dataset.count = String(v.viewers.length);
    this.summary.textContent = `Viewers · ${v.viewers.length}`;
    const granting = new Set(role.grantable.map((m) => m.id));
    const members = h(
      "ul",
      { class: "members" },
      v.viewers.map((m) =>
        h(
          "li",
          { dataset: { viewer: String(m.id) } },
          h("span", { class: "name" }, m.name, m.id === v.you ? " (you)" : ""),
          m.owner ? h("span", { class: "badge info" }, "owner") : null,
          m.id === v.controller ? h("span", { class: "badge ok", dataset: { testid: "has-control" } }, "has control") : null,
          v.requests.includes(m.id) ? h("span", { class: "badge warn" }, "asks for control") : null,
          granting.has(m.id)
            ? h("button", { class: "primary", "aria-label": `Give control to ${m.name}`, dataset: { testid: "grant-control", viewer: String(m.id) }, onclick: act(() => this.act.grant(m.id)) }, "Give control")
            : null,
        ),
      ),
    );
    const link = v.share ? watchLink(location.origin, v.share) : null;
    this.body.replaceChildren(
      members,
      this.refusedReason !== null
        ? h("div", { class: "notice", role: "alert", dataset: { testid: "input-refused" } }, `Your input was not sent: ${this.refusedReason}${/[.!?]$/.test(this.refusedReason) ? "" : "."}`)
        : "",
      link ? this.shareRow(link) : "",
      role.hasControl
        ? v.viewers.length > 1
          ? h("button", { dataset: { testid: "release-control" }, title: "Let go of the input (the oldest request gets it)", onclick: act(() => this.act.release()) }, "Release control")
          : ""
        : h(
            "button",
            { dataset: { testid: "request-control" }, disabled: role.requested, onclick: act(() => this.act.request()) },
            role.requested ? "Control requested…" : v.controller === null ? "Take control" : "Request control",
          ),
    );
  }

  private shareRow(link: string): HTMLElement {
    const code = h("code", { class: "watch-link", dataset: { testid: "watch-link", href: link } }, link);
    const copy = h("button", { dataset: { testid: "copy-watch-link" }, title: "Anyone signed in to this gateway can watch with this link" }, "Copy watch link");
    // Without clipboard access (permission, plain http) the link is selected for Ctrl+C.
    const select = () => {
      getSelection()?.selectAllChildren(code);
      copy.textContent = "Press Ctrl+C";
    };
    copy.addEventListener("click", () => {
      if (!navigator.clipboard) return select();
      navigator.clipboard.writeText(link).then(() => (copy.textContent = "Copied"), select);
    });
    return h("div", { class: "stack share" }, code, copy);
  }
}
