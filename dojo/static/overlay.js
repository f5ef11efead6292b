// The layer overlay: one more layer of the dataset drawn over the image and under the
// segmentation, with its own opacity and on/off switch. A prediction (or any layer of
// values) is colour-mapped: the colour says how probable, and so does the transparency (0 is
// invisible); a label layer (ground truth, an earlier segmentation) is coloured per id.

import { element } from "/static/api.js";

const $ = (id) => document.getElementById(id);
const LABEL_KINDS = new Set(["segmentation", "groundtruth"]);
const OWN_LAYERS = new Set(["image", "segmentation"]); // drawn by Dojo itself

const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));

// Colour of a value t in [0, 1] for each map; the alpha is t × opacity.
export const VALUE_COLOURS = {
  heat: (t) => [255, clamp(64 + 191 * t), clamp(255 * Math.max(0, 2 * t - 1.4))],
  magenta: () => [255, 40, 220],
  green: () => [40, 255, 90],
  cyan: () => [40, 220, 255],
};
export const LABEL_STYLES = { filled: "filled", outlines: "outlines" };

export function isLabelKind(kind) {
  return LABEL_KINDS.has(kind);
}

const KIND_ORDER = { prediction: 0, image: 1, groundtruth: 2, segmentation: 3 };

/** The layers the overlay may show: every layer but the image and the segmentation,
 * predictions first (the first one is what the overlay shows unless told otherwise). */
export function overlayLayers(layers) {
  const rank = (l) => KIND_ORDER[l.kind] ?? 1;
  return layers.filter((l) => !OWN_LAYERS.has(l.name))
    .sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** 256 packed RGBA colours (ImageData is little-endian ABGR) for a map and an opacity. */
export function colourTable(name, opacity) {
  const colour = VALUE_COLOURS[name] || VALUE_COLOURS.heat;
  const table = new Uint32Array(256);
  for (let v = 1; v < 256; v += 1) {
    const [r, g, b] = colour(v / 255);
    const a = clamp(v * opacity);
    table[v] = ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
  }
  return table;
}

/** Colour an 8-bit tile's values into `out` (a Uint32Array view of ImageData). */
export function colourValues(values, table, out) {
  for (let i = 0; i < values.length; i += 1) out[i] = table[values[i]];
}

/** What the overlay shows, and its controls in the View panel. */
export class Overlay {
  constructor(app, layers, fromUrl = {}) {
    this.app = app;
    this.layers = new Map();
    this.setLayers(layers);
    const first = [...this.layers.keys()][0] || null;
    this.layer = this.layers.has(fromUrl.layer) ? fromUrl.layer : first;
    this.on = Boolean(fromUrl.on && this.layer);
    this.opacity = Number.isFinite(fromUrl.opacity) ? Math.max(0, Math.min(1, fromUrl.opacity)) : 0.6;
    this.colours = this.validColours(fromUrl.colours);
    this.stamp = 0; // changes whenever the overlay must be coloured again
    this.table = colourTable(this.colours, this.opacity);
  }

  setLayers(layers) {
    this.layers = new Map(overlayLayers(layers).map((l) => [l.name, l]));
    if (this.layer && !this.layers.has(this.layer)) {
      this.layer = [...this.layers.keys()][0] || null;
      this.on = this.on && Boolean(this.layer);
    }
  }

  /** The layer to draw now, or null. */
  get shown() {
    return this.on && this.layer ? this.layer : null;
  }

  get isLabels() {
    return isLabelKind(this.layers.get(this.layer)?.kind);
  }

  /** Names of the value layers (fetched as 8-bit PNG values, not as pictures). */
  valueLayers() {
    return [...this.layers.values()].filter((l) => !isLabelKind(l.kind)).map((l) => l.name);
  }

  validColours(name) {
    const choices = this.isLabels ? LABEL_STYLES : VALUE_COLOURS;
    return name in choices ? name : Object.keys(choices)[0];
  }

  /** How colourTile draws a label layer: every id its own colour, no mapping. */
  labelStyle() {
    return { segmentOf: (f) => f, opacity: this.opacity, outline: this.colours === "outlines",
             selected: 0, previewFragments: null };
  }

  state() {
    return { layer: this.layer, on: this.on, opacity: this.opacity, colours: this.colours };
  }

  set(changes) {
    Object.assign(this, changes);
    if (!this.layer) this.on = false;
    this.colours = this.validColours(this.colours);
    this.table = colourTable(this.colours, this.opacity);
    this.stamp += 1;
    this.render();
    this.app.overlayChanged();
  }

  toggle() {
    if (!this.layer) {
      this.app.toast("This dataset has no other layer to overlay.");
      return;
    }
    this.set({ on: !this.on });
  }

  bind() {
    $("overlay-on").addEventListener("change", (e) => this.set({ on: e.target.checked }));
    $("overlay-layer").addEventListener("change", (e) => this.set({ layer: e.target.value, on: true }));
    $("overlay-opacity").addEventListener("input", (e) => this.set({ opacity: Number(e.target.value) }));
    $("overlay-colours").addEventListener("change", (e) => this.set({ colours: e.target.value }));
    this.render();
  }

  /** Show the state in the controls (after a change, or when the layers changed). */
  render() {
    const none = this.layers.size === 0;
    $("overlay-controls").hidden = none;
    $("overlay-none").hidden = !none;
    const select = $("overlay-layer");
    select.replaceChildren(...[...this.layers.values()].map((l) =>
      element("option", { value: l.name }, `${l.name} (${l.kind})`)));
    if (this.layer) select.value = this.layer;
    $("overlay-on").checked = this.on;
    $("overlay-opacity").value = String(this.opacity);
    const colours = $("overlay-colours");
    colours.replaceChildren(...Object.keys(this.isLabels ? LABEL_STYLES : VALUE_COLOURS).map((name) =>
      element("option", { value: name }, name)));
    colours.value = this.colours;
  }
}
