import { describe, expect, it } from "vitest";
import { parseQuality, qualityNotice } from "./quality";

describe("parseQuality", () => {
  const msg = { Quality: { width: 640, height: 360, fps: 30, bitrate_kbps: 2700, rung: 3, rungs: 4, reason: "congestion" } };
  it("reads the gateway's notice", () => {
    expect(parseQuality(msg)).toEqual({ width: 640, height: 360, fps: 30, bitrateKbps: 2700, rung: 3, rungs: 4, reason: "congestion" });
  });
  it("refuses what it cannot use", () => {
    for (const j of [null, 3, {}, { Quality: null }, { Quality: { ...msg.Quality, width: "640" } }, { Quality: { ...msg.Quality, rung: -1 } }, { Viewers: {} }]) {
      expect(parseQuality(j)).toBeNull();
    }
  });
  it("says which way the quality went", () => {
    const q = parseQuality(msg)!;
    expect(qualityNotice(q)).toBe("The connection is slow: lowering the quality to 640×360 at 2.7 Mbit/s.");
    expect(qualityNotice({ ...q, reason: "probe", rung: 2 })).toContain("raising");
    expect(qualityNotice({ ...q, rung: 0, reason: "headroom" })).toContain("Back to full quality");
    expect(qualityNotice({ ...q, reason: "admin" })).toBe("An administrator set the quality to 640×360 at 2.7 Mbit/s.");
  });
});
