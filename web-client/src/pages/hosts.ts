import { ApiError, type HostStatus, type HostView } from "../api";
import type { Ctx } from "../main";
import { badge, clear, errorBox, h } from "../ui";
import { addHostBody, pairingPolicy, wolfApiError } from "./hostForm";

/** The host list: status badges (online, paired, busy, current app), add, remove, pair, wake. */
export async function renderHosts(ctx: Ctx): Promise<void> {
  const { api, main } = ctx;
  const grid = h("div", { class: "grid", dataset: { testid: "hosts" } });
  main.append(
    h("div", { class: "section-head" }, h("h1", null, "Hosts"), h("button", { class: "primary", onclick: () => addHostDialog(ctx) }, "Add host")),
    grid,
  );
  const hosts = await api.hosts();
  if (!ctx.isCurrent()) return;
  if (!hosts.length) {
    grid.append(h("div", { class: "card muted" }, "No host yet. Add one with its address (the machine running Sunshine or Wolf)."));
  }
  for (const host of hosts) grid.append(hostCard(ctx, host));
}

function hostCard(ctx: Ctx, host: HostView): HTMLElement {
  const badges = h("div", { class: "row" }, badge("checking…"));
  const actions = h("div", { class: "row" });
  const note = h("div");
  const card = h(
    "div",
    { class: "card host-card", dataset: { testid: "host", hostId: String(host.id) } },
    h("div", { class: "title" }, h("h2", { style: "margin:0" }, host.name), h("span", { class: "addr" }, `${host.address}:${host.http_port}`)),
    host.wolf_api ? h("div", { class: "muted", style: "font-size:.85rem", dataset: { testid: "wolf-api" } }, `Wolf API: ${host.wolf_api}`) : null,
    badges,
    note,
    actions,
  );
  const refresh = async () => {
    let st: HostStatus;
    try {
      st = await ctx.api.status(host.id);
    } catch (e) {
      st = { online: false, paired: host.paired, busy: false, current_app: 0, app_version: null, hostname: null, error: e instanceof Error ? e.message : String(e) };
    }
    clear(badges,
      st.online ? badge("online", "ok") : badge("offline", "bad"),
      st.paired ? badge("paired", "ok") : badge("not paired", "warn"),
      st.busy || st.current_app ? badge(st.current_app ? `running app ${st.current_app}` : "busy", "info") : null,
    );
    card.dataset.online = String(st.online);
    card.dataset.paired = String(st.paired);
    note.replaceChildren(
      !st.online && st.error
        ? h("div", { class: "muted", style: "font-size:.85rem" }, st.error)
        : h("div", { class: "muted", style: "font-size:.85rem" }, [st.hostname, st.app_version && `version ${st.app_version}`].filter(Boolean).join(" · ")),
    );
    clear(actions,
      st.online && st.paired ? h("a", { class: "btn primary", href: `#/hosts/${host.id}`, dataset: { testid: "open-host" } }, "Open") : null,
      st.online && !st.paired ? h("button", { class: "primary", onclick: () => pairDialog(ctx, host, refresh) }, "Pair") : null,
      !st.online && host.mac ? h("button", { onclick: () => wake(ctx, host, note, refresh) }, "Wake") : null,
      h("button", { class: "ghost", title: "Check again", onclick: () => void refresh() }, "↻"),
      h("span", { class: "spacer", style: "flex:1" }),
      h("button", { class: "ghost danger", onclick: () => removeHost(ctx, host, card) }, "Remove"),
    );
  };
  void refresh();
  // Keep the badges current while this page is shown (a host waking up, a stream starting).
  const timer = setInterval(() => {
    if (!ctx.isCurrent() || !card.isConnected) clearInterval(timer);
    else void refresh();
  }, 10000);
  return card;
}

async function wake(ctx: Ctx, host: HostView, note: HTMLElement, refresh: () => Promise<void>): Promise<void> {
  try {
    await ctx.api.wake(host.id);
    note.replaceChildren(h("div", { class: "notice info" }, "Wake-on-LAN packet sent. The host may take a minute to start."));
    for (let i = 0; i < 12 && ctx.isCurrent(); i++) {
      await new Promise((r) => setTimeout(r, 5000));
      await refresh();
    }
  } catch (e) {
    note.replaceChildren(errorBox(e instanceof Error ? e.message : String(e)));
  }
}

async function removeHost(ctx: Ctx, host: HostView, card: HTMLElement): Promise<void> {
  if (!confirm(`Remove ${host.name}? You will have to pair again to use it.`)) return;
  try {
    await ctx.api.removeHost(host.id);
    card.remove();
  } catch (e) {
    card.append(errorBox(e instanceof Error ? e.message : String(e)));
  }
}

function addHostDialog(ctx: Ctx): void {
  const name = h("input", { name: "name", placeholder: "Living room PC" });
  const address = h("input", { name: "address", placeholder: "192.168.1.20 or host.local", required: true });
  const port = h("input", { name: "http_port", type: "number", placeholder: "47989", min: 1, max: 65535 });
  const mac = h("input", { name: "mac", placeholder: "aa:bb:cc:dd:ee:ff (for Wake-on-LAN)" });
  const wolfApi = h("input", { name: "wolf_api", placeholder: "/var/run/wolf/wolf.sock or http://host:port" });
  const err = h("div");
  const dlg = h(
    "dialog",
    null,
    h(
      "form",
      {
        class: "stack",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const bad = wolfApiError(wolfApi.value);
          if (bad) {
            err.replaceChildren(errorBox(bad));
            return;
          }
          try {
            await ctx.api.addHost(
              addHostBody({ address: address.value, name: name.value, httpPort: port.value, mac: mac.value, wolfApi: wolfApi.value }),
            );
            dlg.close();
            dlg.remove();
            ctx.go("#/");
            window.dispatchEvent(new HashChangeEvent("hashchange"));
          } catch (x) {
            err.replaceChildren(errorBox(x instanceof Error ? x.message : String(x)));
          }
        },
      },
      h("h2", null, "Add a host"),
      h("label", null, "Address", address),
      h("label", null, "Name (optional)", name),
      h("label", null, "HTTP port (optional)", port),
      h("label", null, "MAC address (optional)", mac),
      h("label", null, "Wolf API (optional: lets every browser pair its own identity)", wolfApi),
      err,
      h("div", { class: "row", style: "justify-content:flex-end" }, h("button", { type: "button", onclick: () => (dlg.close(), dlg.remove()) }, "Cancel"), h("button", { class: "primary", type: "submit" }, "Add")),
    ),
  );
  document.body.append(dlg);
  dlg.showModal();
}

/** Pairing: shows the PIN to enter on the host and follows the progress until it ends. */
async function pairDialog(ctx: Ctx, host: HostView, refresh: () => Promise<void>): Promise<void> {
  const body = h("div", { class: "stack" }, h("div", { class: "row" }, h("span", { class: "spinner" }), "Starting pairing…"));
  const abort = new AbortController();
  const closeBtn = h("button", { onclick: () => (abort.abort(), dlg.close(), dlg.remove(), void refresh()) }, "Close");
  const dlg = h("dialog", { dataset: { testid: "pair-dialog" } }, h("h2", null, `Pair with ${host.name}`), body, h("div", { class: "row", style: "justify-content:flex-end;margin-top:1rem" }, closeBtn));
  document.body.append(dlg);
  dlg.showModal();
  try {
    const started = await ctx.api.pair(host.id);
    const status = h("div", { class: "row muted" }, h("span", { class: "spinner" }), "Waiting for the PIN to be entered on the host…");
    body.replaceChildren(
      h("p", { style: "margin:0" }, "Enter this PIN on the host (in Sunshine's web UI, Wolf's pairing page, or the host's prompt):"),
      h("p", { class: "muted", style: "margin:0;font-size:.85rem", dataset: { testid: "pairing-policy" } }, pairingPolicy(host)),
      h("div", { class: "pin", dataset: { testid: "pin" } }, started.pin),
      status,
    );
    const final = await ctx.api.pairEvents(host.id, () => {}, abort.signal);
    if (final.state === "paired") {
      status.replaceChildren(h("span", { class: "badge ok" }, "paired"), " Done — the host is ready.");
      closeBtn.textContent = "Done";
    } else if (final.state === "failed") {
      status.replaceChildren(errorBox(final.message));
    } else {
      status.replaceChildren(errorBox("The pairing was cancelled (the host was removed or another pairing started)."));
    }
  } catch (e) {
    if (abort.signal.aborted) return;
    const msg = e instanceof ApiError || e instanceof Error ? e.message : String(e);
    body.replaceChildren(errorBox(msg));
  }
}
