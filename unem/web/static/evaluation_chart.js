// The per-slice chart of an evaluation: curves of a score against z, scores in [0, 1] on the
// left axis and VI bits on the right one. A slice without a score (no ground truth in it)
// breaks its curve. (The trainer's chart plots against the training step, with a loss axis.)
import { element } from "/static/api.js";
import { niceTicks } from "/static/trainer_chart.js";

const MARGIN = { top: 12, right: 52, bottom: 34, left: 52 };
const COLOURS = ["#2f6fdb", "#e07b1a", "#23824a", "#8a4fd0", "#c23030", "#0f8b8d"];

function label(value) {
  return value === 0 ? "0" : String(Number(value.toPrecision(3)));
}

export class SliceChart {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.legend = legend;
    this.z = [];
    this.series = []; // {name, values, right}
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  // perSlice: {z: [...], name: [...]}; left/right: the names plotted on each axis.
  show(perSlice, left, right = []) {
    this.z = perSlice.z || [];
    this.series = [...left.map((name) => ({ name, right: false })), ...right.map((name) => ({ name, right: true }))]
      .filter(({ name }) => perSlice[name])
      .map((s, i) => ({ ...s, values: perSlice[s.name], colour: COLOURS[i % COLOURS.length] }));
    this.draw();
  }

  axis(right) {
    const values = this.series.filter((s) => s.right === right).flatMap((s) => s.values)
      .filter((v) => v !== null && Number.isFinite(v));
    if (!right) return niceTicks(Math.min(0, ...values), Math.max(1, ...values));
    return values.length ? niceTicks(0, Math.max(...values)) : null;
  }

  draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (!width || !height) return;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    const context = this.canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const plot = { left: MARGIN.left, top: MARGIN.top, width: width - MARGIN.left - MARGIN.right,
      height: height - MARGIN.top - MARGIN.bottom };
    // z spans exactly the slices scored; its ticks are the nice ones inside that span
    const low = this.z.length ? this.z[0] : 0;
    const high = this.z.length > 1 ? this.z.at(-1) : low + 1;
    const x = niceTicks(low, high).filter((z) => z >= low && z <= high && Number.isInteger(z));
    const ticks = { x, left: this.axis(false), right: this.axis(true) };
    const at = (list, value, size) => ((value - list[0]) / (list.at(-1) - list[0])) * size;
    const px = (z) => plot.left + at([low, high], z, plot.width);
    const py = (list) => (value) => plot.top + plot.height - at(list, value, plot.height);
    this.drawAxes(context, plot, ticks, px, py);
    for (const s of this.series) this.drawCurve(context, s, px, py(s.right ? ticks.right : ticks.left));
    this.canvas.dataset.points = String(this.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0));
    this.legend.replaceChildren(...this.series.map((s) => element("li", { dataset: { series: s.name } },
      element("span", { class: "swatch", style: `background:${s.colour}` }),
      element("span", { class: "name" }, s.name),
      element("span", { class: "muted" }, s.right ? " (bits, right axis, dashed)" : ""))));
  }

  drawAxes(context, plot, ticks, px, py) {
    context.font = "11px system-ui, sans-serif";
    context.strokeStyle = "#dde1e8";
    context.fillStyle = "#5b6475";
    context.lineWidth = 1;
    context.textAlign = "center";
    context.textBaseline = "top";
    for (const z of ticks.x) {
      const at = Math.round(px(z)) + 0.5;
      context.beginPath();
      context.moveTo(at, plot.top);
      context.lineTo(at, plot.top + plot.height);
      context.stroke();
      context.fillText(label(z), at, plot.top + plot.height + 4);
    }
    context.fillText("slice (z)", plot.left + plot.width / 2, plot.top + plot.height + 18);
    context.textBaseline = "middle";
    context.textAlign = "right";
    for (const value of ticks.left) {
      const at = Math.round(py(ticks.left)(value)) + 0.5;
      context.beginPath();
      context.moveTo(plot.left, at);
      context.lineTo(plot.left + plot.width, at);
      context.stroke();
      context.fillText(label(value), plot.left - 6, at);
    }
    if (ticks.right) {
      context.textAlign = "left";
      for (const value of ticks.right) context.fillText(label(value), plot.left + plot.width + 6, py(ticks.right)(value));
    }
    context.strokeStyle = "#5b6475";
    context.strokeRect(plot.left + 0.5, plot.top + 0.5, plot.width, plot.height);
  }

  drawCurve(context, series, px, py) {
    context.strokeStyle = series.colour;
    context.fillStyle = series.colour;
    context.lineWidth = 1.75;
    context.setLineDash(series.right ? [6, 3] : []); // bits (right axis) dashed
    context.beginPath();
    let drawing = false;
    series.values.forEach((value, i) => {
      if (value === null || !Number.isFinite(value)) {
        drawing = false;
        return;
      }
      const [cx, cy] = [px(this.z[i]), py(value)];
      if (drawing) context.lineTo(cx, cy);
      else context.moveTo(cx, cy);
      drawing = true;
      if (this.z.length < 40) context.fillRect(cx - 2, cy - 2, 4, 4);
    });
    context.stroke();
    context.setLineDash([]);
  }
}
