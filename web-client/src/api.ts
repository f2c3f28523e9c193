/**
 * The gateway's REST API (web-server/src/api) with the bearer credential. Shared by the client
 * (index.html) and the admin dashboard (admin.html): one place keeps the credential and turns every
 * failure into a sentence a user understands.
 */

const CREDENTIAL_KEY = "moongate.credential";

/** A failed API call, with the gateway's stable `code` and a human message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface HostView {
  id: number;
  name: string;
  address: string;
  http_port: number;
  https_port: number | null;
  mac: string | null;
  paired: boolean;
  added_at: number;
  /** Wolf API (socket path or http://host:port); null: streams use the PIN-paired identity. */
  wolf_api: string | null;
}

export interface HostStatus {
  online: boolean;
  paired: boolean;
  busy: boolean;
  current_app: number;
  app_version: string | null;
  hostname: string | null;
  error: string | null;
}

export interface AppView {
  id: number;
  title: string;
  hdr_supported: boolean;
}

export interface AddHost {
  name?: string;
  address: string;
  http_port?: number;
  https_port?: number;
  mac?: string;
  /** Wolf API: a Unix socket path or http://host:port (optional). */
  wolf_api?: string;
}

export interface PairStarted {
  pin: string;
  events: string;
}

export type PairProgress =
  | { state: "waiting_for_pin" }
  | { state: "paired" }
  | { state: "failed"; code: string; message: string }
  | { state: "cancelled" };

export interface SessionInfo {
  key: string;
  session_id: string;
  lobby_id: string;
  client_id: string;
  entry_id: number;
  started_at: number;
  host_id: number;
  app_id: number;
  mode: string;
  remote: string | null;
}

/** Who a credential belongs to (`GET /api/auth/me`): a named user, or a shared credential. */
export interface Me {
  user: string | null;
  role: "admin" | "user" | "viewer";
  /** The hosts this account may use; null: every host. */
  hosts: number[] | null;
}

/** A named user's sign-in (`POST /api/auth/login`): the token is then the credential. */
export interface SignedIn extends Me {
  token: string;
  /** Unix seconds. */
  expires_at: number;
}

const SIGN_IN_WORDS: StatusWords = {
  401: "Wrong user name or password.",
  429: "Too many failed sign-ins. Wait a few minutes, then try again.",
};

/** Signs a named user in; the returned token is used as the credential from then on. */
export async function signIn(username: string, password: string, base = ""): Promise<SignedIn> {
  let res: Response;
  try {
    res = await fetch(base + "/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The gateway cannot be reached. Check that moongate is running and the network is up.");
  }
  if (!res.ok) throw await errorOf(res, SIGN_IN_WORDS);
  return (await res.json()) as SignedIn;
}

/** The sign-in methods besides the credential and user accounts (`GET /api/auth/providers`). */
export interface AuthProviders {
  /** An OpenID Connect provider: its button label. */
  oidc: { name: string } | null;
}

/** Where the sign-in button sends the browser: the gateway redirects it on to the provider. */
export const OIDC_START = "/api/auth/oidc/start";

/** What the gateway offers (no credential needed); none when it cannot say (an older gateway). */
export async function authProviders(base = ""): Promise<AuthProviders> {
  try {
    const res = await fetch(base + "/api/auth/providers");
    if (!res.ok) return { oidc: null };
    const body = (await res.json()) as Partial<AuthProviders>;
    return { oidc: body.oidc && typeof body.oidc.name === "string" ? { name: body.oidc.name } : null };
  } catch {
    return { oidc: null };
  }
}

/** The end of an identity provider sign-in, from the gateway's redirect to the page. */
export type SsoResult = { token: string } | { error: string };

/**
 * Reads `#/sso/<token>` or `#/sso-error/<percent-encoded reason>` (hash path segments, as the
 * router splits them); null for any other route. A token is the sign-in token of a named user.
 */
export function ssoRoute(parts: string[]): SsoResult | null {
  if (parts[0] === "sso" && parts.length === 2 && /^[0-9A-Za-z_-]+$/.test(parts[1])) return { token: parts[1] };
  if (parts[0] === "sso" || (parts[0] === "sso-error" && parts.length === 1)) {
    return { error: "The sign-in link is not valid. Sign in again." };
  }
  if (parts[0] !== "sso-error") return null;
  const raw = parts.slice(1).join("/");
  let reason: string;
  try {
    reason = decodeURIComponent(raw);
  } catch {
    reason = raw;
  }
  return { error: `The sign-in through the identity provider failed: ${reason}` };
}

/** The stored credential (per browser), or null. */
export function storedCredential(): string | null {
  try {
    return localStorage.getItem(CREDENTIAL_KEY);
  } catch {
    return null;
  }
}

export function storeCredential(value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(CREDENTIAL_KEY);
    else localStorage.setItem(CREDENTIAL_KEY, value);
  } catch {
    /* private mode: the credential lives for this page only */
  }
}

/** A REST client bound to one credential and base URL (default: this page's origin). */
export class Api {
  constructor(
    readonly credential: string,
    readonly base: string = "",
  ) {}

  private request(method: string, path: string, body?: unknown): Promise<Response> {
    return authorizedFetch(this.base, this.credential, method, path, body);
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return (await res.json()) as T;
  }

  /** Checks the credential (any authenticated route). */
  async check(): Promise<void> {
    await this.request("GET", "/api/hosts");
  }
  hosts(): Promise<HostView[]> {
    return this.json("GET", "/api/hosts");
  }
  me(): Promise<Me> {
    return this.json("GET", "/api/auth/me");
  }
  /** Ends a named user's sign-in on the gateway (a shared credential has none: nothing to do). */
  async signOut(): Promise<void> {
    const me = await this.me().catch(() => null);
    if (me?.user) await this.request("POST", "/api/auth/logout").catch(() => undefined);
  }
  addHost(h: AddHost): Promise<HostView> {
    return this.json("POST", "/api/hosts", h);
  }
  async removeHost(id: number): Promise<void> {
    await this.request("DELETE", `/api/hosts/${id}`);
  }
  status(id: number): Promise<HostStatus> {
    return this.json("GET", `/api/hosts/${id}/status`);
  }
  async wake(id: number): Promise<void> {
    await this.request("POST", `/api/hosts/${id}/wake`);
  }
  pair(id: number): Promise<PairStarted> {
    return this.json("POST", `/api/hosts/${id}/pair`);
  }
  apps(id: number): Promise<AppView[]> {
    return this.json("GET", `/api/hosts/${id}/apps`);
  }
  async boxart(id: number, app: number): Promise<Blob> {
    return (await this.request("GET", `/api/hosts/${id}/apps/${app}/boxart`)).blob();
  }
  async cancel(id: number): Promise<void> {
    await this.request("POST", `/api/hosts/${id}/cancel`);
  }
  sessions(): Promise<SessionInfo[]> {
    return this.json("GET", "/api/sessions");
  }

  /**
   * Follows `GET /api/hosts/{id}/pair/events` (SSE; EventSource cannot send the bearer, so the
   * body is read with fetch). Calls `onProgress` for each state; resolves with the final one.
   */
  async pairEvents(id: number, onProgress: (p: PairProgress) => void, signal?: AbortSignal): Promise<PairProgress> {
    const res = await fetch(`${this.base}/api/hosts/${id}/pair/events`, {
      headers: { Authorization: `Bearer ${this.credential}` },
      signal,
    }).catch(() => {
      throw new ApiError(0, "unreachable", "Lost the connection to the gateway while pairing.");
    });
    if (!res.ok || !res.body) throw await errorOf(res);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    let last: PairProgress | null = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const data of parser.push(value)) {
        try {
          last = JSON.parse(data) as PairProgress;
        } catch {
          continue;
        }
        onProgress(last);
      }
    }
    if (!last) throw new ApiError(0, "pairing_failed", "The pairing ended without a result.");
    return last;
  }
}

/** Splits a text/event-stream into the `data` of each event. */
export class SseParser {
  private buf = "";
  push(chunk: string): string[] {
    this.buf += chunk.replace(/\r\n?/g, "\n");
    const out: string[] = [];
    let end: number;
    while ((end = this.buf.indexOf("\n\n")) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const data = block
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) out.push(data);
    }
    return out;
  }
}

/** What a status means to the person reading the page, where the gateway's own words fall short. */
export type StatusWords = Partial<Record<number, string>>;

const USER_WORDS: StatusWords = {
  401: "The credential was not accepted. Check it and sign in again.",
};

/**
 * One request with the bearer credential (JSON body if given). A network failure or a non-2xx
 * answer becomes an ApiError in words (`words` first, then the gateway's message).
 */
export async function authorizedFetch(
  base: string,
  credential: string,
  method: string,
  path: string,
  body?: unknown,
  words: StatusWords = USER_WORDS,
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(base + path, {
      method,
      headers: {
        Authorization: `Bearer ${credential}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The gateway cannot be reached. Check that moongate is running and the network is up.");
  }
  if (!res.ok) throw await errorOf(res, words);
  return res;
}

/** The ApiError of a failed answer: `words` for its status if given, else the gateway's message. */
export async function errorOf(res: Response, words: StatusWords = USER_WORDS): Promise<ApiError> {
  let code = "http_" + res.status;
  let message = "";
  try {
    const body = (await res.json()) as { code?: string; message?: string };
    code = body.code ?? code;
    message = body.message ?? "";
  } catch {
    /* not JSON */
  }
  const said = words[res.status];
  if (said) return new ApiError(res.status, code, said);
  if (!message) message = `The gateway answered ${res.status} ${res.statusText || ""}`.trim() + ".";
  return new ApiError(res.status, code, message);
}
