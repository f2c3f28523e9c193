import { describe, expect, it } from "vitest";
import { fmtRemaining, parseHostList, revokedText } from "./format";

describe("revokedText", () => {
  it("says how the host was told", () => {
    expect(revokedText({ host_id: 1, client_id: "a", host_unpair: "wolf_api" })).toMatch(/Wolf API/);
    expect(revokedText({ host_id: 1, client_id: "a", host_unpair: "nvhttp" })).toMatch(/NVHTTP/);
  });
  it("asks the operator to finish on the host when it could not be told", () => {
    expect(revokedText({ host_id: 1, client_id: "b", host_unpair: "not_done" })).toMatch(/host's own settings/);
  });
});

describe("fmtRemaining", () => {
  it("uses days for the default 30-day expiry", () => {
    expect(fmtRemaining(30 * 86400 - 1)).toBe("29d 23h");
  });
  it("uses hours and minutes below a day", () => {
    expect(fmtRemaining(5 * 3600 + 7 * 60 + 5)).toBe("5h 07m");
    expect(fmtRemaining(59)).toBe("1m");
  });
  it("says due once the time is past", () => {
    expect(fmtRemaining(0)).toBe("due");
    expect(fmtRemaining(-10)).toBe("due");
  });
});

describe("parseHostList", () => {
  it("reads empty as every host, numbers as a list, anything else as an error", () => {
    expect(parseHostList("")).toBeNull();
    expect(parseHostList("  ")).toBeNull();
    expect(parseHostList("1, 3,7")).toEqual([1, 3, 7]);
    expect(parseHostList("1,,2")).toBeUndefined();
    expect(parseHostList("-1")).toBeUndefined();
    expect(parseHostList("two")).toBeUndefined();
  });
});
