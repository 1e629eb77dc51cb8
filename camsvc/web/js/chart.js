// A small live line chart as inline SVG: the last `capacity` samples of one figure.

import { h, svg } from "./dom.js";

const WIDTH = 160;
const HEIGHT = 40;

export class Sparkline {
  /**
   * @param {string} label what is measured, e.g. "CPU"
   * @param {(v: number) => string} format the current value as text
   * @param {{max?: number, capacity?: number}} options a fixed top (e.g. 100 for %), else the
   *   largest sample
   */
  constructor(label, format, { max = null, capacity = 60 } = {}) {
    this.label = label;
    this.format = format;
    this.max = max;
    this.capacity = capacity;
    this.samples = [];
    this.line = svg("polyline", { fill: "none", "stroke-width": 1.5, class: "line" });
    this.area = svg("polygon", { class: "area" });
    this.graph = svg("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": label,
    });
    this.graph.append(this.area, this.line);
    this.value = h("span", { class: "value" }, "–");
    this.element = h(
      "figure",
      { class: "chart", dataset: { metric: label } },
      h("figcaption", {}, h("span", { class: "label" }, label), this.value),
      this.graph,
    );
  }

  /** Add a sample (null: unknown, shown as a gap in the value only). */
  push(sample) {
    if (sample == null || !Number.isFinite(sample)) {
      this.value.textContent = "–";
      return;
    }
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.shift();
    this.value.textContent = this.format(sample);
    this.graph.setAttribute("aria-label", `${this.label}: ${this.format(sample)}`);
    this.#draw();
  }

  #draw() {
    const top = this.max ?? Math.max(...this.samples, 1e-9);
    const step = WIDTH / Math.max(1, this.capacity - 1);
    const offset = (this.capacity - this.samples.length) * step;
    const y = (value) => (HEIGHT - 2 - (Math.min(value, top) / top) * (HEIGHT - 4)).toFixed(1);
    const points = this.samples.map((value, i) => `${(offset + i * step).toFixed(1)},${y(value)}`);
    if (points.length === 1) {
      // One sample is a point, which a polyline does not draw: give it one step of width.
      points.unshift(`${(offset - step).toFixed(1)},${y(this.samples[0])}`);
    }
    this.line.setAttribute("points", points.join(" "));
    const first = points[0]?.split(",")[0] ?? "0";
    const last = points.at(-1)?.split(",")[0] ?? "0";
    this.area.setAttribute("points", `${first},${HEIGHT} ${points.join(" ")} ${last},${HEIGHT}`);
  }
}
