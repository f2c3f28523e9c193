/**
 * WebRTC mode (contract §1.5, §3): JSON signaling on `/api/host/stream`, the browser offers, video
 * and audio arrive as RTP tracks into a <video>, input goes over the data channels of §3.4, and the
 * microphone goes up as an Opus track on a send-only audio m-line offered from the start, so that
 * switching it on and off is a `replaceTrack`, never a renegotiation.
 * ICE that does not connect is reported as `iceFailed`, so "auto" mode falls back to WebSocket.
 */
import type { InputEvent } from "../input";
import { decodeChannelRumble, type Bytes } from "../protocol";
import { CHANNELS, rtcMessages } from "./encode";
import { Rate, wsUrl, type StreamRequest, type StreamStats, type Transport, type TransportEvents } from "./transport";
import { serverError, type ServerError } from "../reconnect";
import { parseQuality } from "./quality";

/** ICE must connect within this time after the offer, or the attempt counts as an ICE failure. */
const ICE_TIMEOUT_MS = 10000;
const BACKED_UP_BYTES = 16 * 1024;
/**
 * Input sent on a data channel that is still opening is held (up to this many messages per
 * channel) and sent in order once it opens. The stream view says "streaming" when the signaling
 * socket's ConnectionComplete arrives, which can come before the peer's SCTP association is up;
 * a gamepad's channel is only created at its first event. Dropping meanwhile lost a pad's
 * arrival and first state for good (seen on a loaded CI machine).
 */
const MAX_HELD_PER_CHANNEL = 256;

type Json = Record<string, unknown>;

export class RtcTransport implements Transport {
  readonly mode = "webrtc" as const;
  readonly media: HTMLVideoElement;
  private readonly ws: WebSocket;
  private pc: RTCPeerConnection | null = null;
  private readonly channels = new Map<string, RTCDataChannel>();
  /** Input waiting for its channel to open (see MAX_HELD_PER_CHANNEL). */
  private readonly held = new Map<string, Bytes[]>();
  private remoteSet = false;
  private readonly pendingIce: RTCIceCandidateInit[] = [];
  private closedOnce = false;
  /** The last error: the server's (text and typed code) or the client's own words (no code). */
  private lastError: ServerError | undefined;
  private iceFailed = false;
  private opened = false;
  private iceTimer: ReturnType<typeof setTimeout> | undefined;
  private termTimer: ReturnType<typeof setTimeout> | undefined;
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private connectedAt = 0;
  private byUser = false;
  private size = { w: 0, h: 0 };
  private last: StreamStats;
  private readonly rates = { rx: new Rate(), dec: new Rate(), bytes: new Rate() };
  private readonly createdAt = performance.now();
  private firstFrameMs: number | null = null;
  /** The microphone's sender (its send-only m-line), and the track it should send. */
  private micSender: RTCRtpSender | null = null;
  private micTrack: MediaStreamTrack | null = null;
  /** The microphone sender's packetsSent at the last stats poll. */
  private micPackets = 0;

  constructor(
    private readonly req: StreamRequest,
    private readonly ev: TransportEvents,
  ) {
    this.media = document.createElement("video");
    this.media.autoplay = true;
    this.media.playsInline = true;
    this.media.muted = req.audioChannels === 0;
    this.last = this.emptyStats();
    this.watchFirstFrame();
    ev.status("Connecting to the gateway…");
    this.ws = new WebSocket(wsUrl(req.base, `/api/host/stream?session_id=${encodeURIComponent(req.sessionId)}`));
    this.ws.onopen = () => this.onOpen();
    this.ws.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      try {
        this.onSignal(JSON.parse(m.data));
      } catch (e) {
        console.warn("bad signaling message", e);
      }
    };
    this.ws.onclose = (c) => this.finish(c.code, c.reason);
  }

  private onOpen(): void {
    this.opened = true;
    this.ev.status("Starting the stream on the host…");
    this.sendJson({
      AuthenticateAndInit: {
        credentials: this.req.credential,
        session_id: this.req.sessionId,
        mode: "create",
        client_unique_id: this.req.clientUniqueId,
        host_id: this.req.hostIndex,
        app_id: this.req.appId,
        bitrate: this.req.bitrateKbps,
        packet_size: 1024,
        fps: this.req.fps,
        width: this.req.width,
        height: this.req.height,
        video_sample_queue_size: 50,
        play_audio_local: this.req.audioChannels === 0,
        audio_sample_queue_size: 20,
        video_supported_formats: this.req.formats,
        video_colorspace: "Rec709",
        video_color_range_full: false,
        // moongate extra: the quality follows the link (a Helix gateway ignores it).
        ...(this.req.adaptive ? { adaptive: true } : {}),
      },
    });
  }

  private sendJson(v: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(v));
  }

  private async onSignal(msg: unknown): Promise<void> {
    if (typeof msg === "string") {
      // Bare-string errors (§3.3) are their own code: "HostNotPaired", "AlreadyStreaming", …
      const error = { text: msg, code: msg };
      if (msg === "PeerDisconnect" && this.connectedAt) this.lastError ??= error;
      else this.lastError = error;
      return;
    }
    const o = msg as Json;
    const quality = parseQuality(o);
    if (quality) return this.ev.quality?.(quality);
    if (o.WebRtcConfig) return this.onConfig(o.WebRtcConfig as { ice_servers?: { urls: string[] | string; username?: string; credential?: string }[] });
    if (o.Signaling) return this.onRemoteSignaling(o.Signaling as Json);
    if (o.StageStarting) this.ev.status(`${(o.StageStarting as Json).stage}…`);
    if (o.StageFailed) {
      const f = o.StageFailed as { stage: string; error_code: number };
      this.lastError = { text: `The step "${f.stage}" failed on the gateway (code ${f.error_code}).` };
    }
    if (o.ConnectionComplete) {
      const cc = o.ConnectionComplete as { width: number; height: number; capabilities?: { touch?: boolean } };
      this.size = { w: cc.width, h: cc.height };
      this.connectedAt = performance.now();
      this.ev.connected({ width: cc.width, height: cc.height, touch: !!cc.capabilities?.touch });
    }
    if (o.ConnectionTerminated) {
      this.lastError = { text: `The host ended the stream (code ${(o.ConnectionTerminated as Json).error_code}).` };
    }
    this.lastError = serverError(o) ?? this.lastError;
  }

  private async onConfig(cfg: { ice_servers?: { urls: string[] | string; username?: string; credential?: string }[] }): Promise<void> {
    const iceServers = (cfg.ice_servers ?? []).map((s) => ({
      urls: s.urls,
      ...(s.username ? { username: s.username, credential: s.credential } : {}),
    }));
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    this.micSender = pc.addTransceiver("audio", { direction: "sendonly" }).sender;
    if (this.micTrack) this.setMicTrack(this.micTrack);
    for (const c of CHANNELS) this.openChannel(c.label, c.init);
    pc.ondatachannel = (e) => this.onServerChannel(e.channel);
    pc.ontrack = (e) => {
      const r = e.receiver as RTCRtpReceiver & { jitterBufferTarget?: number; playoutDelayHint?: number };
      try {
        r.jitterBufferTarget = 0;
        r.playoutDelayHint = 0;
      } catch {
        /* not supported */
      }
      const stream = (this.media.srcObject as MediaStream | null) ?? new MediaStream();
      stream.addTrack(e.track);
      this.media.srcObject = stream;
      this.media.play().catch(() => {
        /* autoplay with sound may need a gesture; muted video plays */
        this.media.muted = true;
        this.media.play().catch(() => {});
      });
    };
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      this.sendJson({
        Signaling: {
          AddIceCandidate: {
            candidate: e.candidate.candidate,
            sdp_mid: e.candidate.sdpMid,
            sdp_mline_index: e.candidate.sdpMLineIndex,
            username_fragment: e.candidate.usernameFragment,
          },
        },
      });
    };
    pc.oniceconnectionstatechange = () => {
      const s = pc.iceConnectionState;
      if (s === "connected" || s === "completed") clearTimeout(this.iceTimer);
      if (s === "failed") this.failIce();
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") this.failIce();
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.sendJson({ Signaling: { Description: { ty: "offer", sdp: offer.sdp } } });
    this.iceTimer = setTimeout(() => this.failIce(), ICE_TIMEOUT_MS);
    this.statsTimer = setInterval(() => void this.pollStats(), 1000);
  }

  private failIce(): void {
    if (this.closedOnce) return;
    this.iceFailed = true;
    this.lastError ??= { text: "The WebRTC connection could not be established (ICE failed; a firewall or NAT may block UDP)." };
    this.ws.close(1000);
    this.finish(1006);
  }

  private async onRemoteSignaling(s: Json): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    if (s.Description) {
      const d = s.Description as { ty: RTCSdpType; sdp: string };
      await pc.setRemoteDescription({ type: d.ty, sdp: d.sdp });
      this.remoteSet = true;
      if (d.ty === "offer") {
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.sendJson({ Signaling: { Description: { ty: "answer", sdp: answer.sdp } } });
      }
      for (const c of this.pendingIce.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    } else if (s.AddIceCandidate) {
      const c = s.AddIceCandidate as { candidate: string; sdp_mid: string | null; sdp_mline_index: number | null; username_fragment: string | null };
      const init: RTCIceCandidateInit = {
        candidate: c.candidate,
        sdpMid: c.sdp_mid,
        sdpMLineIndex: c.sdp_mline_index,
        usernameFragment: c.username_fragment,
      };
      if (this.remoteSet) await pc.addIceCandidate(init).catch(() => {});
      else this.pendingIce.push(init);
    }
  }

  private openChannel(label: string, init: RTCDataChannelInit): RTCDataChannel | undefined {
    if (!this.pc) return undefined;
    let ch = this.channels.get(label);
    if (ch) return ch;
    ch = this.pc.createDataChannel(label, init);
    ch.binaryType = "arraybuffer";
    if (label === "controllers") {
      ch.onmessage = (m) => {
        if (typeof m.data === "string") return;
        const r = decodeChannelRumble(m.data as ArrayBuffer);
        if (r) this.ev.rumble(r.id, r.a, r.b, r.trigger);
      };
    }
    this.channels.set(label, ch);
    return ch;
  }

  private onServerChannel(ch: RTCDataChannel): void {
    if (ch.label !== "general") return;
    ch.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      try {
        const v = JSON.parse(m.data);
        if (v === "ConnectionTerminated") {
          // The signaling socket says why (ClientKicked + 4000, an error, …) and closes right
          // after; only if it does not, end here.
          this.termTimer ??= setTimeout(() => {
            this.lastError ??= { text: "The host ended the stream." };
            this.close(false);
          }, 2000);
        }
      } catch {
        /* not JSON */
      }
    };
  }

  send(e: InputEvent): void {
    for (const m of rtcMessages(e)) {
      const ch = this.channels.get(m.label) ?? (m.label.startsWith("controller") ? this.openChannel(m.label, { ordered: true, maxRetransmits: 0 }) : undefined);
      if (ch?.readyState === "open") ch.send(m.data);
      else if (ch?.readyState === "connecting") this.holdUntilOpen(ch, m.data);
    }
  }

  /** Keeps `data` for `ch` until it opens, then sends everything held in order. */
  private holdUntilOpen(ch: RTCDataChannel, data: Bytes): void {
    let held = this.held.get(ch.label);
    if (!held) {
      const queue: Bytes[] = [];
      held = queue;
      this.held.set(ch.label, queue);
      ch.addEventListener(
        "open",
        () => {
          this.held.delete(ch.label);
          for (const d of queue) ch.send(d);
        },
        { once: true },
      );
    }
    if (held.length < MAX_HELD_PER_CHANNEL) held.push(data);
  }

  setMicTrack(track: MediaStreamTrack | null): void {
    this.micTrack = track;
    this.micSender?.replaceTrack(track).catch((e) => console.warn("microphone track not set", e));
  }

  backedUp(): boolean {
    const ch = this.channels.get("mouseRelative");
    const abs = this.channels.get("mouseAbsolute");
    return (ch?.bufferedAmount ?? 0) > BACKED_UP_BYTES || (abs?.bufferedAmount ?? 0) > BACKED_UP_BYTES;
  }

  /** The first frame the <video> presents (getStats, polled each second, would round it up). */
  private watchFirstFrame(): void {
    const mark = () => {
      this.firstFrameMs ??= performance.now() - this.createdAt;
      this.last.firstFrameMs = this.firstFrameMs;
    };
    const v = this.media as HTMLVideoElement & { requestVideoFrameCallback?: (cb: () => void) => number };
    if (typeof v.requestVideoFrameCallback === "function") v.requestVideoFrameCallback(mark);
    else v.addEventListener("loadeddata", mark, { once: true });
  }

  private emptyStats(): StreamStats {
    return {
      mode: "webrtc", codec: "–", width: 0, height: 0, framesReceived: 0, framesDecoded: 0, framesDropped: 0,
      keyframeRequests: 0, fpsReceived: 0, fpsDecoded: 0, bitrateKbps: 0, rttMs: null, decodeQueue: 0, audio: this.req.audioChannels ? "waiting" : "off",
      firstFrameMs: this.firstFrameMs,
    };
  }

  private async pollStats(): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    const report = await pc.getStats();
    const s = this.emptyStats();
    const codecs = new Map<string, string>();
    let codecId = "";
    let jitterDelay = 0;
    let jitterCount = 0;
    let micPackets = this.micPackets;
    report.forEach((r: Record<string, any>) => {
      if (r.type === "codec") codecs.set(r.id, String(r.mimeType ?? "").replace(/^video\//, ""));
      if (r.type === "inbound-rtp" && r.kind === "video") {
        s.framesReceived = r.framesReceived ?? 0;
        s.framesDecoded = r.framesDecoded ?? 0;
        s.framesDropped = r.framesDropped ?? 0;
        s.keyframeRequests = (r.pliCount ?? 0) + (r.firCount ?? 0);
        s.width = r.frameWidth ?? this.size.w;
        s.height = r.frameHeight ?? this.size.h;
        s.bitrateKbps = (this.rates.bytes.update(r.bytesReceived ?? 0, performance.now()) * 8) / 1000;
        codecId = r.codecId ?? "";
        jitterDelay = r.jitterBufferDelay ?? 0;
        jitterCount = r.jitterBufferEmittedCount ?? 0;
      }
      if (r.type === "inbound-rtp" && r.kind === "audio") s.audio = `${r.packetsReceived ?? 0} packets`;
      // The only audio this side sends is the microphone.
      if (r.type === "outbound-rtp" && r.kind === "audio") micPackets = r.packetsSent ?? micPackets;
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && typeof r.currentRoundTripTime === "number") {
        s.rttMs = r.currentRoundTripTime * 1000;
      }
    });
    if (micPackets > this.micPackets) this.ev.micSent?.(micPackets - this.micPackets);
    this.micPackets = micPackets;
    const now = performance.now();
    s.fpsReceived = this.rates.rx.update(s.framesReceived, now);
    s.fpsDecoded = this.rates.dec.update(s.framesDecoded, now);
    s.codec = codecs.get(codecId) ?? "–";
    // Frames waiting in the jitter buffer (average delay × frame rate).
    s.decodeQueue = jitterCount ? Math.round((jitterDelay / jitterCount) * Math.max(1, s.fpsDecoded)) : 0;
    this.last = s;
  }

  stats(): StreamStats {
    return this.last;
  }

  /** Several viewers are a WebSocket-mode feature (browser-protocol §8): nothing to hand over. */
  requestControl(): void {}
  grantControl(): void {}
  releaseControl(): void {}

  close(byUser: boolean): void {
    this.byUser = byUser;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    this.finish(1000);
  }

  private finish(code: number, reason = ""): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    clearTimeout(this.iceTimer);
    clearTimeout(this.termTimer);
    clearInterval(this.statsTimer);
    for (const ch of this.channels.values()) ch.close();
    this.pc?.close();
    this.pc = null;
    // The contract's bare strings name a few codes only; anything else arrives as
    // "InternalServerError" after a failed step, and the close frame's reason says what it was.
    const vague = !this.lastError || this.lastError.code === "InternalServerError" || this.lastError.text.startsWith("The step");
    const error = reason && vague && code !== 1000 ? { text: reason } : this.lastError;
    // A signaling socket that never opened (no WebRTC endpoint on this gateway) counts like ICE
    // failing: "auto" falls back to WebSocket.
    if (!this.opened) this.iceFailed = true;
    this.ev.closed({
      code,
      error: error?.text,
      errorCode: error?.code,
      byUser: this.byUser,
      streamedMs: this.connectedAt ? performance.now() - this.connectedAt : 0,
      iceFailed: this.iceFailed,
    });
  }
}
