/** Small inline SVG sparklines (no chart library): a polyline over the last samples. */

/** The `points` attribute of a polyline drawing `values` in a `w`×`h` box (max at the top). */
export function sparkPoints(values: number[], w: number, h: number): string {
  if (values.length === 0) return "";
  const max = Math.max(...values, 1e-9);
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  return values
    .map((v, i) => {
      const x = values.length > 1 ? i * step : w;
      const y = h - (Math.max(0, v) / max) * (h - 2) - 1;
      return `${round(x)},${round(y)}`;
    })
    .join(" ");
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

const SVG = "http://www.w3.org/2000/svg";

/** An `<svg>` sparkline with a title naming the latest value. */
export function sparkline(values: number[], label: string, w = 90, h = 22): SVGSVGElement {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(h));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", sparkPoints(values, w, h));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.5");
  svg.append(title, line);
  return svg;
}

/** Per-key rolling histories (the dashboard keeps the last `cap` samples of each stream). */
export class History {
  private series = new Map<string, number[]>();
  constructor(private cap = 60) {}
  push(key: string, value: number): number[] {
    const s = this.series.get(key) ?? [];
    s.push(value);
    if (s.length > this.cap) s.splice(0, s.length - this.cap);
    this.series.set(key, s);
    return s;
  }
  get(key: string): number[] {
    return this.series.get(key) ?? [];
  }
  /** Forgets keys not in `live`. */
  retain(live: Set<string>): void {
    for (const k of this.series.keys()) if (!live.has(k)) this.series.delete(k);
  }
}
