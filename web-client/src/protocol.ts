/**
 * The browser wire protocol (docs/browser-protocol.md; Rust: `wire::browser`): encoders for what
 * the client sends, decoders for what the server sends. Pure functions over bytes, so the unit
 * tests check them against the hex examples of the contract. Big-endian, no length fields.
 *
 * WebRTC data channels carry the same input payloads without the leading type byte (contract §3.4):
 * `withoutType()` gives that form.
 */

/** Bytes on a plain ArrayBuffer (what WebSocket.send and WebCodecs accept). */
export type Bytes = Uint8Array<ArrayBuffer>;

export const MsgType = {
  VideoFrame: 0x01,
  AudioFrame: 0x02,
  VideoBatch: 0x03,
  Keyboard: 0x10,
  MouseClick: 0x11,
  MouseAbsolute: 0x12,
  MouseRelative: 0x13,
  Touch: 0x14,
  ControllerEvent: 0x15,
  ControllerState: 0x16,
  MicOpus: 0x18,
  Control: 0x20,
  StreamInit: 0x30,
  StreamError: 0x31,
  Ping: 0x40,
  Pong: 0x41,
} as const;

/** Modifier bits of KeyboardInput. */
export const Mod = { Shift: 0x01, Ctrl: 0x02, Alt: 0x04, Meta: 0x08 } as const;

/** Codec byte → WebCodecs codec string and `video_supported_formats` bit (§4.1, §4.2). */
export const CODECS: ReadonlyArray<{ byte: number; bit: number; name: string; webcodecs: string }> = [
  { byte: 0x01, bit: 0x0001, name: "H.264", webcodecs: "avc1.4d0033" },
  { byte: 0x02, bit: 0x0004, name: "H.264 4:4:4", webcodecs: "avc1.640032" },
  { byte: 0x10, bit: 0x0100, name: "HEVC", webcodecs: "hvc1.1.6.L120.90" },
  { byte: 0x11, bit: 0x0200, name: "HEVC Main10", webcodecs: "hvc1.2.4.L120.90" },
  { byte: 0x12, bit: 0x0400, name: "HEVC 4:4:4", webcodecs: "hvc1.4.10.L120.90" },
  { byte: 0x13, bit: 0x0800, name: "HEVC 4:4:4 10-bit", webcodecs: "hvc1.4.10.L120.90" },
  { byte: 0x20, bit: 0x1000, name: "AV1", webcodecs: "av01.0.08M.08" },
  { byte: 0x21, bit: 0x2000, name: "AV1 10-bit", webcodecs: "av01.0.08M.10" },
  { byte: 0x22, bit: 0x4000, name: "AV1 4:4:4", webcodecs: "av01.1.08H.08" },
  { byte: 0x23, bit: 0x8000, name: "AV1 4:4:4 10-bit", webcodecs: "av01.1.08H.10" },
];

export function codecByByte(byte: number) {
  return CODECS.find((c) => c.byte === byte);
}

// ---------------------------------------------------------------- client → server

function msg(len: number, fill: (v: DataView) => void): Bytes {
  const b = new Uint8Array(len);
  fill(new DataView(b.buffer));
  return b;
}

const clampI16 = (n: number) => Math.max(-32768, Math.min(32767, Math.round(n)));
const clampI8 = (n: number) => Math.max(-128, Math.min(127, Math.round(n)));

/** KeyboardInput subtype 0: `vk` is a Windows virtual-key code. */
export function keyboardKey(down: boolean, modifiers: number, vk: number): Bytes {
  return msg(6, (v) => {
    v.setUint8(0, MsgType.Keyboard);
    v.setUint8(1, 0);
    v.setUint8(2, down ? 1 : 0);
    v.setUint8(3, modifiers & 0x0f);
    v.setUint16(4, vk & 0xffff);
  });
}

/**
 * KeyboardInput subtype 1 (text). The length is one byte, so long text is split into several
 * messages at character boundaries (never inside a UTF-8 sequence).
 */
export function keyboardText(text: string): Bytes[] {
  const enc = new TextEncoder();
  const out: Bytes[] = [];
  let chunk: number[] = [];
  const flush = () => {
    if (!chunk.length) return;
    const b = new Uint8Array(3 + chunk.length);
    b[0] = MsgType.Keyboard;
    b[1] = 1;
    b[2] = chunk.length;
    b.set(chunk, 3);
    out.push(b);
    chunk = [];
  };
  for (const ch of text) {
    const bytes = enc.encode(ch);
    if (chunk.length + bytes.length > 255) flush();
    chunk.push(...bytes);
  }
  flush();
  return out;
}

/** Mouse buttons: 1 left, 2 middle, 3 right, 4 X1, 5 X2. */
export function mouseButton(down: boolean, button: number): Bytes {
  return Uint8Array.of(MsgType.MouseClick, 2, down ? 1 : 0, button);
}

/** High-resolution wheel in pixels; `dy` is the browser's (down = +), negated on the wire. */
export function mouseWheelHighRes(dx: number, dy: number): Bytes {
  return msg(6, (v) => {
    v.setUint8(0, MsgType.MouseClick);
    v.setUint8(1, 3);
    v.setInt16(2, clampI16(dx));
    v.setInt16(4, clampI16(-dy));
  });
}

/** Coarse wheel: pixel deltas ÷ 10, rounded, clamped, Y negated. */
export function mouseWheel(dx: number, dy: number): Bytes {
  return msg(4, (v) => {
    v.setUint8(0, MsgType.MouseClick);
    v.setUint8(1, 4);
    v.setInt8(2, clampI8(dx / 10));
    v.setInt8(3, clampI8(-dy / 10));
  });
}

/** Absolute position `x`,`y` within a `refW`×`refH` reference (the client uses 4096×4096). */
export function mouseAbsolute(x: number, y: number, refW = 4096, refH = 4096): Bytes {
  return msg(10, (v) => {
    v.setUint8(0, MsgType.MouseAbsolute);
    v.setUint8(1, 1);
    v.setInt16(2, clampI16(x));
    v.setInt16(4, clampI16(y));
    v.setInt16(6, clampI16(refW));
    v.setInt16(8, clampI16(refH));
  });
}

export function mouseRelative(dx: number, dy: number): Bytes {
  return msg(6, (v) => {
    v.setUint8(0, MsgType.MouseRelative);
    v.setUint8(1, 0);
    v.setInt16(2, clampI16(dx));
    v.setInt16(4, clampI16(dy));
  });
}

export const TouchEvent = { Hover: 0, Down: 1, Up: 2, Move: 3, Cancel: 4, ButtonOnly: 5, HoverLeave: 6, CancelAll: 7 } as const;

export interface TouchPoint {
  event: number;
  pointerId: number;
  /** 0…1 across the video. */
  x: number;
  y: number;
  pressure: number;
  contactMajor?: number;
  contactMinor?: number;
  /** Degrees 0…359, undefined = unknown. */
  rotation?: number;
}

const finite = (n: number) => (Number.isFinite(n) ? n : 0);

export function touch(t: TouchPoint): Bytes {
  return msg(28, (v) => {
    v.setUint8(0, MsgType.Touch);
    v.setUint8(1, t.event);
    v.setUint32(2, t.pointerId >>> 0);
    v.setFloat32(6, finite(t.x));
    v.setFloat32(10, finite(t.y));
    v.setFloat32(14, finite(t.pressure));
    v.setFloat32(18, finite(t.contactMajor ?? 0));
    v.setFloat32(22, finite(t.contactMinor ?? 0));
    v.setUint16(26, t.rotation === undefined ? 0xffff : Math.round(t.rotation) % 360);
  });
}

/** Controller kinds of the arrival message. */
export const PadType = { Unknown: 0, Xbox: 1, PlayStation: 2, Nintendo: 3 } as const;

export function controllerArrival(id: number, type: number, capabilities: number, supportedButtons: number): Bytes {
  return msg(10, (v) => {
    v.setUint8(0, MsgType.ControllerEvent);
    v.setUint8(1, 0);
    v.setUint8(2, id);
    v.setUint8(3, type);
    v.setUint16(4, capabilities);
    v.setUint32(6, supportedButtons >>> 0);
  });
}

export function controllerRemoval(id: number): Bytes {
  return Uint8Array.of(MsgType.ControllerEvent, 1, id);
}

export interface PadState {
  id: number;
  activeMask: number;
  buttons: number;
  lt: number;
  rt: number;
  lsx: number;
  /** Positive = up (already inverted from the Gamepad API's axis). */
  lsy: number;
  rsx: number;
  rsy: number;
}

export function controllerState(s: PadState): Bytes {
  return msg(18, (v) => {
    v.setUint8(0, MsgType.ControllerState);
    v.setUint8(1, s.id);
    v.setUint16(2, s.activeMask);
    v.setUint32(4, s.buttons >>> 0);
    v.setUint8(8, Math.max(0, Math.min(255, Math.round(s.lt))));
    v.setUint8(9, Math.max(0, Math.min(255, Math.round(s.rt))));
    v.setInt16(10, clampI16(s.lsx));
    v.setInt16(12, clampI16(s.lsy));
    v.setInt16(14, clampI16(s.rsx));
    v.setInt16(16, clampI16(s.rsy));
  });
}

export function control(json: object): Bytes {
  const body = new TextEncoder().encode(JSON.stringify(json));
  const b = new Uint8Array(1 + body.length);
  b[0] = MsgType.Control;
  b.set(body, 1);
  return b;
}

/** The largest Opus packet (RFC 6716 §3.4): a MicOpus carries 1 to this many bytes. */
export const MAX_OPUS_PACKET = 1275;

/**
 * MicOpus 0x18: `timestamp` (the packet's first sample on the 48 kHz clock, wraps at 2^32) and
 * one mono 48 kHz Opus packet of the browser's microphone. Throws on an empty or oversized packet.
 */
export function micOpus(timestamp: number, packet: Uint8Array): Bytes {
  if (packet.length < 1 || packet.length > MAX_OPUS_PACKET) throw new RangeError(`an Opus packet has 1 to ${MAX_OPUS_PACKET} bytes, not ${packet.length}`);
  const b = new Uint8Array(5 + packet.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, MsgType.MicOpus);
  v.setUint32(1, timestamp >>> 0);
  b.set(packet, 5);
  return b;
}

/** Ping: `clientTimeUs` is opaque to the server and echoed in the Pong. */
export function ping(seq: number, clientTimeUs: bigint): Bytes {
  return msg(13, (v) => {
    v.setUint8(0, MsgType.Ping);
    v.setUint32(1, seq >>> 0);
    v.setBigUint64(5, clientTimeUs);
  });
}

/** The WebRTC data-channel form of an input message: the same bytes without the type byte. */
export function withoutType(m: Bytes): Bytes {
  return m.subarray(1);
}

// ---------------------------------------------------------------- server → client

export interface StreamInit {
  type: "stream_init";
  codec: number;
  width: number;
  height: number;
  fps: number;
  audioChannels: number;
  sampleRate: number;
  touch: boolean;
  /** moongate extension after the 13 core bytes; absent from a Helix-era gateway. */
  opus?: OpusLayout;
}
/**
 * How the Opus packets split into elementary streams (what `opus_multistream_decoder_create`
 * takes). `mapping[i]` is the decoded channel for speaker `i`, speakers in GameStream order
 * FL FR FC LFE BL BR SL SR (Web Audio's order for 5.1 and 7.1); 255 = silent.
 */
export interface OpusLayout {
  streams: number;
  coupledStreams: number;
  mapping: number[];
}
export interface VideoFrame {
  type: "video";
  codec: number;
  keyframe: boolean;
  ptsUs: bigint;
  width: number;
  height: number;
  data: Bytes;
}
export interface AudioFrame {
  type: "audio";
  channels: number;
  ptsUs: bigint;
  data: Bytes;
}
export interface Pong {
  type: "pong";
  seq: number;
  clientTimeUs: bigint;
  serverTimeUs: bigint;
}
export interface Rumble {
  type: "rumble";
  trigger: boolean;
  id: number;
  /** low/high motor, or left/right trigger, 0…65535. */
  a: number;
  b: number;
}
export interface ControlJson {
  type: "control";
  json: unknown;
}
export interface StreamErrorMsg {
  type: "stream_error";
  text: string;
}
export type ServerMessage = StreamInit | VideoFrame | AudioFrame | Pong | Rumble | ControlJson | StreamErrorMsg;

/**
 * Decodes one binary message from the server. Returns an array (a VideoBatch holds several
 * frames); an empty array for messages a reader must drop (too short, unknown type or subtype).
 */
export function decodeServer(buf: ArrayBuffer | Bytes): ServerMessage[] {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (b.length === 0) return [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (b[0]) {
    case MsgType.VideoFrame: {
      const f = decodeVideo(b, v);
      return f ? [f] : [];
    }
    case MsgType.VideoBatch: {
      if (b.length < 3) return [];
      const n = v.getUint16(1);
      const out: ServerMessage[] = [];
      let off = 3;
      for (let i = 0; i < n; i++) {
        if (off + 4 > b.length) return [];
        const len = v.getUint32(off);
        off += 4;
        if (off + len > b.length) return [];
        const sub = b.subarray(off, off + len);
        if (sub[0] !== MsgType.VideoFrame) return [];
        const f = decodeVideo(sub, new DataView(sub.buffer, sub.byteOffset, sub.byteLength));
        if (!f) return [];
        out.push(f);
        off += len;
      }
      return out;
    }
    case MsgType.AudioFrame:
      if (b.length < 10) return [];
      return [{ type: "audio", channels: b[1], ptsUs: v.getBigUint64(2), data: b.subarray(10) }];
    case MsgType.StreamInit: {
      if (b.length < 13) return [];
      const init: StreamInit = {
        type: "stream_init",
        codec: b[1],
        width: v.getUint16(2),
        height: v.getUint16(4),
        fps: b[6],
        audioChannels: b[7],
        sampleRate: v.getUint32(8),
        touch: b[12] !== 0,
      };
      const opus = decodeOpusLayout(init.audioChannels, b.subarray(13));
      if (opus) init.opus = opus;
      return [init];
    }
    case MsgType.Pong:
      if (b.length < 21) return [];
      return [{ type: "pong", seq: v.getUint32(1), clientTimeUs: v.getBigUint64(5), serverTimeUs: v.getBigUint64(13) }];
    case MsgType.ControllerEvent:
      if ((b[1] === 2 || b[1] === 3) && b.length >= 7) {
        return [{ type: "rumble", trigger: b[1] === 3, id: b[2], a: v.getUint16(3), b: v.getUint16(5) }];
      }
      return [];
    case MsgType.Control: {
      try {
        return [{ type: "control", json: JSON.parse(new TextDecoder().decode(b.subarray(1))) }];
      } catch {
        return [];
      }
    }
    case MsgType.StreamError: {
      if (b.length < 3) return [];
      const len = v.getUint16(1);
      if (3 + len > b.length) return [];
      return [{ type: "stream_error", text: new TextDecoder().decode(b.subarray(3, 3 + len)) }];
    }
    default:
      return [];
  }
}

/** StreamInit's Opus layout: streams, coupled streams, one mapping byte per channel; null if absent or inconsistent. */
export function decodeOpusLayout(channels: number, b: Bytes): OpusLayout | null {
  if (channels < 1 || channels > 8 || b.length < 2 + channels) return null;
  const [streams, coupledStreams] = [b[0], b[1]];
  if (streams < 1 || coupledStreams > streams) return null;
  const mapping = Array.from(b.subarray(2, 2 + channels));
  if (mapping.some((m) => m !== 255 && m >= streams + coupledStreams)) return null;
  return { streams, coupledStreams, mapping };
}

/**
 * Speaker order of an Opus channel-mapping-family-1 stream (RFC 7845 §5.1.1.2, the Vorbis order)
 * as GameStream speaker indices (FL FR FC LFE BL BR SL SR = 0…7).
 */
const VORBIS_ORDER: Record<number, number[]> = {
  // FL FC FR RL RR LFE
  6: [0, 2, 1, 4, 5, 3],
  // FL FC FR SL SR RL RR LFE
  8: [0, 2, 1, 6, 7, 4, 5, 3],
};

/**
 * The Opus identification header (RFC 7845 §5.1, "OpusHead") that WebCodecs takes as the
 * `description` of a multistream decoder. Mono and stereo use mapping family 0 (no table);
 * surround uses family 1, whose table lists the channels in Vorbis order, so GameStream's
 * speaker-order mapping is reordered into it. Pre-skip is 0: a live stream has no priming
 * samples to hide.
 */
export function opusHead(channels: number, sampleRate: number, layout?: OpusLayout): Uint8Array {
  const family = channels > 2 ? 1 : 0;
  const out = new Uint8Array(19 + (family ? 2 + channels : 0));
  const v = new DataView(out.buffer);
  out.set(new TextEncoder().encode("OpusHead"), 0);
  out[8] = 1; // version
  out[9] = channels;
  v.setUint16(10, 0, true); // pre-skip
  v.setUint32(12, sampleRate, true);
  v.setInt16(16, 0, true); // output gain
  out[18] = family;
  if (family) {
    const order = VORBIS_ORDER[channels];
    if (!layout || !order || layout.mapping.length !== channels) throw new Error(`no Opus layout for ${channels} channels`);
    out[19] = layout.streams;
    out[20] = layout.coupledStreams;
    order.forEach((speaker, i) => (out[21 + i] = layout.mapping[speaker]));
  }
  return out;
}

function decodeVideo(b: Bytes, v: DataView): VideoFrame | null {
  if (b.length < 15) return null;
  return {
    type: "video",
    codec: b[1],
    keyframe: (b[2] & 1) === 1,
    ptsUs: v.getBigUint64(3),
    width: v.getUint16(11),
    height: v.getUint16(13),
    data: b.subarray(15),
  };
}

/** Parses a WebRTC data-channel rumble message (`controllers` channel, §3.4: no type byte). */
export function decodeChannelRumble(buf: ArrayBuffer): Rumble | null {
  const b = new Uint8Array(buf);
  if (b.length < 6 || b[0] > 1) return null;
  const v = new DataView(buf);
  return { type: "rumble", trigger: b[0] === 1, id: b[1], a: v.getUint16(2), b: v.getUint16(4) };
}

/** What a client asks a stream for, whatever carries it (the `init` JSON, a transport). */
export interface StreamSettings {
  hostIndex: number;
  appId: number;
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  /** 0 = play on the host; 2, 6 or 8 channels streamed (WebRTC carries stereo). */
  audioChannels: number;
  formats: number;
  clientUniqueId: string;
  sessionId: string;
  /** Let the gateway lower (and raise again) the quality to what the link carries (both modes). */
  adaptive?: boolean;
}

/** The `init` JSON (§2.1) of a moongate client. */
export interface InitParams extends StreamSettings {
  credentials: string;
}

export function initJson(p: InitParams): string {
  return JSON.stringify({
    type: "init",
    protocol_version: 2,
    host_id: p.hostIndex,
    app_id: p.appId,
    session_id: p.sessionId,
    width: p.width,
    height: p.height,
    fps: p.fps,
    bitrate: p.bitrateKbps,
    packet_size: 1024,
    play_audio_local: p.audioChannels === 0,
    ...(p.audioChannels > 2 ? { audio_channels: p.audioChannels } : {}),
    video_supported_formats: p.formats,
    client_unique_id: p.clientUniqueId,
    credentials: p.credentials,
    ...(p.adaptive ? { adaptive: true } : {}),
  });
}

/** Hex dump helper for tests and logs: "10 00 01". */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}
export function unhex(s: string): Bytes {
  const parts = s.trim().split(/\s+/).filter(Boolean);
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}
