import { describe, expect, it } from "vitest";
import { parseInputRefused, parseViewers, roleOf, watchLink, watchRoute } from "./viewers";

const members = [
  { id: 1, name: "alice", owner: true },
  { id: 2, name: "vic", owner: false },
];
const spec = { Viewers: { you: 2, controller: 1, viewers: members, requests: [2] } };

describe("parseViewers", () => {
  it("reads the protocol's example", () => {
    expect(parseViewers(spec)).toEqual({ you: 2, controller: 1, viewers: members, requests: [2], share: null });
  });
  it("keeps the owner's share and a null controller", () => {
    const v = parseViewers({ Viewers: { ...spec.Viewers, you: 1, controller: null, share: { stream: "abc-default-c1", token: "t0k" } } });
    expect(v?.share).toEqual({ stream: "abc-default-c1", token: "t0k" });
    expect(v?.controller).toBeNull();
  });
  it("skips bad members and ids, names the nameless guest, ignores unknown fields", () => {
    const v = parseViewers({
      Viewers: { you: 3, controller: "1", viewers: [null, { id: -1 }, { id: 3 }, "x", { id: 4, name: "bo", owner: 1, extra: true }], requests: [4, "5", 1.5], share: { stream: "", token: "t" }, newer: 1 },
    });
    expect(v).toEqual({ you: 3, controller: null, viewers: [{ id: 3, name: "guest", owner: false }, { id: 4, name: "bo", owner: false }], requests: [4], share: null });
  });
  it("refuses what is not a Viewers message", () => {
    for (const j of [null, 1, "Viewers", {}, { Viewers: null }, { Viewers: { controller: 1 } }, { Viewers: { you: "2" } }, { ConnectionComplete: {} }]) {
      expect(parseViewers(j)).toBeNull();
    }
  });
});

describe("parseInputRefused", () => {
  it("reads the reason, with a default", () => {
    expect(parseInputRefused({ InputRefused: { reason: "alice has control" } })).toBe("alice has control");
    expect(parseInputRefused({ InputRefused: {} })).toBe("another viewer has control");
    expect(parseInputRefused({ InputRefused: null })).toBe("another viewer has control");
    expect(parseInputRefused({ Viewers: {} })).toBeNull();
    expect(parseInputRefused(null)).toBeNull();
  });
});

describe("watch link", () => {
  it("round-trips through the hash route", () => {
    const t = { stream: "abc-default-c1", token: "a/b+c?d" };
    const link = watchLink("https://gw.example:8443/", t);
    expect(link).toBe("https://gw.example:8443/#/watch/abc-default-c1/a%2Fb%2Bc%3Fd");
    const [, stream, token] = new URL(link).hash.replace(/^#\//, "").split("/");
    expect(watchRoute(stream, token)).toEqual(t);
  });
  it("refuses a malformed route", () => {
    expect(watchRoute("s", undefined)).toBeNull();
    expect(watchRoute("", "t")).toBeNull();
    expect(watchRoute("s", "%E0%A4%A")).toBeNull();
  });
});

describe("roleOf", () => {
  it("a member without control may ask, once", () => {
    const r = roleOf(parseViewers(spec)!);
    expect(r).toEqual({ me: { id: 2, name: "vic", owner: false }, hasControl: false, requested: true, grantable: [] });
  });
  it("the controller sees the requests it can grant, oldest first", () => {
    const v = parseViewers({ Viewers: { ...spec.Viewers, you: 1, requests: [7, 2] } })!;
    const r = roleOf(v);
    expect(r.hasControl).toBe(true);
    expect(r.grantable).toEqual([
      { id: 7, name: "viewer 7", owner: false },
      { id: 2, name: "vic", owner: false },
    ]);
  });
});
