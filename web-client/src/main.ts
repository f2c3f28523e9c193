/**
 * The moongate web client: sign-in, hosts, pairing, apps, settings, stream view. Hash routes
 * (`#/`, `#/hosts/<id>`, `#/settings`, `#/stream/<host>/<app>`, `#/watch/<stream>/<token>`) so a
 * reload stays where it was, a watch link is a plain URL, and the gateway only has to serve
 * index.html. The gateway's identity provider sign-in ends on `#/sso/<token>` (stored, then
 * replaced in the history so the token is not kept there) or `#/sso-error/<reason>`.
 */
import "./style.css";
import { Api, ApiError, ssoRoute, storeCredential, storedCredential } from "./api";
import { renderApps } from "./pages/apps";
import { renderHosts } from "./pages/hosts";
import { renderLogin } from "./pages/login";
import { renderSettings } from "./pages/settings";
import { clientId, loadSettings } from "./settings";
import { StreamView } from "./stream/view";
import { watchRoute, type WatchTarget } from "./stream/viewers";
import { clear, errorBox, h } from "./ui";

const app = document.getElementById("app")!;
let stream: StreamView | null = null;
/** Bumped on every navigation, so a slow page load does not draw over a newer page. */
let generation = 0;

export interface Ctx {
  api: Api;
  main: HTMLElement;
  isCurrent(): boolean;
  go(hash: string): void;
}

function topbar(api: Api | null, crumbs: (Node | string)[]): HTMLElement {
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/", style: "color:inherit;text-decoration:none" }, "moongate"),
    h("nav", { class: "crumbs" }, crumbs),
    h("span", { class: "spacer" }),
    api && whoAmI(api),
    api && h("a", { class: "btn", href: "#/settings", dataset: { testid: "nav-settings" } }, "Settings"),
    api &&
      h(
        "button",
        {
          class: "ghost",
          onclick: async () => {
            await api.signOut();
            storeCredential(null);
            location.hash = "#/login";
          },
        },
        "Sign out",
      ),
  );
}

/** The signed-in user's name and role (empty for a shared credential), filled in when known. */
function whoAmI(api: Api): HTMLElement {
  const el = h("span", { class: "muted small", dataset: { testid: "whoami" } });
  api
    .me()
    .then((me) => {
      if (me.user) el.textContent = me.role === "user" ? me.user : `${me.user} (${me.role})`;
    })
    .catch(() => undefined);
  return el;
}

async function route(): Promise<void> {
  const gen = ++generation;
  stream?.destroy();
  stream = null;
  const hash = location.hash.replace(/^#/, "") || "/";
  const credential = storedCredential();
  const main = h("main", { class: "page" });
  const go = (to: string) => {
    location.hash = to;
  };
  const parts = hash.split("/").filter(Boolean);
  const watch = parts[0] === "watch" ? watchRoute(parts[1], parts[2]) : null;
  // Signing in from a watch link goes on to the stream (the hash stays, so no hashchange follows).
  const signedIn = (c: string) => {
    storeCredential(c);
    if (watch) void route();
    else go("#/");
  };
  const sso = ssoRoute(parts);
  if (sso && "token" in sso) {
    storeCredential(sso.token);
    location.replace("#/");
    return;
  }
  if (sso) {
    clear(app, topbar(null, []), main);
    renderLogin(main, signedIn, sso.error);
    return;
  }
  if (!credential || hash === "/login") {
    clear(app, topbar(null, []), main);
    renderLogin(main, signedIn);
    return;
  }
  const api = new Api(credential);
  const ctx: Ctx = { api, main, go, isCurrent: () => gen === generation };
  try {
    if (parts[0] === "settings") {
      clear(app, topbar(api, [h("span", null, "Settings")]), main);
      await renderSettings(ctx);
    } else if (parts[0] === "hosts" && parts[1]) {
      const crumb = h("span", null);
      clear(app, topbar(api, [h("a", { href: "#/" }, "Hosts"), " / ", crumb]), main);
      await renderApps(ctx, Number(parts[1]), crumb);
    } else if (parts[0] === "stream" && parts[1] && parts[2]) {
      await openStream(ctx, Number(parts[1]), Number(parts[2]));
    } else if (watch) {
      watchStream(ctx, watch);
    } else {
      clear(app, topbar(api, [h("span", null, "Hosts")]), main);
      await renderHosts(ctx);
    }
  } catch (e) {
    if (!ctx.isCurrent()) return;
    if (e instanceof ApiError && e.status === 401) {
      storeCredential(null);
      clear(app, topbar(null, []), main);
      renderLogin(main, signedIn, e.message);
      return;
    }
    main.append(errorBox(e instanceof Error ? e.message : String(e)));
  }
}

async function openStream(ctx: Ctx, hostId: number, appId: number): Promise<void> {
  clear(app, h("div", { class: "stream" }, h("div", { class: "status" }, h("div", { class: "row" }, h("span", { class: "spinner" }), "Preparing the stream…"))));
  const hosts = await ctx.api.hosts();
  const hostIndex = hosts.findIndex((x) => x.id === hostId);
  if (hostIndex < 0) throw new ApiError(404, "host_not_found", "This host is no longer configured on the gateway.");
  const apps = await ctx.api.apps(hostId).catch(() => []);
  const appView = apps.find((a) => a.id === appId) ?? { id: appId, title: `App ${appId}`, hdr_supported: false };
  if (!ctx.isCurrent()) return;
  const view = new StreamView({
    api: ctx.api,
    host: hosts[hostIndex],
    hostIndex,
    app: appView,
    settings: loadSettings(),
    clientUniqueId: clientId(),
    exit: () => {
      if (stream === view) stream = null;
      ctx.go(`#/hosts/${hostId}`);
    },
  });
  stream = view;
  clear(app, view.root);
  document.title = `${appView.title} · moongate`;
  view.start();
}

/** Joins another member's stream from its watch link (browser-protocol §8). */
function watchStream(ctx: Ctx, target: WatchTarget): void {
  const view = new StreamView({
    api: ctx.api,
    watch: target,
    // A watcher sends no init: the settings' resolution, codec and mode do not apply.
    settings: loadSettings(),
    clientUniqueId: clientId(),
    exit: () => {
      if (stream === view) stream = null;
      ctx.go("#/");
    },
  });
  stream = view;
  clear(app, view.root);
  document.title = "Watching · moongate";
  view.start();
}

window.addEventListener("hashchange", () => void route());
void route();
