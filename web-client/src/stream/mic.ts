/**
 * The microphone uplink (issue 15; docs/microphone.md): the browser's microphone reaches the host
 * as mono 48 kHz Opus, which the gateway forwards to the host's microphone stream as it is.
 *
 * Why two outputs: the hosts' mic stream takes Opus packets, so the browser encodes them and the
 * gateway never transcodes. In WebSocket mode the page encodes (WebCodecs `AudioEncoder`) and
 * sends MicOpus 0x18 messages; in WebRTC mode the capture track goes to the peer connection,
 * whose own Opus encoder sends it on the upward audio m-line (see rtc.ts), so only getUserMedia is
 * needed there.
 *
 * WebSocket mode: `MediaStreamTrackProcessor` hands the capture over as `AudioData` without an
 * AudioWorklet module to ship or a main-thread ScriptProcessor; it exists in Chromium only, and
 * elsewhere the toggle says so. Every capture chunk is rebuilt as mono f32 at 48 kHz (downmix,
 * and a linear resampler when the device runs at another rate) because the encoder rejects data
 * that differs from its configuration. Packets are dropped, never queued, when the socket is
 * closed or backed up: late speech is worse than a gap.
 */

/** The Opus clock and the only rate the hosts' mic stream takes. */
export const MIC_RATE = 48000;
/** 20 ms Opus frames (the reference clients' size), in µs. */
const FRAME_US = 20000;
const BITRATE = 64000;
/** More capture chunks than this waiting in the encoder → drop input instead of lagging. */
const MAX_ENCODE_QUEUE = 8;

/** What tests and the curious read as `window.moongate.mic`. */
export interface MicDebug {
  on: boolean;
  /**
   * Packets sent since the view opened (all toggles together): MicOpus messages handed to the
   * socket, or in WebRTC mode the microphone track's RTP packets (from getStats, each second).
   */
  packetsSent: number;
  /** Why the microphone is off against the user's wish, null otherwise. */
  error: string | null;
}

/** Sends one packet (MicOpus timestamp, Opus bytes); false when it was dropped. */
export type MicSend = (timestamp: number, packet: Uint8Array) => boolean;

/**
 * Where the capture goes: Opus packets the page encodes (WebSocket mode), or the capture track
 * itself, set on the peer connection (WebRTC mode; null when the microphone stops).
 */
export type MicOutput = { packets: MicSend } | { track: (track: MediaStreamTrack | null) => void };

/** The stream changed mode (auto's fallback) under a running microphone. */
export const MIC_MODE_CHANGED = "The stream switched between WebRTC and WebSocket mode, which stopped the microphone: press Microphone again.";

/** The mean of the channels (a mono microphone passes through as it is). */
export function downmixToMono(planes: Float32Array[]): Float32Array {
  if (planes.length === 1) return planes[0]!;
  const n = planes[0]?.length ?? 0;
  const out = new Float32Array(n);
  for (const p of planes) for (let i = 0; i < n; i++) out[i]! += p[i]!;
  for (let i = 0; i < n; i++) out[i]! /= planes.length;
  return out;
}

/**
 * Linear interpolation from `from` Hz to `to` Hz over consecutive chunks: the position and the
 * previous chunk's last sample carry over, so chunk edges make no clicks. Good enough for speech
 * (the device rates met in practice are 44.1 and 48 kHz); Opus band-limits what follows.
 */
export class LinearResampler {
  private readonly step: number;
  /** Position of the next output sample in [previous last sample, …this chunk]. */
  private t = 0;
  private prev: number | null = null;
  constructor(
    readonly from: number,
    readonly to: number,
  ) {
    this.step = from / to;
  }
  process(input: Float32Array): Float32Array {
    const off = this.prev === null ? 0 : 1;
    const len = input.length + off;
    const at = (i: number) => (i < off ? this.prev! : input[i - off]!);
    const out = new Float32Array(Math.max(0, Math.ceil((len - 1 - this.t) / this.step)));
    let k = 0;
    for (; this.t < len - 1 && k < out.length; this.t += this.step) {
      const i = Math.floor(this.t);
      const f = this.t - i;
      out[k++] = at(i) * (1 - f) + at(i + 1) * f;
    }
    if (len > 0) {
      this.t -= len - 1;
      this.prev = at(len - 1);
    }
    return k === out.length ? out : out.subarray(0, k);
  }
}

/** An encoded chunk's µs timestamp (on this pipeline's own 48 kHz count) → MicOpus u32, wrapping. */
export function micTimestamp(chunkUs: number): number {
  return Math.round((chunkUs * MIC_RATE) / 1e6) >>> 0;
}

/**
 * What a browser must have for the microphone; the sentence saying what is missing, or null.
 * `encode`: the page encodes (WebSocket mode); WebRTC mode needs getUserMedia only.
 */
export function micUnsupported(g: { isSecureContext?: boolean; navigator?: { mediaDevices?: { getUserMedia?: unknown } }; MediaStreamTrackProcessor?: unknown; AudioEncoder?: unknown; AudioData?: unknown }, encode = true): string | null {
  if (!g.navigator?.mediaDevices?.getUserMedia) {
    return g.isSecureContext === false
      ? "The browser offers the microphone only to pages over HTTPS or on localhost: open the gateway over HTTPS."
      : "This browser has no microphone access (getUserMedia is unavailable).";
  }
  if (encode && (!g.MediaStreamTrackProcessor || !g.AudioEncoder || !g.AudioData)) {
    return "This browser cannot encode the microphone here (it needs WebCodecs and MediaStreamTrackProcessor: a recent Chrome or Edge).";
  }
  return null;
}

/** getUserMedia's and the encoder's failures in words. */
export function micErrorText(e: unknown): string {
  const name = e instanceof Error || (typeof e === "object" && e !== null && "name" in e) ? String((e as { name: unknown }).name) : "";
  const message = e instanceof Error ? e.message : String(e);
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The browser did not allow the microphone. Allow it for this site (the icon in the address bar) and press Microphone again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found on this device.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone could not be opened (another application may be using it).";
    default:
      return `The microphone could not start: ${message}`;
  }
}

interface TrackProcessor {
  readable: ReadableStream<AudioData>;
}
type TrackProcessorCtor = new (init: { track: MediaStreamTrack; maxBufferSize?: number }) => TrackProcessor;

/**
 * One capture session: start() asks for the microphone and pumps until stop() or the track ends.
 * `onStop` is called once, with the reason when it stopped by itself (null when stopped by the user).
 */
export class Microphone {
  private track: MediaStreamTrack | null = null;
  private encoder: AudioEncoder | null = null;
  private reader: ReadableStreamDefaultReader<AudioData> | null = null;
  private resampler: LinearResampler | null = null;
  /** 48 kHz samples fed to (or dropped before) the encoder: the MicOpus clock. */
  private samples = 0;
  private stopped = false;

  constructor(
    private readonly out: MicOutput,
    private readonly debug: MicDebug,
    private readonly onStop: (error: string | null) => void,
  ) {}

  /** Which output this microphone feeds. */
  get kind(): "packets" | "track" {
    return "packets" in this.out ? "packets" : "track";
  }

  /** The live capture track in track mode (to set on a new peer connection), else null. */
  get captureTrack(): MediaStreamTrack | null {
    return this.kind === "track" && !this.stopped ? this.track : null;
  }

  async start(): Promise<void> {
    const g = globalThis as unknown as { MediaStreamTrackProcessor?: TrackProcessorCtor };
    const encode = "packets" in this.out;
    const missing = micUnsupported(globalThis as Parameters<typeof micUnsupported>[0], encode);
    if (missing) return this.stop(missing);
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (e) {
      return this.stop(micErrorText(e));
    }
    const track = stream.getAudioTracks()[0];
    if (this.stopped) {
      // Toggled off while the permission prompt was up.
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    if (!track) return this.stop("The browser gave no audio track for the microphone.");
    this.track = track;
    track.addEventListener("ended", () => this.stop("The microphone was disconnected."));
    if (!("packets" in this.out)) {
      // WebRTC: the peer connection encodes and sends the track itself.
      this.out.track(track);
      this.debug.on = true;
      this.debug.error = null;
      return;
    }
    if (!g.MediaStreamTrackProcessor) return this.stop("no MediaStreamTrackProcessor");
    try {
      this.encoder = new AudioEncoder({ output: (c) => this.onChunk(c), error: (e) => this.stop(`The microphone's Opus encoder failed: ${e.message}`) });
      this.encoder.configure({ codec: "opus", sampleRate: MIC_RATE, numberOfChannels: 1, bitrate: BITRATE, opus: { frameDuration: FRAME_US } } as AudioEncoderConfig);
      this.reader = new g.MediaStreamTrackProcessor({ track, maxBufferSize: 10 }).readable.getReader();
    } catch (e) {
      return this.stop(micErrorText(e));
    }
    this.debug.on = true;
    this.debug.error = null;
    void this.pump(this.reader);
  }

  private async pump(reader: ReadableStreamDefaultReader<AudioData>): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.stopped) {
          value?.close();
          break;
        }
        this.feed(value);
      }
    } catch (e) {
      if (!this.stopped) this.stop(micErrorText(e));
      return;
    }
    if (!this.stopped) this.stop("The microphone stopped delivering sound.");
  }

  /** One capture chunk → mono 48 kHz f32 → the encoder (or dropped when it is behind). */
  private feed(d: AudioData): void {
    const planes: Float32Array[] = [];
    let rate: number;
    try {
      for (let c = 0; c < d.numberOfChannels; c++) {
        const p = new Float32Array(d.numberOfFrames);
        d.copyTo(p, { planeIndex: c, format: "f32-planar" });
        planes.push(p);
      }
      rate = d.sampleRate;
    } finally {
      d.close();
    }
    let mono = downmixToMono(planes);
    if (rate !== MIC_RATE) {
      if (this.resampler?.from !== rate) this.resampler = new LinearResampler(rate, MIC_RATE);
      mono = this.resampler.process(mono);
    }
    if (!mono.length) return;
    const at = this.samples;
    this.samples += mono.length;
    const enc = this.encoder;
    if (!enc || enc.state !== "configured" || enc.encodeQueueSize > MAX_ENCODE_QUEUE) return;
    const data = new AudioData({
      format: "f32-planar",
      sampleRate: MIC_RATE,
      numberOfChannels: 1,
      numberOfFrames: mono.length,
      timestamp: Math.round((at * 1e6) / MIC_RATE),
      data: mono as Float32Array<ArrayBuffer>,
    });
    try {
      enc.encode(data);
    } finally {
      data.close();
    }
  }

  private onChunk(c: EncodedAudioChunk): void {
    if (this.stopped || c.byteLength < 1) return;
    const bytes = new Uint8Array(c.byteLength);
    c.copyTo(bytes);
    if ("packets" in this.out && this.out.packets(micTimestamp(c.timestamp), bytes)) this.debug.packetsSent++;
  }

  /** Ends the capture (idempotent); `error` when it ended by itself, null when by the user. */
  stop(error: string | null = null): void {
    if (this.stopped) return;
    this.stopped = true;
    void this.reader?.cancel().catch(() => {});
    if (this.track && !("packets" in this.out)) this.out.track(null);
    this.track?.stop();
    try {
      if (this.encoder && this.encoder.state !== "closed") this.encoder.close();
    } catch {
      /* already closed */
    }
    this.debug.on = false;
    this.debug.error = error;
    this.onStop(error);
  }
}
