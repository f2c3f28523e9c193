/** A tiny DOM builder: enough for a few views without a framework (keeps the bundle small). */
type Attrs = Record<string, unknown> & { class?: string; style?: string; dataset?: Record<string, string> };
type Child = Node | string | number | null | undefined | false | Child[];

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = String(v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
      else if (k in el && k !== "style" && k !== "list") (el as unknown as Record<string, unknown>)[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Appends children (null/false skipped). */
export function add(el: Element, ...children: Child[]): void {
  append(el, children);
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function badge(text: string, kind: "ok" | "warn" | "bad" | "info" | "" = ""): HTMLSpanElement {
  return h("span", { class: `badge ${kind}` }, text);
}

/** Shows an error message (a sentence) in `el`. */
export function errorBox(message: string): HTMLDivElement {
  return h("div", { class: "notice", role: "alert" }, message);
}
