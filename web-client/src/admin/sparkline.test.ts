import { describe, expect, it } from "vitest";
import { History, sparkPoints } from "./sparkline";

describe("sparkline", () => {
  it("scales values into the box, max at the top", () => {
    expect(sparkPoints([0, 5, 10], 100, 22)).toBe("0,21 50,11 100,1");
    expect(sparkPoints([], 100, 22)).toBe("");
    expect(sparkPoints([3], 100, 22)).toBe("100,1");
    // Negative values are drawn at the bottom, all-zero series stay flat.
    expect(sparkPoints([-1, 0], 10, 12)).toBe("0,11 10,11");
  });

  it("keeps the last samples per key and forgets ended streams", () => {
    const h = new History(3);
    for (const v of [1, 2, 3, 4]) h.push("a", v);
    h.push("b", 9);
    expect(h.get("a")).toEqual([2, 3, 4]);
    h.retain(new Set(["a"]));
    expect(h.get("b")).toEqual([]);
    expect(h.get("a")).toEqual([2, 3, 4]);
  });
});
