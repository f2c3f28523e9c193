import { describe, expect, it } from "vitest";
import { CODECS } from "./protocol";
import { formatsFor, rtcFormatsFor } from "./settings";

const support = (decodable: string[]) => CODECS.map((c) => ({ name: c.name, bit: c.bit, byte: c.byte, webcodecs: decodable.includes(c.name) }));

describe("video_supported_formats", () => {
  it("auto asks for H.264 alone where the browser decodes it (a host would pick AV1 over it)", () => {
    expect(formatsFor(support(["H.264", "HEVC", "AV1"]), "auto")).toBe(0x0001);
  });
  it("auto falls back to every decodable codec without H.264", () => {
    expect(formatsFor(support(["HEVC", "AV1"]), "auto")).toBe(0x0100 | 0x1000);
  });
  it("a codec chosen by name is asked for alone, and only if decodable", () => {
    expect(formatsFor(support(["H.264", "AV1"]), "AV1")).toBe(0x1000);
    expect(formatsFor(support(["H.264"]), "HEVC")).toBe(0);
  });
});

describe("WebRTC formats", () => {
  const chromium = ["video/VP8", "video/rtx", "video/VP9", "video/H264", "video/AV1", "video/H265"];
  it("auto asks for H.264 alone where WebRTC receives it", () => {
    expect(rtcFormatsFor(chromium, "auto")).toBe(0x0001);
  });
  it("auto falls back to every receivable codec without H.264", () => {
    expect(rtcFormatsFor(["video/VP8", "video/AV1"], "auto")).toBe(0x1000);
  });
  it("a codec chosen by name is asked for alone, and only if receivable", () => {
    expect(rtcFormatsFor(chromium, "HEVC")).toBe(0x0100);
    expect(rtcFormatsFor(["video/H264"], "AV1")).toBe(0);
  });
});
