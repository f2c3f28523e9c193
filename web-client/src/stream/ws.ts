/**
 * WebSocket-only mode (docs/browser-protocol.md): the gateway's `/api/ws/stream`, video decoded
 * with WebCodecs onto a canvas, Opus audio decoded with WebCodecs and scheduled on an
 * AudioContext, input as binary messages. With `req.watch` it joins another member's stream
 * (`/api/ws/watch`, browser-protocol §8) instead: the same messages follow, plus the roster.
 */
import type { InputEvent } from "../input";
import * as P from "../protocol";
import { Rate, wsUrl, type StreamRequest, type StreamStats, type Transport, type TransportEvents } from "./transport";
import { wsMessages } from "./encode";
import { downmixToStereo } from "./downmix";
import { serverError, type ServerError } from "../reconnect";
import { parseQuality } from "./quality";
import { parseInputRefused, parseViewers } from "./viewers";

/** Over this many bytes waiting in the socket, mouse moves are coalesced instead of sent. */
const BACKED_UP_BYTES = 64 * 1024;
/** Over this many bytes waiting in the socket, microphone packets are dropped (never queued). */
const MIC_BACKED_UP_BYTES = 256 * 1024;
/** More than this many chunks waiting in the decoder → drop to the next keyframe. */
const MAX_DECODE_QUEUE = 6;
/** Nothing from the server for this long → the connection is dead (Pongs keep it alive). */
const STALE_MS = 10000;

export class WsTransport implements Transport {
  readonly mode = "websocket" as const;
  readonly media: HTMLCanvasElement;
  private readonly ws: WebSocket;
  private readonly ctx: CanvasRenderingContext2D | null;
  private decoder: VideoDecoder | null = null;
  private audio: AudioPlayer | null = null;
  private init: P.StreamInit | null = null;
  private needKeyframe = true;
  private closedOnce = false;
  /** The last error: the server's (text and typed code) or the client's own words (no code). */
  private lastError: ServerError | undefined;
  private connectedAt = 0;
  private byUser = false;
  private pingSeq = 0;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private lastRx = performance.now();
  private pendingFrame: VideoFrame | null = null;
  private raf = 0;
  private readonly s = { received: 0, decoded: 0, dropped: 0, keyframeRequests: 0, bytes: 0, rtt: null as number | null };
  private readonly rates = { rx: new Rate(), dec: new Rate(), bytes: new Rate() };
  private rateCache = { at: 0, rx: 0, dec: 0, kbps: 0 };
  private readonly createdAt = performance.now();
  private firstFrameMs: number | null = null;

  constructor(
    private readonly req: StreamRequest,
    private readonly ev: TransportEvents,
    private readonly audioCtx: AudioContext | null,
  ) {
    this.media = document.createElement("canvas");
    this.media.width = req.width;
    this.media.height = req.height;
    this.ctx = this.media.getContext("2d", { alpha: false, desynchronized: true });
    ev.status("Connecting to the gateway…");
    const path = req.watch ? "/api/ws/watch" : `/api/ws/stream?session_id=${encodeURIComponent(req.sessionId)}`;
    this.ws = new WebSocket(wsUrl(req.base, path));
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this.onOpen();
    this.ws.onmessage = (m) => this.onMessage(m);
    this.ws.onclose = (c) => this.finish(c.code);
    this.ws.onerror = () => {
      /* the close event follows with the code */
    };
  }

  private onOpen(): void {
    this.ev.status(this.req.watch ? "Joining the stream…" : "Starting the stream on the host…");
    this.ws.send(this.firstMessage());
    this.sendPing();
    this.pingTimer = setInterval(() => {
      this.sendPing();
      if (performance.now() - this.lastRx > STALE_MS) {
        this.lastError = { text: "The gateway stopped answering (no data for 10 seconds)." };
        this.ws.close(4002, "stale");
        this.finish(1006);
      }
    }, 1000);
  }

  /** The init (§2.1), or a watcher's join (§8.1). */
  private firstMessage(): string {
    const w = this.req.watch;
    if (w) return JSON.stringify({ watch: { stream: w.stream, token: w.token }, credentials: this.req.credential || undefined });
    return P.initJson({
      hostIndex: this.req.hostIndex,
      appId: this.req.appId,
      width: this.req.width,
      height: this.req.height,
      fps: this.req.fps,
      bitrateKbps: this.req.bitrateKbps,
      audioChannels: this.req.audioChannels,
      formats: this.req.formats,
      clientUniqueId: this.req.clientUniqueId,
      sessionId: this.req.sessionId,
      credentials: this.req.credential,
      adaptive: this.req.adaptive,
    });
  }

  private sendPing(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(P.ping(this.pingSeq++, BigInt(Math.round(performance.now() * 1000))));
  }

  private onMessage(m: MessageEvent): void {
    this.lastRx = performance.now();
    if (typeof m.data === "string") {
      let json: unknown;
      try {
        json = JSON.parse(m.data);
      } catch {
        return;
      }
      this.onJson(json);
      return;
    }
    const buf = m.data as ArrayBuffer;
    for (const msg of P.decodeServer(buf)) {
      switch (msg.type) {
        case "stream_init":
          this.onStreamInit(msg);
          break;
        case "video":
          this.s.bytes += buf.byteLength;
          this.onVideo(msg);
          break;
        case "audio":
          this.s.bytes += buf.byteLength;
          this.audio?.push(msg);
          break;
        case "pong":
          this.s.rtt = performance.now() - Number(msg.clientTimeUs) / 1000;
          break;
        case "rumble":
          this.ev.rumble(msg.id, msg.a, msg.b, msg.trigger);
          break;
        case "control":
          this.onJson(msg.json);
          break;
        case "stream_error":
          this.lastError = { text: msg.text };
          break;
      }
    }
  }

  private onJson(json: unknown): void {
    if (!json || typeof json !== "object") return;
    const o = json as Record<string, unknown>;
    const error = serverError(o);
    if (error) {
      this.lastError = error;
      return;
    }
    const viewers = parseViewers(o);
    if (viewers) return this.ev.viewers(viewers);
    const refused = parseInputRefused(o);
    if (refused !== null) return this.ev.inputRefused(refused);
    const quality = parseQuality(o);
    if (quality) return this.ev.quality?.(quality);
    const cc = o.ConnectionComplete as { width?: number; height?: number; capabilities?: { touch?: boolean } } | undefined;
    if (cc) {
      this.connectedAt = performance.now();
      this.ev.connected({
        width: cc.width ?? this.init?.width ?? this.req.width,
        height: cc.height ?? this.init?.height ?? this.req.height,
        touch: !!cc.capabilities?.touch,
      });
    }
  }

  private onStreamInit(init: P.StreamInit): void {
    this.init = init;
    const codec = P.codecByByte(init.codec);
    if (!codec) {
      this.lastError = { text: `The host chose a video format this client does not know (0x${init.codec.toString(16)}).` };
      this.ws.close(1000);
      return;
    }
    this.media.width = init.width;
    this.media.height = init.height;
    this.decoder?.close();
    this.decoder = new VideoDecoder({
      output: (f) => this.onDecoded(f),
      error: (e) => this.onDecoderError(e),
    });
    this.decoder.configure({ codec: codec.webcodecs, optimizeForLatency: true, hardwareAcceleration: "no-preference" });
    this.needKeyframe = true;
    if (init.audioChannels > 0 && this.audioCtx) {
      this.audio?.close();
      this.audio = new AudioPlayer(this.audioCtx, init.sampleRate, init.audioChannels, init.opus);
    }
  }

  private onVideo(f: P.VideoFrame): void {
    this.s.received++;
    const d = this.decoder;
    if (!d || d.state !== "configured") return;
    if (this.needKeyframe && !f.keyframe) {
      this.s.dropped++;
      return;
    }
    if (d.decodeQueueSize > MAX_DECODE_QUEUE && !f.keyframe) {
      // The decoder cannot keep up: skip to the next keyframe instead of building latency.
      this.s.dropped++;
      this.requestKeyframe();
      return;
    }
    this.needKeyframe = false;
    try {
      d.decode(new EncodedVideoChunk({ type: f.keyframe ? "key" : "delta", timestamp: Number(f.ptsUs), data: f.data }));
    } catch (e) {
      this.onDecoderError(e);
    }
  }

  private onDecoded(frame: VideoFrame): void {
    this.s.decoded++;
    this.firstFrameMs ??= performance.now() - this.createdAt;
    // Draw on the next animation frame; a newer frame replaces one not yet drawn.
    if (this.pendingFrame) {
      this.pendingFrame.close();
      this.s.dropped++;
    }
    this.pendingFrame = frame;
    if (!this.raf) {
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        const f = this.pendingFrame;
        this.pendingFrame = null;
        if (!f) return;
        if (this.media.width !== f.displayWidth || this.media.height !== f.displayHeight) {
          this.media.width = f.displayWidth;
          this.media.height = f.displayHeight;
        }
        this.ctx?.drawImage(f, 0, 0);
        f.close();
      });
    }
  }

  private onDecoderError(e: unknown): void {
    console.warn("video decoder error, waiting for a keyframe", e);
    if (this.init) this.onStreamInit(this.init);
    this.requestKeyframe();
  }

  private requestKeyframe(): void {
    if (this.needKeyframe) return;
    this.needKeyframe = true;
    this.s.keyframeRequests++;
    // The server asks the host for an IDR when video is switched back on (browser-protocol §2.4;
    // it acts on binary ControlMessages and on the off → on transition only).
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(P.control({ set_video_enabled: false }));
      this.ws.send(P.control({ set_video_enabled: true }));
    }
  }

  send(e: InputEvent): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    for (const m of wsMessages(e)) this.ws.send(m);
  }

  requestControl(): void {
    this.sendControl({ request_control: true });
  }

  grantControl(viewer: number): void {
    this.sendControl({ grant_control: viewer });
  }

  releaseControl(): void {
    this.sendControl({ release_control: true });
  }

  /** Control JSON travels as a binary ControlMessage 0x20 (§2.4, §3.11). */
  private sendControl(json: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(P.control(json));
  }

  /**
   * One microphone packet as MicOpus 0x18. Dropped (false) while the socket is not open or is
   * backed up: late audio is worth less than none.
   */
  sendMic(timestamp: number, packet: Uint8Array): boolean {
    if (this.ws.readyState !== WebSocket.OPEN || this.ws.bufferedAmount > MIC_BACKED_UP_BYTES) return false;
    this.ws.send(P.micOpus(timestamp, packet));
    return true;
  }

  backedUp(): boolean {
    return this.ws.bufferedAmount > BACKED_UP_BYTES;
  }

  stats(): StreamStats {
    const now = performance.now();
    if (now - this.rateCache.at >= 1000) {
      this.rateCache = {
        at: now,
        rx: this.rates.rx.update(this.s.received, now),
        dec: this.rates.dec.update(this.s.decoded, now),
        kbps: (this.rates.bytes.update(this.s.bytes, now) * 8) / 1000,
      };
    }
    return {
      mode: this.mode,
      codec: (this.init && P.codecByByte(this.init.codec)?.name) ?? "–",
      width: this.init?.width ?? 0,
      height: this.init?.height ?? 0,
      framesReceived: this.s.received,
      framesDecoded: this.s.decoded,
      framesDropped: this.s.dropped,
      keyframeRequests: this.s.keyframeRequests,
      fpsReceived: this.rateCache.rx,
      fpsDecoded: this.rateCache.dec,
      bitrateKbps: this.rateCache.kbps,
      rttMs: this.s.rtt,
      decodeQueue: this.decoder?.decodeQueueSize ?? 0,
      audio: this.audio ? this.audio.describe() : this.req.audioChannels ? "waiting" : "off",
      firstFrameMs: this.firstFrameMs,
    };
  }

  close(byUser: boolean): void {
    this.byUser = byUser;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, byUser ? "closed by the user" : "");
    this.finish(1000);
  }

  private finish(code: number): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    clearInterval(this.pingTimer);
    cancelAnimationFrame(this.raf);
    this.pendingFrame?.close();
    this.pendingFrame = null;
    try {
      if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    } catch {
      /* already closed */
    }
    this.audio?.close();
    this.ev.closed({
      code,
      error: this.lastError?.text,
      errorCode: this.lastError?.code,
      byUser: this.byUser,
      streamedMs: this.connectedAt ? performance.now() - this.connectedAt : 0,
    });
  }
}

/**
 * Opus packets → WebCodecs AudioDecoder → AudioBuffers scheduled back to back (≤ 150 ms ahead).
 * Surround is multistream Opus: the decoder gets an OpusHead built from StreamInit's layout, the
 * output takes as many channels as this device has, and a stereo device hears a downmix.
 */
class AudioPlayer {
  private decoder: AudioDecoder | null = null;
  private next = 0;
  /** Channels written to the AudioContext: the stream's, or 2 when mixed down. */
  private readonly out: number;
  played = 0;
  /** Why nothing plays, for the stats overlay. */
  problem = "";
  constructor(
    private readonly ctx: AudioContext,
    sampleRate: number,
    private readonly channels: number,
    layout: P.OpusLayout | undefined,
  ) {
    const dest = ctx.destination;
    this.out = channels > 2 && dest.maxChannelCount < channels ? 2 : channels;
    if (this.out > dest.channelCount) {
      dest.channelCount = this.out;
      dest.channelInterpretation = "speakers";
    }
    if (typeof AudioDecoder === "undefined") {
      this.problem = "no WebCodecs audio here";
      return;
    }
    let description: Uint8Array | undefined;
    try {
      if (channels > 2) description = P.opusHead(channels, sampleRate, layout);
    } catch {
      this.problem = "the gateway sent no surround layout";
      return;
    }
    this.decoder = new AudioDecoder({
      output: (d) => this.play(d),
      error: (e) => {
        this.problem = `decoder error: ${e.message}`;
        this.decoder = null;
      },
    });
    try {
      this.decoder.configure({ codec: "opus", sampleRate, numberOfChannels: channels, description });
    } catch (e) {
      this.problem = `cannot decode this audio: ${e instanceof Error ? e.message : String(e)}`;
      this.decoder = null;
    }
  }
  push(a: P.AudioFrame): void {
    if (!this.decoder || this.decoder.state !== "configured") return;
    try {
      this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: Number(a.ptsUs), data: a.data }));
    } catch {
      /* one bad packet: skip it */
    }
  }
  private play(d: AudioData): void {
    const planes: Float32Array<ArrayBuffer>[] = [];
    for (let c = 0; c < d.numberOfChannels; c++) {
      const plane = new Float32Array(d.numberOfFrames);
      d.copyTo(plane, { planeIndex: c, format: "f32-planar" });
      planes.push(plane);
    }
    const rate = d.sampleRate;
    d.close();
    const out = planes.length > this.out ? downmixToStereo(planes) : planes;
    const buf = this.ctx.createBuffer(out.length, out[0]?.length || 1, rate);
    out.forEach((p, c) => buf.copyToChannel(p, c));
    const now = this.ctx.currentTime;
    if (this.next < now + 0.01) this.next = now + 0.04;
    if (this.next > now + 0.15) return; // too far behind real time: drop rather than lag
    const src = this.ctx.createBufferSource();
    src.buffer = buf;
    src.connect(this.ctx.destination);
    src.start(this.next);
    this.next += buf.duration;
    this.played++;
  }
  /** For the stats overlay: "6 ch (mixed to stereo), 120 packets". */
  describe(): string {
    if (this.problem) return `${this.channels} ch: ${this.problem}`;
    const mixed = this.out < this.channels ? " (mixed to stereo)" : "";
    return `${this.channels} ch${mixed}, ${this.played} packets`;
  }
  close(): void {
    try {
      if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    } catch {
      /* closed */
    }
    this.decoder = null;
  }
}
