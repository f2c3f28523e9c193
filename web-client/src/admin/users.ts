/**
 * The dashboard's Users card: named users (web-server/src/users) listed, added, changed and
 * removed through `/api/admin/users`. A user limited to some hosts is shown with their ids; a
 * change ends the user's sign-ins on the gateway, so the new role holds at once.
 */
import { badge, clear, errorBox, h } from "../ui";
import type { AdminApi, AdminUser } from "./adminApi";
import { parseHostList } from "./format";

export class UsersPanel {
  readonly body = h("tbody", { id: "users-body" });
  readonly note = h("div");
  readonly el: HTMLElement;
  /** What the table shows, so a refresh that changes nothing leaves an open select alone. */
  private shown = "";

  constructor(
    private readonly api: AdminApi,
    private readonly fail: (e: unknown) => boolean,
  ) {
    const th = (...names: string[]) => h("tr", null, names.map((n) => h("th", null, n)));
    this.el = h(
      "section",
      { class: "card stack" },
      h("h2", null, "Users"),
      h("p", { class: "muted small" }, "Named accounts sign in with a password on the main page. Viewers may look but not start or change anything; a host list limits what a user sees and streams."),
      this.note,
      h("div", { class: "table-wrap" }, h("table", { class: "data", id: "users" }, h("thead", null, th("name", "role", "hosts", "created", "")), this.body)),
      this.addForm(),
    );
  }

  private addForm(): HTMLElement {
    const name = h("input", { name: "user-name", placeholder: "name", required: true, dataset: { testid: "user-name" } }) as HTMLInputElement;
    const password = h("input", { name: "user-password", type: "password", placeholder: "password (8+)", required: true, autocomplete: "new-password", dataset: { testid: "user-password" } }) as HTMLInputElement;
    const role = roleSelect("user");
    role.dataset.testid = "user-role";
    const hosts = h("input", { name: "user-hosts", placeholder: "host ids (empty: all)", dataset: { testid: "user-hosts" } }) as HTMLInputElement;
    return h(
      "form",
      {
        class: "row",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const list = parseHostList(hosts.value);
          if (list === undefined) {
            clear(this.note, errorBox("Host ids are whole numbers separated by commas."));
            return;
          }
          try {
            await this.api.addUser({ name: name.value.trim(), password: password.value, role: role.value as AdminUser["role"], hosts: list });
            clear(this.note, h("div", { class: "muted small", role: "status" }, `Added ${name.value.trim()}.`));
            name.value = password.value = hosts.value = "";
            await this.refresh();
          } catch (x) {
            if (!this.fail(x)) clear(this.note, errorBox(x instanceof Error ? x.message : String(x)));
          }
        },
      },
      name,
      password,
      role,
      hosts,
      h("button", { class: "primary", type: "submit", dataset: { testid: "add-user" } }, "Add user"),
    );
  }

  async refresh(): Promise<void> {
    const users = await this.api.users();
    const text = JSON.stringify(users);
    if (text === this.shown) return;
    this.shown = text;
    if (users.length === 0) {
      clear(this.body, h("tr", null, h("td", { colSpan: 5, class: "muted" }, "No named users: the shared credentials only.")));
      return;
    }
    clear(this.body, ...users.map((u) => this.row(u)));
  }

  private row(u: AdminUser): HTMLElement {
    const role = roleSelect(u.role);
    role.onchange = () => this.change(u.name, { role: role.value as AdminUser["role"] });
    return h(
      "tr",
      { dataset: { user: u.name } },
      h("td", null, u.name),
      h("td", null, role),
      h("td", null, u.hosts === null ? badge("all", "") : u.hosts.join(", ") || "none"),
      h("td", null, new Date(u.created_at * 1000).toLocaleDateString()),
      h(
        "td",
        null,
        h(
          "button",
          {
            class: "ghost danger",
            onclick: async () => {
              try {
                await this.api.removeUser(u.name);
                clear(this.note, h("div", { class: "muted small", role: "status" }, `Removed ${u.name}.`));
                await this.refresh();
              } catch (x) {
                if (!this.fail(x)) clear(this.note, errorBox(x instanceof Error ? x.message : String(x)));
              }
            },
          },
          "Remove",
        ),
      ),
    );
  }

  private async change(name: string, change: { role?: AdminUser["role"] }): Promise<void> {
    try {
      await this.api.updateUser(name, change);
      clear(this.note, h("div", { class: "muted small", role: "status" }, `Changed ${name}; their sign-ins ended.`));
      await this.refresh();
    } catch (x) {
      if (!this.fail(x)) clear(this.note, errorBox(x instanceof Error ? x.message : String(x)));
    }
  }
}

function roleSelect(value: AdminUser["role"]): HTMLSelectElement {
  const s = h("select", null, ["user", "viewer", "admin"].map((r) => h("option", { value: r }, r))) as HTMLSelectElement;
  s.value = value;
  return s;
}
