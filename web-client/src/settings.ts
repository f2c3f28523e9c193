/**
 * Stream settings, remembered per browser (localStorage), and the codec probe: only codecs this
 * browser can decode are offered (WebCodecs `isConfigSupported` for WebSocket mode, the RTP
 * receiver's capabilities for WebRTC).
 */
import { CODECS, opusHead } from "./protocol";

export type Mode = "auto" | "websocket" | "webrtc";

export interface Settings {
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  /** "auto" or a codec byte name from CODECS ("H.264", "AV1", …). */
  codec: string;
  /** 0 = no audio streamed (plays on the host), 2 = stereo, 6 = 5.1, 8 = 7.1. */
  audioChannels: number;
  mode: Mode;
  touchMode: "touch" | "trackpad";
  showStats: boolean;
  /** Let the gateway adapt size and bitrate to the connection (WebSocket mode). */
  adaptive: boolean;
}

export const DEFAULTS: Settings = {
  width: 1280,
  height: 720,
  fps: 60,
  bitrateKbps: 10000,
  codec: "auto",
  audioChannels: 2,
  mode: "auto",
  touchMode: "trackpad",
  showStats: false,
  adaptive: true,
};

export const RESOLUTIONS: [number, number][] = [
  [640, 360],
  [1280, 720],
  [1920, 1080],
  [2560, 1440],
  [3840, 2160],
];
export const FPS = [30, 60, 90, 120];
export const BITRATES_MBPS = [2, 5, 10, 20, 40, 80];

const KEY = "moongate.settings";

export function loadSettings(): Settings {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return { ...DEFAULTS };
    const s = { ...DEFAULTS, ...(JSON.parse(raw) as Partial<Settings>) };
    if (!["auto", "websocket", "webrtc"].includes(s.mode)) s.mode = "auto";
    if (![0, 2, 6, 8].includes(s.audioChannels)) s.audioChannels = 2;
    return s;
  } catch {
    return { ...DEFAULTS };
  }
}

export function saveSettings(s: Settings): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    /* storage unavailable: settings last for this page */
  }
}

/** The browser's identity toward the host (`client_unique_id`): one per browser, kept. */
export function clientId(): string {
  const k = "moongate.client_id";
  try {
    let id = localStorage.getItem(k);
    if (!id) {
      id = "moongate-web-" + crypto.randomUUID();
      localStorage.setItem(k, id);
    }
    return id;
  } catch {
    return "moongate-web-" + crypto.randomUUID();
  }
}

export interface CodecSupport {
  name: string;
  bit: number;
  byte: number;
  webcodecs: boolean;
}

let probed: Promise<CodecSupport[]> | null = null;

/** Which codecs WebCodecs can decode here (cached for the page). */
export function probeCodecs(): Promise<CodecSupport[]> {
  probed ??= Promise.all(
    CODECS.map(async (c) => {
      let ok = false;
      try {
        ok = typeof VideoDecoder !== "undefined" && !!(await VideoDecoder.isConfigSupported({ codec: c.webcodecs, optimizeForLatency: true })).supported;
      } catch {
        ok = false;
      }
      return { name: c.name, bit: c.bit, byte: c.byte, webcodecs: ok };
    }),
  );
  return probed;
}

/** Surround channel counts (6, 8) that WebCodecs decodes here as multistream Opus. */
export async function probeSurround(): Promise<number[]> {
  if (typeof AudioDecoder === "undefined") return [];
  const ok: number[] = [];
  for (const channels of [6, 8]) {
    const layout = { streams: channels - 2, coupledStreams: 2, mapping: Array.from({ length: channels }, (_, i) => i) };
    try {
      const r = await AudioDecoder.isConfigSupported({ codec: "opus", sampleRate: 48000, numberOfChannels: channels, description: opusHead(channels, 48000, layout) });
      if (r.supported) ok.push(channels);
    } catch {
      /* not supported */
    }
  }
  return ok;
}

/** Output channels of this device's speakers, as the browser reports them (null if unknown). */
export function speakerChannels(): number | null {
  try {
    const ctx = new AudioContext();
    const n = ctx.destination.maxChannelCount;
    void ctx.close();
    return n || null;
  } catch {
    return null;
  }
}

/**
 * The `video_supported_formats` bitmask for the chosen codec. "auto" asks for H.264 where this
 * browser decodes it, and for every decodable codec otherwise: a Moonlight host picks the newest
 * codec both sides list (AV1 over HEVC over H.264), and H.264 is the one every browser decodes in
 * hardware with the least delay; a user who wants HEVC or AV1 picks it by name.
 */
export function formatsFor(support: CodecSupport[], codec: string): number {
  const decodable = support.filter((c) => c.webcodecs);
  const h264 = decodable.filter((c) => c.name === "H.264");
  const usable = codec === "auto" ? (h264.length ? h264 : decodable) : decodable.filter((c) => c.name === codec);
  return usable.reduce((m, c) => m | c.bit, 0);
}

/** WebRTC payload MIME types (`RTCRtpReceiver.getCapabilities`) to format bits. */
const RTC_FORMATS: [RegExp, number][] = [
  [/h264/i, 0x0001],
  [/h265|hevc/i, 0x0100],
  [/av1/i, 0x1000],
];
const NAMED_BITS: Record<string, number> = { "H.264": 0x0001, HEVC: 0x0100, AV1: 0x1000 };

/**
 * The same choice as [`formatsFor`] for WebRTC mode, from the MIME types this browser's WebRTC
 * stack receives: "auto" asks for H.264 where it can (else every receivable codec), a named
 * codec for that codec only.
 */
export function rtcFormatsFor(mimeTypes: string[], codec: string): number {
  let formats = 0;
  for (const [re, bit] of RTC_FORMATS) if (mimeTypes.some((m) => re.test(m))) formats |= bit;
  if (codec === "auto") return formats & 0x0001 ? 0x0001 : formats;
  return formats & (NAMED_BITS[codec] ?? 0);
}

/** Whether this browser can use WebRTC mode at all. */
export function webrtcAvailable(): boolean {
  return typeof RTCPeerConnection !== "undefined";
}

/** Whether WebSocket mode can decode video here (WebCodecs needs a secure context). */
export function webcodecsAvailable(): boolean {
  return typeof VideoDecoder !== "undefined";
}
