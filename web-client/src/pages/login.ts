import { Api } from "../api";
import { errorBox, h } from "../ui";

/** The sign-in card: the gateway's credential (printed by `moongate` on its first start). */
export function renderLogin(main: HTMLElement, done: (credential: string) => void, message?: string): void {
  const input = h("input", { type: "password", name: "credential", autocomplete: "current-password", placeholder: "Credential", required: true, dataset: { testid: "credential" } });
  const err = h("div");
  if (message) err.append(errorBox(message));
  const submit = h("button", { class: "primary", type: "submit", dataset: { testid: "login" } }, "Sign in");
  const form = h(
    "form",
    {
      class: "card login stack",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const c = input.value.trim();
        if (!c) return;
        submit.disabled = true;
        err.replaceChildren();
        try {
          await new Api(c).check();
          done(c);
        } catch (x) {
          err.replaceChildren(errorBox(x instanceof Error ? x.message : String(x)));
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", null, "Sign in to moongate"),
    h("p", { class: "muted", style: "margin:0" }, "Enter the gateway's credential. moongate prints it on its first start (or it is the value of MOONGATE_CREDENTIALS)."),
    h("label", null, "Credential", input),
    err,
    submit,
  );
  main.append(form);
  input.focus();
}
