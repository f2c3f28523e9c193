// The hex examples of docs/browser-protocol.md §5 (the same vectors as wire/src/browser/tests.rs).
import { describe, expect, it } from "vitest";
import * as P from "./protocol";

const { hex, unhex } = P;

describe("client → server encoders match the contract", () => {
  it("KeyboardInput", () => {
    expect(hex(P.keyboardKey(true, P.Mod.Shift, 0x41))).toBe("10 00 01 01 00 41");
    expect(hex(P.keyboardKey(false, P.Mod.Shift, 0x41))).toBe("10 00 00 01 00 41");
  });
  it("KeyboardInput text splits at 255 bytes on character boundaries", () => {
    expect(P.keyboardText("hé").map(hex)).toEqual(["10 01 03 68 c3 a9"]);
    const long = "é".repeat(200); // 400 bytes
    const parts = P.keyboardText(long);
    expect(parts.length).toBe(2);
    expect(parts[0][2]).toBe(254);
    const back = parts.map((p) => new TextDecoder().decode(p.subarray(3))).join("");
    expect(back).toBe(long);
  });
  it("MouseAbsolute", () => {
    expect(hex(P.mouseAbsolute(2048, 1024))).toBe("12 01 08 00 04 00 10 00 10 00");
  });
  it("MouseRelative", () => {
    expect(hex(P.mouseRelative(-5, 12))).toBe("13 00 ff fb 00 0c");
  });
  it("MouseClick button and wheels", () => {
    expect(hex(P.mouseButton(true, 1))).toBe("11 02 01 01");
    // Browser deltaY +30 (scroll down 30 px) → wire dy = -3.
    expect(hex(P.mouseWheel(0, 30))).toBe("11 04 00 fd");
    expect(hex(P.mouseWheelHighRes(0, 120))).toBe("11 03 00 00 ff 88");
  });
  it("Ping", () => {
    expect(hex(P.ping(7, 123456789n))).toBe("40 00 00 00 07 00 00 00 00 07 5b cd 15");
  });
  it("ControlMessage", () => {
    expect(hex(P.control({ set_video_enabled: false }))).toBe(
      "20 7b 22 73 65 74 5f 76 69 64 65 6f 5f 65 6e 61 62 6c 65 64 22 3a 66 61 6c 73 65 7d",
    );
  });
  it("Touch", () => {
    const t = P.touch({ event: P.TouchEvent.Down, pointerId: 3, x: 0.5, y: 0.25, pressure: 1 });
    expect(hex(t)).toBe("14 01 00 00 00 03 3f 00 00 00 3e 80 00 00 3f 80 00 00 00 00 00 00 00 00 00 00 ff ff");
    // NaN must never reach the wire (the server rejects it).
    const bad = P.touch({ event: 3, pointerId: 1, x: NaN, y: Infinity, pressure: 0 });
    expect(hex(bad.subarray(6, 14))).toBe("00 00 00 00 00 00 00 00");
  });
  it("ControllerEvent and ControllerState", () => {
    expect(hex(P.controllerArrival(1, P.PadType.Xbox, 7, 0xffff))).toBe("15 00 01 01 00 07 00 00 ff ff");
    expect(hex(P.controllerRemoval(1))).toBe("15 01 01");
    expect(
      hex(P.controllerState({ id: 0, activeMask: 1, buttons: 0x1000, lt: 255, rt: 0, lsx: 32767, lsy: -32768, rsx: 0, rsy: -2 })),
    ).toBe("16 00 00 01 00 00 10 00 ff 00 7f ff 80 00 00 00 ff fe");
  });
  it("data-channel form drops the type byte", () => {
    expect(hex(P.withoutType(P.keyboardKey(true, 1, 0x41)))).toBe("00 01 01 00 41");
  });
});

describe("server → client decoders match the contract", () => {
  const keyframe =
    "01 01 01 00 00 00 00 00 0f 42 40 07 80 04 38 00 00 00 01 67 42 00 1f 00 00 00 01 68 ce 3c 80 00 00 00 01 65 88 84 00";
  it("VideoFrame", () => {
    const [f] = P.decodeServer(unhex(keyframe));
    expect(f).toMatchObject({ type: "video", codec: 1, keyframe: true, ptsUs: 1_000_000n, width: 1920, height: 1080 });
    expect((f as P.VideoFrame).data.length).toBe(24);
    expect(hex((f as P.VideoFrame).data.subarray(0, 5))).toBe("00 00 00 01 67");
  });
  it("VideoBatch of one", () => {
    const batch =
      "03 00 01 00 00 00 27 01 01 01 00 00 00 00 00 0f 42 40 07 80 04 38 00 00 00 01 67 42 00 1f 00 00 00 01 68 ce 3c 80 00 00 00 01 65 88 84 00";
    const frames = P.decodeServer(unhex(batch));
    expect(frames.length).toBe(1);
    expect(frames[0]).toEqual(P.decodeServer(unhex(keyframe))[0]);
    // Truncated → rejected as a whole.
    expect(P.decodeServer(unhex(batch).subarray(0, 20))).toEqual([]);
  });
  it("StreamInit", () => {
    expect(P.decodeServer(unhex("30 01 07 80 04 38 3c 02 00 00 bb 80 00"))).toEqual([
      { type: "stream_init", codec: 1, width: 1920, height: 1080, fps: 60, audioChannels: 2, sampleRate: 48000, touch: false },
    ]);
    expect(P.decodeServer(unhex("30 01 07 80 04 38 3c 02 00 00 bb 80"))).toEqual([]);
  });
  it("StreamInit with the surround extension (the same bytes as the gateway's Rust test)", () => {
    const [init] = P.decodeServer(unhex("30 01 07 80 04 38 3c 06 00 00 bb 80 01 04 02 00 01 02 03 04 05"));
    expect(init).toMatchObject({ type: "stream_init", audioChannels: 6, opus: { streams: 4, coupledStreams: 2, mapping: [0, 1, 2, 3, 4, 5] } });
    // A mapping that names a stream channel that does not exist is ignored, not guessed at.
    const [bad] = P.decodeServer(unhex("30 01 07 80 04 38 3c 06 00 00 bb 80 01 04 02 00 01 02 03 04 09"));
    expect(bad).not.toHaveProperty("opus");
  });
  it("OpusHead for WebCodecs: family 0 for stereo, family 1 in Vorbis order for surround", () => {
    expect(hex(P.opusHead(2, 48000))).toBe("4f 70 75 73 48 65 61 64 01 02 00 00 80 bb 00 00 00 00 00");
    // 5.1, identity layout: the table lists FL FC FR BL BR LFE.
    const h51 = P.opusHead(6, 48000, { streams: 4, coupledStreams: 2, mapping: [0, 1, 2, 3, 4, 5] });
    expect(hex(h51)).toBe("4f 70 75 73 48 65 61 64 01 06 00 00 80 bb 00 00 00 00 01 04 02 00 02 01 04 05 03");
    // 7.1 as a Sunshine-like host announces it (LFE in decoded channel 7, side pair in 3 and 6).
    const h71 = P.opusHead(8, 48000, { streams: 5, coupledStreams: 3, mapping: [0, 1, 2, 7, 4, 5, 3, 6] });
    expect(hex(h71.subarray(19))).toBe("05 03 00 02 01 03 06 04 05 07");
    expect(() => P.opusHead(6, 48000)).toThrow(/no Opus layout/);
  });
  it("Pong (and a longer Helix HEAD Pong)", () => {
    const pong = "41 00 00 00 07 00 00 00 00 07 5b cd 15 00 06 47 48 46 20 40 00";
    const expected = { type: "pong", seq: 7, clientTimeUs: 123456789n, serverTimeUs: 1767225600000000n };
    expect(P.decodeServer(unhex(pong))).toEqual([expected]);
    expect(P.decodeServer(unhex(pong + " 00 00 00 01 00 00 00 02"))).toEqual([expected]);
  });
  it("AudioFrame", () => {
    const [a] = P.decodeServer(unhex("02 02 00 00 00 00 00 00 4e 20 fc ff fe"));
    expect(a).toMatchObject({ type: "audio", channels: 2, ptsUs: 20000n });
    expect(hex((a as P.AudioFrame).data)).toBe("fc ff fe");
  });
  it("rumble", () => {
    expect(P.decodeServer(unhex("15 02 00 ff ff 80 00"))).toEqual([{ type: "rumble", trigger: false, id: 0, a: 0xffff, b: 0x8000 }]);
  });
  it("ControlMessage JSON and StreamError", () => {
    expect(P.decodeServer(P.control({ error: "superseded" }))).toEqual([{ type: "control", json: { error: "superseded" } }]);
    expect(P.decodeServer(unhex("31 00 02 68 69"))).toEqual([{ type: "stream_error", text: "hi" }]);
  });
  it("drops short, empty and unknown messages", () => {
    expect(P.decodeServer(new Uint8Array())).toEqual([]);
    expect(P.decodeServer(unhex("01 01 01"))).toEqual([]);
    expect(P.decodeServer(unhex("7f 00"))).toEqual([]);
    expect(P.decodeServer(unhex("15 09 00"))).toEqual([]);
  });
});
