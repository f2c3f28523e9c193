import type { Ctx } from "../main";
import { BITRATES_MBPS, FPS, RESOLUTIONS, loadSettings, probeCodecs, probeSurround, saveSettings, speakerChannels, webcodecsAvailable, webrtcAvailable, type Settings } from "../settings";
import { h } from "../ui";

/** Settings, saved on every change (per browser). */
export async function renderSettings(ctx: Ctx): Promise<void> {
  const s = loadSettings();
  const [codecs, surround] = await Promise.all([probeCodecs(), probeSurround()]);
  if (!ctx.isCurrent()) return;
  const speakers = speakerChannels();
  const saved = h("span", { class: "muted" });
  const save = (patch: Partial<Settings>) => {
    Object.assign(s, patch);
    saveSettings(s);
    saved.textContent = "Saved.";
  };
  const select = (name: string, value: string, options: [string, string][], onchange: (v: string) => void) =>
    h(
      "select",
      { name, onchange: (e: Event) => onchange((e.target as HTMLSelectElement).value) },
      options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
    );
  const decodable = codecs.filter((c) => c.webcodecs);
  const form = h(
    "div",
    { class: "card stack", style: "max-width:560px", dataset: { testid: "settings" } },
    h("h1", null, "Stream settings"),
    h("label", null, "Resolution", select("resolution", `${s.width}x${s.height}`, RESOLUTIONS.map(([w, hh]) => [`${w}x${hh}`, `${w} × ${hh}`]), (v) => {
      const [w, hh] = v.split("x").map(Number);
      save({ width: w, height: hh });
    })),
    h("label", null, "Frame rate", select("fps", String(s.fps), FPS.map((f) => [String(f), `${f} fps`]), (v) => save({ fps: Number(v) }))),
    h("label", null, "Bitrate", select("bitrate", String(s.bitrateKbps), BITRATES_MBPS.map((m) => [String(m * 1000), `${m} Mbit/s`]), (v) => save({ bitrateKbps: Number(v) }))),
    h("label", null, "Video codec (only those this browser decodes)", select("codec", s.codec, [["auto", "Automatic"], ...decodable.map((c): [string, string] => [c.name, c.name])], (v) => save({ codec: v }))),
    h("label", null, "Audio", select("audio", String(s.audioChannels), audioOptions(surround), (v) => save({ audioChannels: Number(v) }))),
    h("p", { class: "muted", style: "margin:0;font-size:.85rem", dataset: { testid: "audio-note" } }, audioNote(surround, speakers)),
    h(
      "label",
      null,
      "Connection mode",
      select("mode", s.mode, [
        ["auto", "Automatic (WebRTC, else WebSocket; WebSocket for surround)"],
        ["webrtc", `WebRTC${webrtcAvailable() ? "" : " (not available here)"}`],
        ["websocket", `WebSocket + WebCodecs${webcodecsAvailable() ? "" : " (not available here)"}`],
      ], (v) => save({ mode: v as Settings["mode"] })),
    ),
    h("label", null, "Touch", select("touch", s.touchMode, [["trackpad", "Use as a trackpad"], ["touch", "Send touches to the host"]], (v) => save({ touchMode: v as Settings["touchMode"] }))),
    h("label", { style: "display:flex;gap:.5rem;align-items:center;color:var(--text)" }, h("input", { type: "checkbox", name: "adaptive", checked: s.adaptive, style: "width:auto", onchange: (e: Event) => save({ adaptive: (e.target as HTMLInputElement).checked }) }), "Adapt size and bitrate to the connection (a short pause at each change)"),
    h("label", { style: "display:flex;gap:.5rem;align-items:center;color:var(--text)" }, h("input", { type: "checkbox", name: "stats", checked: s.showStats, style: "width:auto", onchange: (e: Event) => save({ showStats: (e.target as HTMLInputElement).checked }) }), "Show statistics while streaming"),
    h("p", { class: "muted", style: "margin:0;font-size:.85rem" }, `Decodable here with WebCodecs: ${decodable.map((c) => c.name).join(", ") || "none (needs HTTPS or localhost)"}.`),
    h("div", { class: "row" }, h("a", { class: "btn", href: "#/" }, "Done"), saved),
  );
  ctx.main.append(form);
}

/** Stereo, the surround layouts this browser decodes, or audio on the host. */
function audioOptions(surround: number[]): [string, string][] {
  const opts: [string, string][] = [["2", "Stereo"]];
  if (surround.includes(6)) opts.push(["6", "5.1 surround"]);
  if (surround.includes(8)) opts.push(["8", "7.1 surround"]);
  opts.push(["0", "Play audio on the host"]);
  return opts;
}

/** What the surround choices mean here, in words. */
function audioNote(surround: number[], speakers: number | null): string {
  if (!surround.length) return "This browser cannot decode surround Opus, so audio streams in stereo.";
  const out = speakers ? ` This device reports ${speakers} output channel${speakers === 1 ? "" : "s"}; a stream with more is mixed down to stereo.` : "";
  return `Surround streams in WebSocket mode; WebRTC carries stereo.${out}`;
}
