/** Texts of the dashboard that carry a decision: kept apart from the DOM so they are unit-tested. */
import type { Revoked } from "./adminApi";

/** What the operator is told after a revocation: whether the host itself forgot the identity. */
export function revokedText(r: Revoked): string {
  switch (r.host_unpair) {
    case "wolf_api":
      return `Revoked ${r.client_id}: unpaired on the host through its Wolf API and removed here.`;
    case "nvhttp":
      return `Revoked ${r.client_id}: unpaired on the host (NVHTTP /unpair) and removed here.`;
    default:
      return `Removed ${r.client_id} here; the host could not be told: remove the client in the host's own settings too.`;
  }
}

/** A time left, coarse enough to read at a glance: "29d 23h", "5h 07m", "3m", "due". */
export function fmtRemaining(secs: number): string {
  if (secs <= 0) return "due";
  const d = Math.floor(secs / 86400);
  const hh = Math.floor((secs % 86400) / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${String(mm).padStart(2, "0")}m`;
  return `${Math.max(1, mm)}m`;
}

/** A host list typed by the operator: "" → null (every host), "1, 3" → [1, 3], bad → undefined. */
export function parseHostList(text: string): number[] | null | undefined {
  const t = text.trim();
  if (!t) return null;
  const parts = t.split(",").map((p) => p.trim());
  if (!parts.every((p) => /^\d{1,15}$/.test(p))) return undefined;
  return parts.map(Number);
}
