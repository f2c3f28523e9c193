import { describe, expect, it } from "vitest";
import { ReconnectPolicy, describeClose, describeError, isFatalError, serverError, DEFAULT_POLICY } from "./reconnect";

describe("reconnect policy", () => {
  it("never reconnects on 4000 superseded, with a reason in words", () => {
    const p = new ReconnectPolicy();
    const d = p.decide({ code: 4000, error: "superseded" });
    expect(d.action).toBe("stop");
    expect(d.reason).toMatch(/another tab/);
    // Through a proxy the code is lost, the error text is not.
    expect(p.decide({ code: 1006, error: "superseded" }).action).toBe("stop");
  });

  it("stops on fatal errors and auth, retries AlreadyStreaming", () => {
    const p = new ReconnectPolicy();
    expect(p.decide({ code: 1008, error: "Unauthorized: wrong credentials" })).toMatchObject({ action: "stop", fatal: true });
    expect(p.decide({ code: 1011, error: "HostNotPaired: pair first" })).toMatchObject({ action: "stop", fatal: true });
    expect(p.decide({ code: 1011, error: "AlreadyStreaming: host busy" }).action).toBe("retry");
    expect(p.decide({ code: 1000 })).toMatchObject({ action: "stop", fatal: false });
    expect(p.decide({ code: 1006, byUser: true }).action).toBe("stop");
  });

  it("decides from the typed code, not the text", () => {
    const p = new ReconnectPolicy();
    expect(p.decide({ code: 1011, error: "HostNotPaired: pair first", errorCode: "HostNotPaired" })).toMatchObject({ action: "stop", fatal: true });
    expect(p.decide({ code: 1006, error: "HostNotFound", errorCode: "HostNotFound" })).toMatchObject({ action: "stop", fatal: true });
    expect(p.decide({ code: 1011, error: "AlreadyStreaming: host busy", errorCode: "AlreadyStreaming" }).action).toBe("retry");
    // The code wins over a text that reads otherwise.
    expect(p.decide({ code: 1011, error: "HostNotPaired: but busy", errorCode: "AlreadyStreaming" }).action).toBe("retry");
    expect(p.decide({ code: 1011, error: "host busy", errorCode: "HostNotPaired" })).toMatchObject({ action: "stop", fatal: true });
    // Through a proxy the close code is lost; the typed code is not.
    expect(p.decide({ code: 1006, error: "superseded", errorCode: "Superseded" })).toMatchObject({ action: "stop", fatal: false });
    expect(p.decide({ code: 1006, error: "stopped by an administrator", errorCode: "StoppedByAdmin" })).toMatchObject({ action: "stop", fatal: true });
    expect(p.decide({ code: 1006, error: "server shutting down", errorCode: "ServerShutdown" }).action).toBe("retry");
    expect(isFatalError("Unauthorized: no", "Unauthorized")).toBe(true);
    // A signed-in account that may not do it (a viewer starting a stream): stop, and say why.
    expect(isFatalError("Forbidden: a viewer-only account may not start a stream", "Forbidden")).toBe(true);
    expect(describeError("Forbidden: a viewer-only account may not start a stream")).toBe(
      "Your account may not do this: a viewer-only account may not start a stream.",
    );
    expect(isFatalError("InternalServerError: x", "InternalServerError")).toBe(false);
    // An old gateway sends no code: the text's first token decides.
    expect(isFatalError("HostNotPaired: pair first")).toBe(true);
    expect(isFatalError("AlreadyStreaming: host busy")).toBe(false);
  });

  it("reads the error and its code from server JSON", () => {
    expect(serverError({ error: "AlreadyStreaming: busy", code: "AlreadyStreaming" })).toEqual({ text: "AlreadyStreaming: busy", code: "AlreadyStreaming" });
    expect(serverError({ error: "HostNotPaired: old gateway" })).toEqual({ text: "HostNotPaired: old gateway", code: undefined });
    expect(serverError({ ConnectionComplete: {} })).toBeUndefined();
  });

  it("describes an error by its code, the code's prefix dropped from the detail", () => {
    expect(describeError("HostNotPaired: pair first", "HostNotPaired")).toBe(
      "The gateway is not paired with this host. Pair it from the host list. (pair first)",
    );
    expect(describeError("HostNotPaired", "HostNotPaired")).toBe("The gateway is not paired with this host. Pair it from the host list.");
    expect(describeError("no such host", "HostNotFound")).toBe("That host is no longer configured on the gateway. (no such host)");
    expect(describeError("no init message received", "FirstMessageTimeout")).toBe("no init message received.");
    expect(describeClose({ code: 1006, error: "stopped by an administrator", errorCode: "StoppedByAdmin" })).toMatch(/administrator/);
  });

  it("backs off exponentially with jitter, capped, and gives up", () => {
    const lo = new ReconnectPolicy(DEFAULT_POLICY, () => 0);
    const hi = new ReconnectPolicy(DEFAULT_POLICY, () => 0.999999);
    const delays: [number, number][] = [];
    for (let i = 0; i < DEFAULT_POLICY.maxAttempts; i++) {
      const a = lo.decide({ code: 1006 });
      const b = hi.decide({ code: 1006 });
      if (a.action !== "retry" || b.action !== "retry") throw new Error("expected retry");
      delays.push([a.delayMs, b.delayMs]);
      const cap = Math.min(DEFAULT_POLICY.maxMs, DEFAULT_POLICY.baseMs * 2 ** i);
      expect(a.delayMs).toBe(cap / 2);
      expect(b.delayMs).toBe(cap);
      expect(a.attempt).toBe(i + 1);
    }
    expect(delays[0]).toEqual([250, 500]);
    expect(delays.at(-1)![1]).toBe(DEFAULT_POLICY.maxMs);
    const end = lo.decide({ code: 1006 });
    expect(end.action).toBe("stop");
    expect(end.reason).toMatch(/Gave up after 8 attempts/);
  });

  it("a gateway restart (socket dropped, then refused while it is down) is retried for 30 s at least", () => {
    // What tests/browser/gateway-restart.test.mjs relies on: the first retry within 0.5 s, never
    // more than 15 s between tries (a gateway back up is found within that), and no giving up
    // before 30 s of downtime even with the shortest jitter.
    const p = new ReconnectPolicy(DEFAULT_POLICY, () => 0);
    let waited = 0;
    const first = p.decide({ code: 1006, streamedMs: 4000 });
    expect(first).toMatchObject({ action: "retry", attempt: 1 });
    if (first.action === "retry") expect(first.delayMs).toBeLessThanOrEqual(500);
    for (let d = first; d.action === "retry"; d = p.decide({ code: 1006, streamedMs: 0 })) {
      expect(d.delayMs).toBeLessThanOrEqual(DEFAULT_POLICY.maxMs);
      waited += d.delayMs;
    }
    expect(waited).toBeGreaterThanOrEqual(30000);
    // Once back, a connection that streams for a while makes the next drop start over.
    expect(p.decide({ code: 1006, streamedMs: DEFAULT_POLICY.stableMs })).toMatchObject({ action: "retry", attempt: 1 });
  });

  it("a stable connection resets the attempt count", () => {
    const p = new ReconnectPolicy(DEFAULT_POLICY, () => 0);
    p.decide({ code: 1006 });
    p.decide({ code: 1006 });
    expect(p.attempt).toBe(2);
    const d = p.decide({ code: 1006, streamedMs: 60000 });
    expect(d).toMatchObject({ action: "retry", attempt: 1, delayMs: 250 });
  });

  it("every close has words, never a bare number like 'Error 0'", () => {
    for (const code of [0, 1000, 1001, 1005, 1006, 1008, 1011, 1013, 4000, 4001, 4999]) {
      const text = describeClose({ code });
      expect(text.length).toBeGreaterThan(15);
      expect(text).not.toMatch(/^Error \d+$/);
    }
    expect(describeClose({ code: 1011, error: "HostUnreachable: timed out" })).toMatch(/cannot be reached/);
    expect(describeClose({ code: 1011, error: "the streamer exited unexpectedly (signal: 9)" })).toBe(
      "the streamer exited unexpectedly (signal: 9).",
    );
  });
});
