/**
 * The gateway's `{"Quality":{…}}` notice (browser-protocol §9): the quality controller moved the
 * stream to another rung of its ladder because of the link. Read defensively: a field missing
 * or of the wrong type makes the notice unusable, not the page.
 */

export interface QualityInfo {
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  /** 0 = the rung asked for; higher = lower quality. */
  rung: number;
  rungs: number;
  /** "congestion" (down), "headroom" or "probe" (up), "admin" (set by an administrator). */
  reason: string;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : null);

/** `{"Quality":{…}}` → the new rung, or null when `json` is not a usable Quality message. */
export function parseQuality(json: unknown): QualityInfo | null {
  if (!json || typeof json !== "object" || !("Quality" in json)) return null;
  const q = (json as { Quality: unknown }).Quality;
  if (!q || typeof q !== "object") return null;
  const r = q as Record<string, unknown>;
  const [width, height, fps, bitrateKbps, rung, rungs] = [r.width, r.height, r.fps, r.bitrate_kbps, r.rung, r.rungs].map(num);
  if (width === null || height === null || fps === null || bitrateKbps === null || rung === null || rungs === null) return null;
  return { width, height, fps, bitrateKbps, rung, rungs, reason: typeof r.reason === "string" ? r.reason : "" };
}

/** The line the stream view shows while the stream restarts at the new rung. */
export function qualityNotice(q: QualityInfo): string {
  const what = `${q.width}×${q.height} at ${(q.bitrateKbps / 1000).toFixed(1)} Mbit/s`;
  if (q.reason === "admin") return `An administrator set the quality to ${what}.`;
  if (q.rung === 0) return `Back to full quality: ${what}.`;
  return q.reason === "congestion" ? `The connection is slow: lowering the quality to ${what}.` : `The connection improved: raising the quality to ${what}.`;
}
