import { describe, expect, it } from "vitest";
import { LinearResampler, MIC_RATE, downmixToMono, micErrorText, micTimestamp, micUnsupported } from "./mic";
import { MAX_OPUS_PACKET, hex, micOpus } from "../protocol";

describe("micOpus (0x18)", () => {
  it("is the type, the big-endian timestamp and the packet (wire's own example)", () => {
    expect(hex(micOpus(0x0001e0c0, Uint8Array.of(0xfc, 0xff, 0xfe)))).toBe("18 00 01 e0 c0 fc ff fe");
  });
  it("wraps the timestamp to u32", () => {
    expect(hex(micOpus(2 ** 32 + 960, Uint8Array.of(1)))).toBe("18 00 00 03 c0 01");
  });
  it("refuses an empty or oversized packet", () => {
    expect(() => micOpus(0, new Uint8Array(0))).toThrow(RangeError);
    expect(() => micOpus(0, new Uint8Array(MAX_OPUS_PACKET + 1))).toThrow(RangeError);
    expect(micOpus(0, new Uint8Array(MAX_OPUS_PACKET)).length).toBe(5 + MAX_OPUS_PACKET);
  });
});

describe("micTimestamp", () => {
  it("turns the encoder's µs into 48 kHz samples", () => {
    expect(micTimestamp(0)).toBe(0);
    expect(micTimestamp(20000)).toBe(960);
    // µs rounded from a sample count come back to that count.
    expect(micTimestamp(Math.round((12345 * 1e6) / MIC_RATE))).toBe(12345);
  });
  it("wraps at 2^32 samples", () => {
    const us = ((2 ** 32 + 480) * 1e6) / MIC_RATE;
    expect(micTimestamp(us)).toBe(480);
  });
});

describe("downmixToMono", () => {
  it("passes mono through and averages stereo", () => {
    const m = Float32Array.of(0.5, -0.5);
    expect(downmixToMono([m])).toBe(m);
    expect(Array.from(downmixToMono([Float32Array.of(1, 0.5), Float32Array.of(0, -0.5)]))).toEqual([0.5, 0]);
  });
});

describe("LinearResampler", () => {
  const sine = (hz: number, rate: number, n: number, from = 0) => Float32Array.from({ length: n }, (_, i) => Math.sin((2 * Math.PI * hz * (i + from)) / rate));

  it("makes 48 kHz of 44.1 kHz: the right length, the same tone, no seams between chunks", () => {
    const r = new LinearResampler(44100, 48000);
    const parts: number[] = [];
    // One second in 10 ms chunks, as a capture device delivers it.
    for (let c = 0; c < 100; c++) parts.push(...r.process(sine(440, 44100, 441, c * 441)));
    expect(Math.abs(parts.length - 48000)).toBeLessThanOrEqual(2);
    const want = sine(440, 48000, parts.length);
    const worst = parts.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
    expect(worst).toBeLessThan(0.002);
  });

  it("gives one chunk's worth at equal rates and carries nothing over", () => {
    const r = new LinearResampler(48000, 48000);
    const a = sine(100, 48000, 480);
    const b = sine(100, 48000, 480, 480);
    const out = [...r.process(a), ...r.process(b)];
    expect(out.length).toBe(959); // the last sample waits for the next chunk
    expect(out[480]).toBeCloseTo(b[0]!, 6);
  });

  it("copes with empty chunks", () => {
    const r = new LinearResampler(32000, 48000);
    expect(r.process(new Float32Array(0)).length).toBe(0);
    expect(r.process(sine(100, 32000, 320)).length).toBeGreaterThan(470);
  });
});

describe("micUnsupported / micErrorText", () => {
  const full = { navigator: { mediaDevices: { getUserMedia: () => 0 } }, MediaStreamTrackProcessor: 1, AudioEncoder: 1, AudioData: 1 };
  it("says what is missing", () => {
    expect(micUnsupported(full)).toBeNull();
    expect(micUnsupported({ ...full, navigator: {}, isSecureContext: false })).toMatch(/HTTPS/);
    expect(micUnsupported({ ...full, navigator: {} })).toMatch(/getUserMedia/);
    expect(micUnsupported({ ...full, MediaStreamTrackProcessor: undefined })).toMatch(/Chrome or Edge/);
  });
  it("needs only getUserMedia when the peer connection encodes (WebRTC mode)", () => {
    const gum = { navigator: full.navigator };
    expect(micUnsupported(gum, false)).toBeNull();
    expect(micUnsupported(gum)).toMatch(/Chrome or Edge/);
    expect(micUnsupported({ navigator: {} }, false)).toMatch(/getUserMedia/);
  });
  it("puts getUserMedia's refusals in words", () => {
    const err = (name: string) => Object.assign(new Error("x"), { name });
    expect(micErrorText(err("NotAllowedError"))).toMatch(/did not allow the microphone/);
    expect(micErrorText(err("NotFoundError"))).toMatch(/No microphone/);
    expect(micErrorText(err("NotReadableError"))).toMatch(/another application/);
    expect(micErrorText(new Error("boom"))).toMatch(/could not start: boom/);
  });
});
