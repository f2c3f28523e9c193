import { Api, OIDC_START, authProviders, signIn } from "../api";
import { errorBox, h } from "../ui";

/**
 * The sign-in cards: an identity provider's button when the gateway has one, the gateway's
 * credential (printed by `moongate` on its first start), and a user account's name and password.
 */
export function renderLogin(main: HTMLElement, done: (credential: string) => void, message?: string): void {
  const input = h("input", { type: "password", name: "credential", autocomplete: "current-password", placeholder: "Credential", required: true, dataset: { testid: "credential" } });
  const err = h("div", { dataset: { testid: "login-error" } });
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
  const sso = h("div");
  main.append(sso, form, accountForm(done));
  input.focus();
  void authProviders().then(({ oidc }) => {
    if (oidc) sso.replaceWith(ssoCard(oidc.name));
  });
}

/** The identity provider's card: a plain navigation, as the gateway answers with redirects. */
function ssoCard(name: string): HTMLElement {
  return h(
    "div",
    { class: "card login sso stack" },
    h("h2", null, "Single sign-on"),
    h("a", { class: "btn primary", href: OIDC_START, dataset: { testid: "sso-login" } }, `Sign in with ${name}`),
  );
}

/** The second card: a named user's name and password (accounts an admin added). */
function accountForm(done: (credential: string) => void): HTMLElement {
  const name = h("input", { type: "text", name: "username", autocomplete: "username", placeholder: "User name", required: true, dataset: { testid: "username" } });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", placeholder: "Password", required: true, dataset: { testid: "password" } });
  const err = h("div");
  const submit = h("button", { class: "primary", type: "submit", dataset: { testid: "login-user" } }, "Sign in");
  return h(
    "form",
    {
      class: "card login stack",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (!name.value.trim() || !password.value) return;
        submit.disabled = true;
        err.replaceChildren();
        try {
          const session = await signIn(name.value.trim(), password.value);
          done(session.token);
        } catch (x) {
          err.replaceChildren(errorBox(x instanceof Error ? x.message : String(x)));
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h2", null, "Or with a user account"),
    h("p", { class: "muted", style: "margin:0" }, "Accounts are added by an administrator in the admin dashboard."),
    h("label", null, "User name", name),
    h("label", null, "Password", password),
    err,
    submit,
  );
}
