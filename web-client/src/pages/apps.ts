import type { AppView, HostStatus } from "../api";
import type { Ctx } from "../main";
import { badge, h } from "../ui";

/** The app grid of one host: box art, launch, resume, quit. */
export async function renderApps(ctx: Ctx, hostId: number, crumb: HTMLElement): Promise<void> {
  const { api, main } = ctx;
  const [hosts, status, apps] = await Promise.all([api.hosts(), api.status(hostId), api.apps(hostId)]);
  if (!ctx.isCurrent()) return;
  const host = hosts.find((x) => x.id === hostId);
  crumb.textContent = host?.name ?? `Host ${hostId}`;
  const grid = h("div", { class: "grid apps", dataset: { testid: "apps" } });
  const running = status.current_app;
  main.append(
    h(
      "div",
      { class: "section-head" },
      h("h1", null, host?.name ?? "Apps"),
      h("div", { class: "row" }, status.online ? badge("online", "ok") : badge("offline", "bad"), running ? badge(`running: ${apps.find((a) => a.id === running)?.title ?? running}`, "info") : null),
    ),
    grid,
  );
  for (const app of apps) grid.append(tile(ctx, hostId, app, status));
}

function tile(ctx: Ctx, hostId: number, app: AppView, status: HostStatus): HTMLElement {
  const art = h("div", { class: "art" }, app.title.slice(0, 1).toUpperCase());
  const isRunning = status.current_app === app.id;
  const launch = () => {
    if (status.current_app && !isRunning) {
      if (!confirm(`Another app is running on the host. Quit it and start ${app.title}?`)) return;
      void ctx.api.cancel(hostId).then(() => ctx.go(`#/stream/${hostId}/${app.id}`));
      return;
    }
    ctx.go(`#/stream/${hostId}/${app.id}`);
  };
  const quit = async (e: Event) => {
    e.stopPropagation();
    await ctx.api.cancel(hostId).catch(() => {});
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  };
  const el = h(
    "div",
    {
      class: `card app-tile${isRunning ? " running" : ""}`,
      tabIndex: 0,
      role: "button",
      title: isRunning ? `Resume ${app.title}` : `Launch ${app.title}`,
      dataset: { testid: "app", appId: String(app.id) },
      onclick: launch,
      onkeydown: (e: KeyboardEvent) => (e.key === "Enter" || e.key === " ") && launch(),
    },
    art,
    h(
      "div",
      { class: "meta" },
      h("span", null, app.title),
      isRunning ? h("span", { class: "row" }, badge("running", "ok"), h("button", { class: "ghost danger", onclick: quit, title: "Quit the app on the host" }, "Quit")) : null,
    ),
  );
  void ctx.api
    .boxart(hostId, app.id)
    .then((blob) => {
      if (!blob.size) return;
      const url = URL.createObjectURL(blob);
      const img = h("img", { alt: app.title, src: url, onload: () => URL.revokeObjectURL(url) });
      art.replaceChildren(img);
    })
    .catch(() => {
      /* no box art: the letter stays */
    });
  return el;
}
