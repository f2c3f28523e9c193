import { describe, expect, it } from "vitest";
import { downmixToStereo } from "./downmix";

const one = (v: number) => Float32Array.of(v);

describe("downmixToStereo", () => {
  it("keeps the fronts, puts the centre and surrounds at -3 dB on their side, drops the LFE", () => {
    // FL FR FC LFE BL BR SL SR
    const [l, r] = downmixToStereo([1, 2, 4, 8, 16, 32, 64, 128].map(one));
    const g = Math.SQRT1_2;
    expect(l[0]).toBeCloseTo(1 + g * 4 + g * 16 + g * 64, 5);
    expect(r[0]).toBeCloseTo(2 + g * 4 + g * 32 + g * 128, 5);
  });
  it("mixes 5.1 (no side pair)", () => {
    const [l, r] = downmixToStereo([1, 0, 0, 1, 0, 1].map(one));
    expect([l[0], r[0]]).toEqual([1, Math.fround(Math.SQRT1_2)]);
  });
});
