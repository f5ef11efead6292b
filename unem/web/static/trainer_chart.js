// A small line chart on a canvas: curves of (step, value) points against the training step,
// with axes, ticks and a legend. Losses share the left axis; scores (accuracy, Dice, in
// [0, 1]) the right one, so a loss above 1 does not flatten them. Redrawn whole on change.
import { element } from "/static/api.js";

const COLOURS = {
  loss: "#2f6fdb", val_loss: "#e07b1a", val_dice: "#23824a", val_accuracy: "#8a4fd0",
  val_iou: "#0f8b8d", val_mean_iou: "#a0522d",
};
const SPARE_COLOURS = ["#c23030", "#d4a017", "#5b6475", "#e754a8"];
const MARGIN = { top: 12, right: 52, bottom: 34, left: 58 };
const TICKS = 5;

export function isLoss(name) {
  return name.includes("loss");
}

// Ticks at 1, 2 or 5 × 10^k covering [low, high].
export function niceTicks(low, high, count = TICKS) {
  if (!(high > low)) [low, high] = [low - 0.5, high + 0.5];
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let t = Math.floor(low / step) * step; t <= high + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  if (ticks[ticks.length - 1] < high) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function label(value) {
  if (value === 0) return "0";
  const size = Math.abs(value);
  if (size >= 10000 || size < 0.001) return value.toExponential(1);
  return String(Number(value.toPrecision(4)));
}

export class LineChart {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.legend = legend;
    this.series = new Map(); // name → [[step, value], ...] in step order
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  clear() {
    this.series.clear();
    this.draw();
  }

  // Add points; a point at a step already in its curve replaces it (history and live
  // updates may overlap).
  add(name, points) {
    const curve = this.series.get(name) || [];
    const byStep = new Map(curve);
    for (const [step, value] of points) {
      if (Number.isFinite(step) && Number.isFinite(value)) byStep.set(step, value);
    }
    this.series.set(name, [...byStep].sort((a, b) => a[0] - b[0]));
    this.draw();
  }

  last(name) {
    return this.series.get(name)?.at(-1);
  }

  colour(name) {
    if (COLOURS[name]) return COLOURS[name];
    const names = [...this.series.keys()].filter((n) => !COLOURS[n]);
    return SPARE_COLOURS[names.indexOf(name) % SPARE_COLOURS.length];
  }

  // x: steps from 0; left: losses; right: scores (0–1 unless they leave it).
  scales() {
    const all = [...this.series];
    const steps = all.flatMap(([, points]) => points.map(([step]) => step));
    const values = (wanted) => all.filter(([name]) => isLoss(name) === wanted)
      .flatMap(([, points]) => points.map(([, value]) => value));
    const losses = values(true);
    const scores = values(false);
    const range = (list, low, high) => (list.length ? [Math.min(low, ...list), Math.max(high, ...list)] : [low, high]);
    return {
      x: niceTicks(0, Math.max(1, ...steps)),
      left: niceTicks(...range(losses, 0, losses.length ? Math.max(...losses) : 1)),
      right: scores.length ? niceTicks(...range(scores, 0, 1)) : null,
    };
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
    const plot = {
      left: MARGIN.left, top: MARGIN.top,
      width: width - MARGIN.left - MARGIN.right, height: height - MARGIN.top - MARGIN.bottom,
    };
    const { x, left, right } = this.scales();
    const position = (ticks, value, size) => (value - ticks[0]) / (ticks.at(-1) - ticks[0]) * size;
    const px = (step) => plot.left + position(x, step, plot.width);
    const py = (ticks) => (value) => plot.top + plot.height - position(ticks, value, plot.height);
    this.drawAxes(context, plot, { x, left, right }, px, py);
    for (const [name, points] of this.series) {
      this.drawCurve(context, points, px, py(isLoss(name) || !right ? left : right), this.colour(name));
    }
    this.canvas.dataset.points = String([...this.series.values()].reduce((n, p) => n + p.length, 0));
    this.drawLegend();
  }

  drawAxes(context, plot, ticks, px, py) {
    context.font = "11px system-ui, sans-serif";
    context.strokeStyle = "#dde1e8";
    context.fillStyle = "#5b6475";
    context.lineWidth = 1;
    context.textAlign = "center";
    context.textBaseline = "top";
    for (const step of ticks.x) {
      const at = Math.round(px(step)) + 0.5;
      context.beginPath();
      context.moveTo(at, plot.top);
      context.lineTo(at, plot.top + plot.height);
      context.stroke();
      context.fillText(label(step), at, plot.top + plot.height + 4);
    }
    context.fillText("step", plot.left + plot.width / 2, plot.top + plot.height + 18);
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
    context.save();
    context.translate(12, plot.top + plot.height / 2);
    context.rotate(-Math.PI / 2);
    context.textAlign = "center";
    context.fillText("loss", 0, 0);
    context.restore();
    if (ticks.right) {
      context.textAlign = "left";
      for (const value of ticks.right) {
        context.fillText(label(value), plot.left + plot.width + 6, py(ticks.right)(value));
      }
      context.save();
      context.translate(plot.left + plot.width + 44, plot.top + plot.height / 2);
      context.rotate(Math.PI / 2);
      context.textAlign = "center";
      context.fillText("score", 0, 0);
      context.restore();
    }
    context.strokeStyle = "#5b6475";
    context.strokeRect(plot.left + 0.5, plot.top + 0.5, plot.width, plot.height);
  }

  drawCurve(context, points, px, py, colour) {
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.lineWidth = 1.75;
    context.beginPath();
    points.forEach(([step, value], i) => (i ? context.lineTo(px(step), py(value)) : context.moveTo(px(step), py(value))));
    context.stroke();
    if (points.length < 40) {
      for (const [step, value] of points) {
        context.beginPath();
        context.arc(px(step), py(value), 2.5, 0, 2 * Math.PI);
        context.fill();
      }
    }
  }

  drawLegend() {
    this.legend.replaceChildren(...[...this.series].map(([name, points]) => {
      const [step, value] = points.at(-1) || [];
      const axis = isLoss(name) ? "left axis" : "right axis";
      return element("li", { dataset: { series: name, count: points.length }, title: axis },
        element("span", { class: "swatch", style: `background:${this.colour(name)}` }),
        element("span", { class: "name" }, name),
        element("span", { class: "muted" }, value === undefined ? "" : ` ${label(value)} at step ${step}`));
    }));
  }
}
