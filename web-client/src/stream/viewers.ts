/**
 * Several viewers on one stream (docs/browser-protocol.md §8), the pure part: the server's
 * `Viewers` and `InputRefused` JSON read defensively (a newer or older gateway may send more,
 * less or odd fields, and a bad message must not break the stream view), the watch link and its
 * route, and what this member may do.
 */

/** What a watch link carries: the stream and its join token (§8.1). */
export interface WatchTarget {
  stream: string;
  token: string;
}

export interface Member {
  id: number;
  name: string;
  owner: boolean;
}

/** The roster as this member sees it (§8.2). */
export interface ViewersInfo {
  you: number;
  /** The member whose input reaches the host; null when nobody holds control. */
  controller: number | null;
  viewers: Member[];
  /** Members asking for control, oldest first. */
  requests: number[];
  /** The owner's copy only: what a watch link needs. */
  share: WatchTarget | null;
}

const isId = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/** `{"Viewers":{…}}` → the roster, or null when `json` is not a (usable) Viewers message. */
export function parseViewers(json: unknown): ViewersInfo | null {
  if (!json || typeof json !== "object") return null;
  const v = (json as Record<string, unknown>).Viewers;
  if (!v || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  if (!isId(o.you)) return null;
  const viewers: Member[] = [];
  for (const m of Array.isArray(o.viewers) ? o.viewers : []) {
    if (!m || typeof m !== "object") continue;
    const r = m as Record<string, unknown>;
    if (!isId(r.id)) continue;
    viewers.push({ id: r.id, name: typeof r.name === "string" && r.name ? r.name : "guest", owner: r.owner === true });
  }
  const requests = (Array.isArray(o.requests) ? o.requests : []).filter(isId);
  const s = o.share as Record<string, unknown> | null | undefined;
  const share = s && typeof s === "object" && isText(s.stream) && isText(s.token) ? { stream: s.stream, token: s.token } : null;
  return { you: o.you, controller: isId(o.controller) ? o.controller : null, viewers, requests, share };
}

/** `{"InputRefused":{"reason":"…"}}` → the reason (a default text when none came), else null. */
export function parseInputRefused(json: unknown): string | null {
  if (!json || typeof json !== "object" || !("InputRefused" in json)) return null;
  const r = (json as { InputRefused: unknown }).InputRefused;
  const reason = r && typeof r === "object" ? (r as Record<string, unknown>).reason : undefined;
  return typeof reason === "string" && reason ? reason : "another viewer has control";
}

/** `<origin>/#/watch/<stream>/<token>`. */
export function watchLink(origin: string, t: WatchTarget): string {
  return `${origin.replace(/\/+$/, "")}/#/watch/${encodeURIComponent(t.stream)}/${encodeURIComponent(t.token)}`;
}

/** The hash route's parts after `watch` → the target, or null for a malformed link. */
export function watchRoute(stream: string | undefined, token: string | undefined): WatchTarget | null {
  if (!stream || !token) return null;
  try {
    return { stream: decodeURIComponent(stream), token: decodeURIComponent(token) };
  } catch {
    return null;
  }
}

/** What this member may do now, for the Viewers panel. */
export interface Role {
  me: Member | undefined;
  hasControl: boolean;
  /** Asked for control and still waiting. */
  requested: boolean;
  /** Requests this member can grant (it holds control), oldest first, with the asker's name. */
  grantable: Member[];
}

export function roleOf(v: ViewersInfo): Role {
  const hasControl = v.controller === v.you;
  const byId = new Map(v.viewers.map((m) => [m.id, m]));
  return {
    me: byId.get(v.you),
    hasControl,
    requested: v.requests.includes(v.you),
    grantable: hasControl ? v.requests.filter((id) => id !== v.you).map((id) => byId.get(id) ?? { id, name: `viewer ${id}`, owner: false }) : [],
  };
}
