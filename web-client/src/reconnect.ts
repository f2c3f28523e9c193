/**
 * Reconnect policy: the one owner of "should we connect again, and when". Sans-IO (time and
 * randomness are passed in), so unit tests drive it. The stream view asks it after every end of a
 * connection; nothing else reconnects.
 *
 * Rules (docs/browser-protocol.md §2.3, §4.3; contract §1.7, §4.4):
 * - 4000 / code Superseded: another tab or device took over the stream → never reconnect.
 * - 1008 / code Unauthorized, HostNotFound, HostNotPaired, AppNotFound, … → fatal: say why, stop.
 * - 1000 "stream ended" (the host ended the stream) and a user close → stop, no retry.
 * - AlreadyStreaming, 1011 with a transient error, 1006/1005 (dropped connection), 1001 → retry
 *   with exponential backoff and full jitter, at most `maxAttempts` times in a row; a connection
 *   that streamed for `stableMs` resets the count.
 *
 * The gateway's error carries a typed `code` (`{"error":"…","code":"HostNotPaired"}`, or the
 * signaling socket's bare string); decisions read it. Only a gateway too old to send one has its
 * text's first token read instead.
 */

/** An error the gateway reported: the text shown, and its typed code when the gateway sent one. */
export interface ServerError {
  text: string;
  code?: string;
}

/** The `{"error": …, "code": …}` of a server JSON message, if it is one. */
export function serverError(o: Record<string, unknown>): ServerError | undefined {
  if (typeof o.error !== "string") return undefined;
  return { text: o.error, code: typeof o.code === "string" ? o.code : undefined };
}

export interface CloseInfo {
  /** WebSocket close code (1006 when the connection dropped without a close frame). */
  code: number;
  /** The last error text (the server's `{"error": …}`, or the client's own words), if any. */
  error?: string;
  /** The typed code of that error, when the server sent one (absent from old gateways). */
  errorCode?: string;
  /** True when the user closed the stream (quit, back, tab closed). */
  byUser?: boolean;
  /** How long the connection was streaming (ms since ConnectionComplete), 0 if it never was. */
  streamedMs?: number;
}

export type Decision =
  | { action: "retry"; delayMs: number; attempt: number; reason: string }
  | { action: "stop"; reason: string; fatal: boolean };

export interface PolicyOptions {
  baseMs: number;
  maxMs: number;
  maxAttempts: number;
  stableMs: number;
}

export const DEFAULT_POLICY: PolicyOptions = { baseMs: 500, maxMs: 15000, maxAttempts: 8, stableMs: 10000 };

const FATAL_CODES = ["Unauthorized", "Forbidden", "HostNotFound", "HostNotPaired", "AppNotFound", "SessionNotFound", "ClientKicked", "NotSupported"];

/** Another tab or device took the stream over: by close code, by typed code, or (old gateway) by text. */
function isSuperseded(c: CloseInfo): boolean {
  if (c.code === 4000) return true;
  if (c.errorCode) return c.errorCode === "Superseded";
  return /superseded/i.test(c.error ?? "");
}

export class ReconnectPolicy {
  private attempts = 0;
  constructor(
    private readonly opts: PolicyOptions = DEFAULT_POLICY,
    private readonly random: () => number = Math.random,
  ) {}

  /** Number of retries since the last stable connection. */
  get attempt(): number {
    return this.attempts;
  }

  /** Call when a connection reached the streaming state and stayed there for a while. */
  reset(): void {
    this.attempts = 0;
  }

  decide(c: CloseInfo): Decision {
    if ((c.streamedMs ?? 0) >= this.opts.stableMs) this.attempts = 0;
    const reason = describeClose(c);
    if (c.byUser) return { action: "stop", reason, fatal: false };
    if (isSuperseded(c)) return { action: "stop", reason, fatal: false };
    if (c.code === 4001 || c.errorCode === "StoppedByAdmin") return { action: "stop", reason, fatal: true };
    if (c.code === 1008 || isFatalError(c.error, c.errorCode)) return { action: "stop", reason, fatal: true };
    if (c.code === 1000) return { action: "stop", reason, fatal: false };
    if (this.attempts >= this.opts.maxAttempts) {
      return { action: "stop", reason: `${reason} Gave up after ${this.attempts} attempts.`, fatal: true };
    }
    const cap = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** this.attempts);
    // "Full jitter": spreads reconnecting tabs so they do not hit the gateway together.
    const delayMs = Math.round(cap / 2 + (this.random() * cap) / 2);
    this.attempts += 1;
    return { action: "retry", delayMs, attempt: this.attempts, reason };
  }
}

/** Whether an error ends the attempts: by its typed code, or by its text from a gateway without codes. */
export function isFatalError(error: string | undefined, code?: string): boolean {
  if (code) return FATAL_CODES.includes(code);
  if (!error) return false;
  if (/already ?streaming/i.test(error)) return false;
  return FATAL_CODES.some((c) => error.startsWith(c));
}

/**
 * A sentence a user understands for the end of a connection. Never "Error 0": every code and
 * every known server text has words.
 */
export function describeClose(c: CloseInfo): string {
  const e = c.error?.trim();
  if (c.byUser) return "You closed the stream.";
  if (isSuperseded(c)) return "This stream was opened in another tab or on another device, so it stopped here.";
  if (c.code === 4001 || c.errorCode === "StoppedByAdmin") return "An administrator ended this stream.";
  if (e) return describeError(e, c.errorCode);
  switch (c.code) {
    case 1000:
      return "The stream ended on the host.";
    case 1001:
      return "The gateway is restarting or shutting down.";
    case 1005:
    case 1006:
      return "The connection to the gateway dropped.";
    case 1008:
      return "The gateway refused the connection: the credential was not accepted.";
    case 1011:
      return "The gateway hit an internal problem while streaming.";
    case 1013:
      return "The gateway is busy; try again in a moment.";
    default:
      return `The connection closed unexpectedly (WebSocket code ${c.code}).`;
  }
}

/**
 * Words for a server error: by its typed `code`, the text's `<Code>: ` prefix dropped (the rest is
 * the detail). Without a code (an old gateway), the text's first token stands in for it.
 */
export function describeError(text: string, code?: string): string {
  const name = code ?? text.split(":")[0].trim();
  const prefix = `${name}:`;
  const detail = text.startsWith(prefix) ? text.slice(prefix.length).trim() : text === name ? "" : text.trim();
  const tail = detail ? ` (${detail})` : "";
  switch (name) {
    case "Unauthorized":
      return "The gateway did not accept the credential. Sign in again.";
    case "Forbidden":
      return detail ? `Your account may not do this: ${detail}.` : "Your account may not do this.";
    case "HostNotFound":
      return "That host is no longer configured on the gateway." + tail;
    case "HostNotPaired":
      return "The gateway is not paired with this host. Pair it from the host list." + tail;
    case "AppNotFound":
      return "The host does not have this app any more." + tail;
    case "AlreadyStreaming":
      return "The host is busy with another stream; retrying." + tail;
    case "HostUnreachable":
      return "The host cannot be reached. Is it on and on the network? Try Wake-on-LAN." + tail;
    case "SessionNotFound":
      return "There is no stream to join." + tail;
    case "ClientKicked":
      return "Another viewer took over this stream.";
    case "PeerDisconnect":
      return "The gateway ended the WebRTC connection.";
    case "InternalServerError":
      return "The gateway hit an internal problem." + tail;
    default:
      return text.endsWith(".") ? text : text + ".";
  }
}
