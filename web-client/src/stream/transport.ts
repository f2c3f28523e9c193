/** What the stream view needs from a transport (WebSocket + WebCodecs, or WebRTC). */
import type { InputSink } from "../input";
import type { StreamSettings } from "../protocol";
import type { CloseInfo } from "../reconnect";
import type { QualityInfo } from "./quality";
import type { ViewersInfo, WatchTarget } from "./viewers";

export interface StreamStats {
  mode: "websocket" | "webrtc";
  codec: string;
  width: number;
  height: number;
  /** Totals since the connection opened. */
  framesReceived: number;
  framesDecoded: number;
  framesDropped: number;
  keyframeRequests: number;
  /** Rates over the last second. */
  fpsReceived: number;
  fpsDecoded: number;
  bitrateKbps: number;
  rttMs: number | null;
  decodeQueue: number;
  audio: string;
  /** From creating the transport (the socket opens next) to the first decoded frame; null until then. */
  firstFrameMs: number | null;
}

export interface ConnectedInfo {
  width: number;
  height: number;
  touch: boolean;
}

export interface TransportEvents {
  status(text: string): void;
  connected(info: ConnectedInfo): void;
  rumble(id: number, a: number, b: number, trigger: boolean): void;
  /** Called exactly once. `iceFailed`: WebRTC could not connect (auto mode falls back). */
  closed(info: CloseInfo & { iceFailed?: boolean }): void;
  /** The stream's members changed (browser-protocol §8.2; WebSocket mode only). */
  viewers(v: ViewersInfo): void;
  /** This member's input was dropped: another member holds control (§8.3). */
  inputRefused(reason: string): void;
  /** The gateway moved the stream to another quality rung (WebSocket mode, §9). */
  quality?(q: QualityInfo): void;
  /** WebRTC: the microphone track's RTP packets sent since the last call (from getStats). */
  micSent?(packets: number): void;
}

export interface StreamRequest extends StreamSettings {
  base: string;
  credential: string;
  /** Join another member's stream (`/api/ws/watch`, §8.1) instead of opening one. */
  watch?: WatchTarget;
}

export interface Transport extends InputSink {
  readonly mode: "websocket" | "webrtc";
  /** The canvas or video element showing the stream. */
  readonly media: HTMLCanvasElement | HTMLVideoElement;
  stats(): StreamStats;
  /** Control hand-over (§8.3); no-ops where the transport has no viewers (WebRTC). */
  requestControl(): void;
  grantControl(viewer: number): void;
  releaseControl(): void;
  /**
   * Sends one microphone Opus packet (MicOpus 0x18, 48 kHz timestamp); false when it was dropped.
   * WebSocket mode only (WebRTC carries the track itself: `setMicTrack`).
   */
  sendMic?(timestamp: number, packet: Uint8Array): boolean;
  /**
   * Sends the microphone's capture track upward on the peer connection (its Opus encoder), or
   * nothing with null. WebRTC mode only; no renegotiation.
   */
  setMicTrack?(track: MediaStreamTrack | null): void;
  /** Ends the connection; `closed` follows. */
  close(byUser: boolean): void;
}

/** Per-second rate of a growing counter. */
export class Rate {
  private lastValue = 0;
  private lastAt = 0;
  rate = 0;
  update(value: number, now: number): number {
    if (this.lastAt && now > this.lastAt) this.rate = ((value - this.lastValue) * 1000) / (now - this.lastAt);
    this.lastValue = value;
    this.lastAt = now;
    return this.rate;
  }
}

/** ws:// or wss:// URL for a path on `base` (empty = this page's origin). */
export function wsUrl(base: string, path: string): string {
  const u = new URL(path, base || location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}
