/**
 * The operator's dashboard (admin.html): live sessions with a kill button and small bitrate/fps
 * charts, the client-certificate cache, the stored client identities with a revoke button, hosts with their Wolf sessions, lobbies and pending pair
 * requests, and the live log. Everything comes from `/api/admin/*`, which reads the registry the
 * streams live in. The admin credential is kept for this tab only (sessionStorage).
 */
import "../style.css";
import "./admin.css";
import { ApiError } from "../api";
import { badge, clear, errorBox, h } from "../ui";
import { AdminApi, type AdminClient, type AdminHost, type AdminIdentity, type AdminSession, type LogLine } from "./adminApi";
import { History, sparkline } from "./sparkline";
import { fmtRemaining, revokedText } from "./format";
import { UsersPanel } from "./users";

const ADMIN_KEY = "moongate.admin";
const SESSIONS_EVERY_MS = 1000;
const SLOW_EVERY_MS = 5000;
const LOG_LINES = 500;

function stored(): string | null {
  try {
    return sessionStorage.getItem(ADMIN_KEY);
  } catch {
    return null;
  }
}

function store(v: string | null): void {
  try {
    if (v === null) sessionStorage.removeItem(ADMIN_KEY);
    else sessionStorage.setItem(ADMIN_KEY, v);
  } catch {
    /* private mode: this page only */
  }
}

const root = document.getElementById("admin") as HTMLElement;

function login(message?: string): void {
  const input = h("input", { type: "password", name: "admin-credential", autocomplete: "off", placeholder: "admin credential" });
  const form = h(
    "form",
    {
      class: "card stack",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const api = new AdminApi(input.value.trim());
        try {
          await api.sessions();
          store(api.credential);
          start(api);
        } catch (err) {
          login(err instanceof ApiError ? err.message : String(err));
        }
      },
    },
    h("h1", null, "moongate admin"),
    h("label", null, "Admin credential", input),
    message ? errorBox(message) : null,
    h("button", { class: "primary", type: "submit" }, "Sign in"),
  );
  clear(root, h("main", { class: "page" }, form));
  input.focus();
}

function fmtUptime(s: number): string {
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  return hh > 0 ? `${hh}h${String(mm).padStart(2, "0")}m` : `${mm}m${String(ss).padStart(2, "0")}s`;
}

function fmtMb(kb: number | null): string {
  return kb === null ? "–" : (kb / 1024).toFixed(1);
}

function fmtTime(unix: number): string {
  return new Date(unix * 1000).toLocaleTimeString();
}

function fmtDate(unix: number): string {
  return new Date(unix * 1000).toLocaleString();
}

class Dashboard {
  private bitrate = new History(60);
  private fps = new History(60);
  private stopped = false;
  private logAbort: AbortController | null = null;
  private logFilter: string | null = null;
  private knownKeys: string[] = [];

  readonly error = h("div");
  readonly sessionsBody = h("tbody");
  readonly sessionsCount = h("span", { class: "muted small", id: "sessions-count" });
  readonly clientsBody = h("tbody");
  readonly identitiesBody = h("tbody");
  readonly identitiesNote = h("div", { id: "identities-note", class: "muted small", role: "status" });
  readonly hostsBox = h("div", { class: "grid", id: "hosts" });
  readonly logBox = h("pre", { class: "logs", id: "logs" });
  readonly logSelect = h("select", { id: "log-filter", onchange: () => this.followLogs((this.logSelect as HTMLSelectElement).value || null) });

  readonly users: UsersPanel;

  constructor(readonly api: AdminApi) {
    this.users = new UsersPanel(api, (e) => this.fail(e));
  }

  render(): void {
    const th = (...names: string[]) => h("tr", null, names.map((n) => h("th", null, n)));
    clear(
      root,
      h(
        "header",
        { class: "topbar" },
        h("span", { class: "brand" }, "moongate"),
        h("span", { class: "crumbs" }, "admin"),
        h("span", { class: "spacer" }),
        h(
          "button",
          {
            class: "ghost",
            onclick: () => {
              this.stop();
              store(null);
              login();
            },
          },
          "Sign out",
        ),
      ),
      h(
        "main",
        { class: "page admin-grid" },
        this.error,
        h(
          "section",
          { class: "card" },
          h("div", { class: "section-head" }, h("h2", null, "Sessions"), this.sessionsCount),
          h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "data", id: "sessions" },
              h("thead", null, th("session", "lobby", "client", "mode", "host", "app", "up", "pid", "thr", "RSS MB", "fps in", "fps out", "kbps", "queue ms", "drops", "IDR", "RTT", "charts", "")),
              this.sessionsBody,
            ),
          ),
        ),
        h(
          "section",
          { class: "card" },
          h("h2", null, "Clients"),
          h(
            "div",
            { class: "table-wrap" },
            h("table", { class: "data", id: "clients" }, h("thead", null, th("client id", "CN", "created", "last used", "expires in", "streams")), this.clientsBody),
          ),
        ),
        h(
          "section",
          { class: "card" },
          h("h2", null, "Client identities"),
          h(
            "p",
            { class: "muted small" },
            "Each browser client id gets its own key pair per host; the private keys are encrypted at rest. Unused identities expire; revoking unpairs one on its host and removes it here.",
          ),
          this.identitiesNote,
          h(
            "div",
            { class: "table-wrap" },
            h("table", { class: "data", id: "identities" }, h("thead", null, th("host", "client id", "pairing", "created", "last used", "expires", "")), this.identitiesBody),
          ),
        ),
        this.users.el,
        h("section", null, h("h2", null, "Hosts and lobbies"), this.hostsBox),
        h(
          "section",
          { class: "card stack" },
          h("div", { class: "section-head" }, h("h2", null, "Logs"), h("label", { class: "row" }, "session", this.logSelect)),
          this.logBox,
        ),
      ),
    );
    this.updateLogFilterOptions([]);
  }

  private fail(e: unknown): boolean {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      this.stop();
      store(null);
      login(e.message);
      return true;
    }
    clear(this.error, errorBox(e instanceof Error ? e.message : String(e)));
    return false;
  }

  async start(): Promise<void> {
    this.render();
    this.followLogs(null);
    void this.loop(SESSIONS_EVERY_MS, () => this.refreshSessions());
    void this.loop(SLOW_EVERY_MS, async () => {
      await Promise.all([this.refreshClients(), this.refreshIdentities(), this.refreshHosts(), this.users.refresh()]);
    });
  }

  stop(): void {
    this.stopped = true;
    this.logAbort?.abort();
  }

  /** Runs `f` every `every` ms (never overlapping) until the dashboard stops. */
  private async loop(every: number, f: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      try {
        await f();
      } catch (e) {
        if (this.fail(e)) return;
      }
      await new Promise((r) => setTimeout(r, every));
    }
  }

  async refreshSessions(): Promise<void> {
    const list = await this.api.sessions();
    clear(this.error);
    const keys = new Set(list.map((s) => s.key));
    this.bitrate.retain(keys);
    this.fps.retain(keys);
    this.sessionsCount.textContent = `${list.length} live`;
    if (list.length === 0) {
      clear(this.sessionsBody, h("tr", null, h("td", { colSpan: 19, class: "muted" }, "No live streams.")));
    } else {
      // Rows are kept per key and only their data cells are replaced, so a Kill button under the
      // pointer is not swapped out between a press and its click.
      const rows = new Map<string, HTMLTableRowElement>();
      for (const tr of Array.from(this.sessionsBody.querySelectorAll<HTMLTableRowElement>("tr[data-key]"))) rows.set(tr.dataset.key ?? "", tr);
      const wanted = list.map((s) => this.sessionRow(s, rows.get(s.key)));
      const keep = new Set(wanted);
      for (const tr of Array.from(this.sessionsBody.children)) if (!keep.has(tr as HTMLTableRowElement)) tr.remove();
      wanted.forEach((tr, i) => {
        const at = this.sessionsBody.children[i] ?? null;
        if (at !== tr) this.sessionsBody.insertBefore(tr, at);
      });
    }
    this.updateLogFilterOptions(list.map((s) => s.key));
  }

  private sessionRow(s: AdminSession, existing?: HTMLTableRowElement): HTMLTableRowElement {
    const kbps = this.bitrate.push(s.key, s.bitrate_kbps);
    const fps = this.fps.push(s.key, s.fps_out);
    const num = (v: number | string) => h("td", { class: "num" }, v);
    const fpsChart = sparkline(fps, `fps out ${s.fps_out.toFixed(1)}`);
    fpsChart.classList.add("fps");
    const cells = [
      h("td", { title: s.key }, s.session_id),
      h("td", null, s.lobby_id || "–"),
      h("td", { class: "client" }, s.client_id),
      h("td", null, badge(s.mode, s.mode === "webrtc" ? "info" : "")),
      h("td", null, s.host_name ?? `#${s.host_id}`),
      h("td", null, String(s.app_id)),
      h("td", { title: `started ${fmtTime(s.started_at)}` }, fmtUptime(s.uptime_secs)),
      num(s.pid ?? "–"),
      num(s.threads ?? "–"),
      num(fmtMb(s.rss_kb)),
      num(s.fps_in.toFixed(1)),
      num(s.fps_out.toFixed(1)),
      num(Math.round(s.bitrate_kbps)),
      num(s.send_queue_ms),
      num(s.dropped_frames),
      num(s.idr_requests),
      num(s.rtt_ms ? `${s.rtt_ms} ms` : "–"),
      h("td", null, h("div", { class: "charts" }, sparkline(kbps, `bitrate ${Math.round(s.bitrate_kbps)} kbps`), fpsChart)),
    ];
    if (existing) {
      const kill = existing.lastElementChild;
      existing.replaceChildren(...cells);
      if (kill) existing.append(kill);
      existing.className = s.stopping ? "stopping" : "";
      const button = existing.querySelector<HTMLButtonElement>("button.kill");
      if (button && s.stopping) button.disabled = true;
      return existing;
    }
    return h(
      "tr",
      { class: s.stopping ? "stopping" : "", dataset: { key: s.key } },
      cells,
      h(
        "td",
        null,
        h(
          "button",
          {
            class: "danger kill",
            disabled: s.stopping,
            title: "End this stream (the browser is told an administrator stopped it)",
            onclick: async (e: Event) => {
              (e.currentTarget as HTMLButtonElement).disabled = true;
              try {
                await this.api.kill(s.key);
              } catch (err) {
                this.fail(err);
              }
              await this.refreshSessions().catch((err) => this.fail(err));
            },
          },
          "Kill",
        ),
      ),
    );
  }

  async refreshClients(): Promise<void> {
    const list: AdminClient[] = await this.api.clients();
    clear(
      this.clientsBody,
      list.length === 0
        ? h("tr", null, h("td", { colSpan: 6, class: "muted" }, "No cached client identities."))
        : list.map((c) =>
            h(
              "tr",
              { dataset: { client: c.client_id } },
              h("td", null, c.client_id),
              h("td", null, c.cn ?? "–"),
              h("td", null, fmtTime(c.created_at)),
              h("td", null, fmtTime(c.last_used_at)),
              h("td", null, fmtUptime(c.expires_in_secs)),
              h("td", { class: "num" }, c.streams),
            ),
          ),
    );
  }

  async refreshIdentities(): Promise<void> {
    const list: AdminIdentity[] = await this.api.identities();
    // A row whose Revoke button waits for its confirming click is kept as it is.
    const pending = this.identitiesBody.querySelector("button.confirming");
    if (pending) return;
    clear(
      this.identitiesBody,
      list.length === 0
        ? h("tr", null, h("td", { colSpan: 7, class: "muted" }, "No stored identities."))
        : list.map((i) => this.identityRow(i)),
    );
  }

  private identityRow(i: AdminIdentity): HTMLElement {
    const revoke = h(
      "button",
      {
        class: "danger revoke",
        title: "Unpair this identity on its host and delete its key here",
        onclick: async (e: Event) => {
          const b = e.currentTarget as HTMLButtonElement;
          // Two clicks: the first arms the button, the second revokes.
          if (!b.classList.contains("confirming")) {
            b.classList.add("confirming");
            b.textContent = "Confirm revoke";
            return;
          }
          b.disabled = true;
          try {
            const r = await this.api.revokeIdentity(i.host_id, i.client_id);
            this.identitiesNote.textContent = revokedText(r);
          } catch (err) {
            this.fail(err);
          }
          b.classList.remove("confirming");
          await this.refreshIdentities().catch((err) => this.fail(err));
        },
      },
      "Revoke",
    );
    const pairing = i.pairing === "paired" ? badge("paired", "ok") : badge(i.pairing, i.pairing === "failed" ? "bad" : "warn");
    return h(
      "tr",
      { dataset: { host: String(i.host_id), client: i.client_id } },
      h("td", null, i.host_name ?? `#${i.host_id}`),
      h("td", { class: "client" }, i.client_id),
      h("td", null, pairing),
      h("td", null, fmtDate(i.created_at)),
      h("td", null, fmtDate(i.last_used)),
      h("td", { title: fmtDate(i.expires_at) }, fmtRemaining(i.expires_at - Math.floor(Date.now() / 1000))),
      h("td", null, revoke),
    );
  }

  async refreshHosts(): Promise<void> {
    const list: AdminHost[] = await this.api.hosts();
    clear(this.hostsBox, list.length === 0 ? h("p", { class: "muted" }, "No hosts.") : list.map((host) => this.hostCard(host)));
  }

  private hostCard(host: AdminHost): HTMLElement {
    const st = host.status;
    const wolf = host.wolf;
    const act = async (kind: "sessions" | "lobbies", action: "stop" | "join" | "leave", body: Record<string, unknown>) => {
      try {
        await this.api.wolf(host.id, kind, action, body);
      } catch (e) {
        this.fail(e);
      }
      await this.refreshHosts().catch((e) => this.fail(e));
    };
    const str = (v: unknown) => (v === undefined || v === null ? "" : String(v));
    return h(
      "div",
      { class: "card host-card", dataset: { host: String(host.id) } },
      h("div", { class: "title" }, h("h3", null, host.name), h("span", { class: "addr" }, `${host.address}:${host.http_port}`)),
      h(
        "div",
        { class: "row" },
        st?.online ? badge("online", "ok") : badge(st?.error ? "offline" : "unknown", "bad"),
        host.paired ? badge("paired", "ok") : badge("not paired", "warn"),
        st?.busy ? badge("busy", "info") : null,
        badge(`${host.streams} streams`, host.streams ? "info" : ""),
      ),
      host.apps.length ? h("div", { class: "muted small" }, "apps: ", host.apps.map((a) => `${a.title} (${a.id})`).join(", ")) : null,
      wolf
        ? h(
            "div",
            { class: "wolf" },
            wolf.error ? errorBox(`Wolf API: ${wolf.error}`) : null,
            h("h3", null, "Wolf sessions"),
            ...(wolf.sessions ?? []).map((s) =>
              h(
                "div",
                { class: "row small" },
                h("code", null, str(s.client_id)),
                h("span", null, str(s.client_unique_id ?? "")),
                h("span", { class: "muted" }, s.app_id ? `app ${str(s.app_id)}` : ""),
                h("span", { class: "muted" }, str(s.client_ip ?? "")),
                // Wolf names a stream session by its `client_id`.
                h("button", { class: "danger", onclick: () => act("sessions", "stop", { session_id: str(s.client_id) }) }, "Stop"),
              ),
            ),
            (wolf.sessions ?? []).length === 0 ? h("div", { class: "muted small" }, "none") : null,
            h("h3", null, "Lobbies"),
            ...(wolf.lobbies ?? []).map((l) => {
              const sid = h("input", { placeholder: "moonlight session id", class: "small" });
              return h(
                "div",
                { class: "row small" },
                h("code", null, str(l.id ?? l.lobby_id)),
                h("span", null, str(l.name)),
                sid,
                h("button", { onclick: () => act("lobbies", "join", { lobby_id: str(l.id ?? l.lobby_id), moonlight_session_id: sid.value }) }, "Join"),
                h("button", { class: "danger", onclick: () => act("lobbies", "stop", { lobby_id: str(l.id ?? l.lobby_id) }) }, "Stop"),
              );
            }),
            (wolf.lobbies ?? []).length === 0 ? h("div", { class: "muted small" }, "none") : null,
            h("h3", null, "Pending pair requests"),
            h("div", { class: "muted small" }, (wolf.pending_pairs ?? []).length ? (wolf.pending_pairs ?? []).map((p) => str(p.client_ip ?? JSON.stringify(p))).join(", ") : "none"),
          )
        : null,
    );
  }

  private updateLogFilterOptions(keys: string[]): void {
    const sel = this.logSelect as HTMLSelectElement;
    const all = Array.from(new Set([...keys, ...(this.logFilter ? [this.logFilter] : [])])).sort();
    if (all.join("\n") === this.knownKeys.join("\n") && sel.options.length > 0) return;
    this.knownKeys = all;
    clear(sel, h("option", { value: "" }, "all"), all.map((k) => h("option", { value: k }, k)));
    sel.value = this.logFilter ?? "";
  }

  /** (Re)opens the live log stream, filtered by `session` (null = all). */
  followLogs(session: string | null): void {
    this.logAbort?.abort();
    this.logFilter = session;
    const abort = new AbortController();
    this.logAbort = abort;
    clear(this.logBox);
    const onLine = (l: LogLine) => {
      const line = h(
        "div",
        { class: l.level },
        `${new Date(l.ts_ms).toLocaleTimeString()} ${l.level.toUpperCase().padEnd(5)} `,
        l.session ? h("span", { class: "sess" }, `[${l.session}] `) : null,
        `${l.target}: ${l.message}${l.fields ? " " + l.fields : ""}`,
      );
      const atBottom = this.logBox.scrollTop + this.logBox.clientHeight >= this.logBox.scrollHeight - 4;
      this.logBox.append(line);
      while (this.logBox.childElementCount > LOG_LINES) this.logBox.firstElementChild?.remove();
      if (atBottom) this.logBox.scrollTop = this.logBox.scrollHeight;
    };
    this.api.logs(session, 200, onLine, abort.signal).catch((e) => {
      if (!abort.signal.aborted) this.fail(e);
    });
  }
}

let current: Dashboard | null = null;

function start(api: AdminApi): void {
  current?.stop();
  current = new Dashboard(api);
  void current.start();
}

const saved = stored();
if (saved) start(new AdminApi(saved));
else login();
