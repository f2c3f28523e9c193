/**
 * The gateway's admin API (`/api/admin/*`, web-server/src/admin) with the admin credential.
 * Every view reads the registry the streams live in, so what the dashboard shows is what streams.
 */
import { authorizedFetch, errorOf, SseParser, type StatusWords } from "../api";

/** A live stream (`GET /api/admin/sessions`). */
export interface AdminSession {
  key: string;
  session_id: string;
  lobby_id: string;
  client_id: string;
  entry_id: number;
  mode: string;
  host_id: number;
  host_name: string | null;
  app_id: number;
  started_at: number;
  uptime_secs: number;
  remote: string | null;
  stopping: boolean;
  threads: number | null;
  rss_kb: number | null;
  pid: number | null;
  fps_in: number;
  fps_out: number;
  bitrate_kbps: number;
  send_queue_ms: number;
  dropped_frames: number;
  idr_requests: number;
  rtt_ms: number;
  video_frames: number;
  first_frame_ms: number | null;
  samples: number;
}

/** A cached client identity (`GET /api/admin/clients`). */
export interface AdminClient {
  client_id: string;
  cn: string | null;
  created_at: number;
  last_used_at: number;
  expires_in_secs: number;
  streams: number;
}

/** A client identity kept in the store for one host (`GET /api/admin/identities`); never its key. */
export interface AdminIdentity {
  host_id: number;
  host_name: string | null;
  client_id: string;
  pairing: "unpaired" | "pairing" | "paired" | "failed";
  created_at: number;
  last_used: number;
  /** Unix seconds: when the idle sweeper removes it if it stays unused. */
  expires_at: number;
}

/** How the host was told to forget a revoked identity. */
export interface Revoked {
  host_id: number;
  client_id: string;
  host_unpair: "wolf_api" | "nvhttp" | "not_done";
}

export interface WolfView {
  location: string;
  sessions: Array<Record<string, unknown>> | null;
  lobbies: Array<Record<string, unknown>> | null;
  pending_pairs: Array<Record<string, unknown>> | null;
  error: string | null;
}

/** A host (`GET /api/admin/hosts`). */
export interface AdminHost {
  id: number;
  name: string;
  address: string;
  http_port: number;
  paired: boolean;
  status: { online: boolean; busy: boolean; current_app: number; hostname: string | null; error: string | null } | null;
  apps: Array<{ id: number; title: string }>;
  streams: number;
  wolf: WolfView | null;
}

/** A captured log line (`GET /api/admin/logs`). */
export interface LogLine {
  seq: number;
  ts_ms: number;
  level: string;
  target: string;
  session: string | null;
  message: string;
  fields: string;
}

/** A named user (`GET /api/admin/users`); never a password hash. */
export interface AdminUser {
  name: string;
  role: "admin" | "user" | "viewer";
  /** Host ids; null: every host. */
  hosts: number[] | null;
  created_at: number;
}

export interface Killed {
  key: string;
  ended: boolean;
  ms: number;
}

const ADMIN_WORDS: StatusWords = {
  401: "The admin credential was not accepted.",
  403: "This is a user credential: the dashboard needs the admin credential (MOONGATE_ADMIN_CREDENTIALS or <data_dir>/admin-credentials).",
};

export class AdminApi {
  constructor(
    readonly credential: string,
    readonly base: string = "",
  ) {}

  private request(method: string, path: string, body?: unknown): Promise<Response> {
    return authorizedFetch(this.base, this.credential, method, path, body, ADMIN_WORDS);
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.request(method, path, body)).json()) as T;
  }

  sessions(): Promise<AdminSession[]> {
    return this.json("GET", "/api/admin/sessions");
  }
  /** Ends a stream through its one teardown path; resolves once it has ended. */
  kill(key: string): Promise<Killed> {
    return this.json("DELETE", `/api/admin/sessions/${encodeURIComponent(key)}`);
  }
  clients(): Promise<AdminClient[]> {
    return this.json("GET", "/api/admin/clients");
  }
  identities(): Promise<AdminIdentity[]> {
    return this.json("GET", "/api/admin/identities");
  }
  /** Unpairs the identity on its host (where the host can be told), then forgets it here. */
  revokeIdentity(hostId: number, clientId: string): Promise<Revoked> {
    return this.json("DELETE", `/api/admin/identities/${hostId}/${encodeURIComponent(clientId)}`);
  }
  hosts(): Promise<AdminHost[]> {
    return this.json("GET", "/api/admin/hosts");
  }
  users(): Promise<AdminUser[]> {
    return this.json("GET", "/api/admin/users");
  }
  addUser(u: { name: string; password: string; role: AdminUser["role"]; hosts: number[] | null }): Promise<AdminUser> {
    return this.json("POST", "/api/admin/users", u);
  }
  /** Changes any of password, role, hosts; the user's sign-ins end. */
  updateUser(name: string, change: { password?: string; role?: AdminUser["role"]; hosts?: number[] | null }): Promise<AdminUser> {
    return this.json("PUT", `/api/admin/users/${encodeURIComponent(name)}`, change);
  }
  async removeUser(name: string): Promise<void> {
    await this.request("DELETE", `/api/admin/users/${encodeURIComponent(name)}`);
  }
  wolf(hostId: number, kind: "sessions" | "lobbies", action: "stop" | "join" | "leave", body: Record<string, unknown>): Promise<unknown> {
    return this.json("POST", `/api/admin/hosts/${hostId}/wolf/${kind}/${action}`, body);
  }

  /**
   * Follows the live log (SSE read with fetch: EventSource cannot send the bearer) until `signal`
   * aborts; `onLine` gets each line, the last `tail` first.
   */
  async logs(session: string | null, tail: number, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
    const q = new URLSearchParams({ tail: String(tail) });
    if (session) q.set("session", session);
    const res = await fetch(`${this.base}/api/admin/logs?${q}`, {
      headers: { Authorization: `Bearer ${this.credential}` },
      signal,
    });
    if (!res.ok || !res.body) throw await errorOf(res, ADMIN_WORDS);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const data of parser.push(value)) {
        try {
          onLine(JSON.parse(data) as LogLine);
        } catch {
          /* a `lagged` notice or keep-alive */
        }
      }
    }
  }
}
