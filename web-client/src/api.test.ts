import { describe, expect, it } from "vitest";
import { SseParser } from "./api";

describe("pairing progress (SSE)", () => {
  it("splits events across chunk boundaries and CRLF", () => {
    const p = new SseParser();
    expect(p.push('event: waiting_for_pin\ndata: {"state":"wait')).toEqual([]);
    expect(p.push('ing_for_pin"}\n\n: keep-alive\n\nevent: paired\r\ndata: {"state":"paired"}\r\n\r\n')).toEqual([
      '{"state":"waiting_for_pin"}',
      '{"state":"paired"}',
    ]);
  });
});
