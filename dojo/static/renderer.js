// Drawing: image tiles (contrast/brightness), the layer overlay (a colour-mapped prediction,
// or other labels), label tiles coloured through the mapping, then the marks on top (split
// preview, strokes, seeds, marks, other users' cursors, brush).
// A layer is drawn in one of three roles: "image", "overlay" or "labels" (the segmentation).

import { chooseLevel } from "./camera.js";
import { colourTile, cssColour } from "./labels.js";
import { colourValues } from "./overlay.js";
import { tileKey } from "./tiles.js";

export class Renderer {
  constructor(canvas, app) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.app = app;
    this.dpr = window.devicePixelRatio || 1;
    this.previewCanvas = null; // {z, canvas} of the preview mask on the current slice
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(rect.width * this.dpr));
    this.canvas.height = Math.max(1, Math.round(rect.height * this.dpr));
    this.app.camera.resize(rect.width, rect.height);
  }

  levelOf(layerName) {
    const layer = this.app.tiles.layers.get(layerName);
    return chooseLevel(layer.levels, this.app.camera.zoom * this.dpr);
  }

  /** The tiles of a layer the view shows at its level, nearest the centre first. */
  visibleSpecs(layerName, level = this.levelOf(layerName)) {
    const { camera, tiles } = this.app;
    const info = tiles.layers.get(layerName);
    const lv = info.levels[level];
    const [sz, sy, sx] = lv.scale;
    const t = tiles.tileSize;
    const [x0, y0, x1, y1] = camera.visible();
    const z = Math.floor(camera.z / sz);
    const cols = [Math.max(0, Math.floor(x0 / sx / t)), Math.min(Math.ceil(lv.shape[2] / t) - 1, Math.floor(x1 / sx / t))];
    const rows = [Math.max(0, Math.floor(y0 / sy / t)), Math.min(Math.ceil(lv.shape[1] / t) - 1, Math.floor(y1 / sy / t))];
    const specs = [];
    for (let row = rows[0]; row <= rows[1]; row += 1) {
      for (let col = cols[0]; col <= cols[1]; col += 1) specs.push({ layer: layerName, level, z, row, col });
    }
    const cx = camera.x / sx / t - 0.5;
    const cy = camera.y / sy / t - 0.5;
    specs.sort((a, b) => Math.hypot(a.col - cx, a.row - cy) - Math.hypot(b.col - cx, b.row - cy));
    return specs;
  }

  /** All tiles to fetch now (the image first, then the labels, then the overlay). */
  wanted() {
    const specs = [];
    const overlay = this.app.overlay.shown;
    if (this.app.imageLayer) specs.push(...this.visibleSpecs(this.app.imageLayer));
    if (this.app.labelLayer && this.app.view.showSegmentation) specs.push(...this.visibleSpecs(this.app.labelLayer));
    if (overlay) specs.push(...this.visibleSpecs(overlay));
    return specs;
  }

  draw() {
    const { ctx, app } = this;
    const { camera } = app;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = "#07080b";
    ctx.fillRect(0, 0, camera.width, camera.height);
    this.drawVolumeFrame();
    if (app.imageLayer) this.drawLayer(app.imageLayer, "image");
    if (app.overlay.shown) this.drawLayer(app.overlay.shown, "overlay");
    if (app.labelLayer && app.view.showSegmentation) this.drawLayer(app.labelLayer, "labels");
    this.drawPreview();
    this.drawStrokes();
    this.drawSeeds();
    this.drawMarks();
    this.drawCursors();
    this.drawBrush();
  }

  drawVolumeFrame() {
    const { ctx, app } = this;
    const [, h, w] = app.camera.shape;
    const a = app.camera.toScreen(0, 0);
    const b = app.camera.toScreen(w, h);
    ctx.fillStyle = "#000";
    ctx.fillRect(a.sx, a.sy, b.sx - a.sx, b.sy - a.sy);
    ctx.strokeStyle = "#2a303c";
    ctx.lineWidth = 1;
    ctx.strokeRect(a.sx - 0.5, a.sy - 0.5, b.sx - a.sx + 1, b.sy - a.sy + 1);
  }

  drawLayer(layerName, role) {
    const { ctx, app } = this;
    const level = this.levelOf(layerName);
    const info = app.tiles.layers.get(layerName);
    const scale = info.levels[level].scale;
    ctx.save();
    if (role === "image") {
      ctx.filter = `brightness(${app.view.brightness}) contrast(${app.view.contrast})`;
      ctx.imageSmoothingEnabled = app.camera.zoom * this.dpr / scale[2] < 3;
    } else {
      ctx.imageSmoothingEnabled = false;
    }
    for (const spec of this.visibleSpecs(layerName, level)) {
      const tile = app.tiles.get(tileKey(spec.layer, spec.level, spec.z, spec.row, spec.col));
      if (tile) this.drawTile(tile, spec, info, role);
      else this.drawFallback(spec, info, role);
    }
    ctx.restore();
  }

  /** The full-resolution voxel rectangle of a tile: [x0, y0, x1, y1]. */
  tileRect(spec, info) {
    const t = this.app.tiles.tileSize;
    const [, sy, sx] = info.levels[spec.level].scale;
    const [w, h] = this.app.tiles.tileExtent(spec);
    return [spec.col * t * sx, spec.row * t * sy, (spec.col * t + w) * sx, (spec.row * t + h) * sy];
  }

  /** What to draw for a tile: its picture, or its ids or values coloured for `role`. */
  source(tile, role) {
    if (tile.bitmap) return tile.bitmap;
    const { app } = this;
    const stamp = role === "overlay" ? `o${app.overlay.stamp}` : `l${app.colourStamp}`;
    if (tile.stamp !== stamp) {
      const { width, height } = tile.label || tile.values;
      if (!tile.canvas) {
        tile.canvas = document.createElement("canvas");
        tile.canvas.width = width;
        tile.canvas.height = height;
        tile.image = new ImageData(width, height);
      }
      const out = new Uint32Array(tile.image.data.buffer);
      if (tile.values) colourValues(tile.values.values, app.overlay.table, out);
      else colourTile(tile.label, role === "overlay" ? app.overlay.labelStyle() : app.colourStyle(), out);
      tile.canvas.getContext("2d").putImageData(tile.image, 0, 0);
      tile.stamp = stamp;
    }
    return tile.canvas;
  }

  drawTile(tile, spec, info, role) {
    const [x0, y0, x1, y1] = this.tileRect(spec, info);
    const a = this.app.camera.toScreen(x0, y0);
    const b = this.app.camera.toScreen(x1, y1);
    this.ctx.drawImage(this.source(tile, role), a.sx, a.sy, b.sx - a.sx, b.sy - a.sy);
  }

  /** While a tile loads, draw the part of a coarser cached tile that covers it. */
  drawFallback(spec, info, role) {
    const t = this.app.tiles.tileSize;
    const [x0, y0, x1, y1] = this.tileRect(spec, info);
    for (let level = spec.level + 1; level < info.levels.length; level += 1) {
      const [sz, sy, sx] = info.levels[level].scale;
      const row = Math.floor(y0 / sy / t);
      const col = Math.floor(x0 / sx / t);
      const z = Math.floor(this.app.camera.z / sz);
      const tile = this.app.tiles.peek(tileKey(spec.layer, level, z, row, col));
      if (!tile) continue;
      const src = this.source(tile, role);
      const px = x0 / sx - col * t;
      const py = y0 / sy - row * t;
      const pw = Math.min((x1 - x0) / sx, src.width - px);
      const ph = Math.min((y1 - y0) / sy, src.height - py);
      if (pw <= 0 || ph <= 0) return;
      const a = this.app.camera.toScreen(x0, y0);
      const b = this.app.camera.toScreen(x0 + pw * sx, y0 + ph * sy);
      this.ctx.drawImage(src, px, py, pw, ph, a.sx, a.sy, b.sx - a.sx, b.sy - a.sy);
      return;
    }
  }

  /** The fragment id under a full-resolution voxel, from the finest cached label tile. */
  labelAt(x, y, z = this.app.camera.z) {
    const layerName = this.app.labelLayer;
    if (!layerName) return null;
    const info = this.app.tiles.layers.get(layerName);
    const [depth, height, width] = this.app.camera.shape;
    if (x < 0 || y < 0 || x >= width || y >= height || z < 0 || z >= depth) return null;
    const t = this.app.tiles.tileSize;
    for (let level = 0; level < info.levels.length; level += 1) {
      const [sz, sy, sx] = info.levels[level].scale;
      const px = Math.floor(x / sx);
      const py = Math.floor(y / sy);
      const key = tileKey(layerName, level, Math.floor(z / sz), Math.floor(py / t), Math.floor(px / t));
      const tile = this.app.tiles.fresh(key);
      if (!tile) continue;
      const { ids, width: w } = tile.label;
      return ids[(py % t) * w + (px % t)];
    }
    return null;
  }

  drawPreview() {
    const preview = this.app.preview;
    if (!preview || !preview.box) return;
    const [z0, y0, x0, z1, y1, x1] = preview.box;
    const z = this.app.camera.z;
    if (z < z0 || z >= z1) return;
    if (!this.previewCanvas || this.previewCanvas.preview !== preview || this.previewCanvas.z !== z) {
      const w = x1 - x0;
      const h = y1 - y0;
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const image = new ImageData(w, h);
      const out = new Uint32Array(image.data.buffer);
      const offset = (z - z0) * w * h;
      const fill = ((170 << 24) | (40 << 16) | (170 << 8) | 255) >>> 0;
      for (let i = 0; i < w * h; i += 1) {
        const bit = offset + i;
        if (preview.bits[bit >> 3] & (0x80 >> (bit & 7))) out[i] = fill;
      }
      canvas.getContext("2d").putImageData(image, 0, 0);
      this.previewCanvas = { preview, z, canvas };
    }
    const a = this.app.camera.toScreen(x0, y0);
    const b = this.app.camera.toScreen(x1, y1);
    this.ctx.save();
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(this.previewCanvas.canvas, a.sx, a.sy, b.sx - a.sx, b.sy - a.sy);
    this.ctx.restore();
  }

  strokePath(points) {
    const { ctx, app } = this;
    ctx.beginPath();
    points.forEach(([y, x], i) => {
      const p = app.camera.toScreen(x + 0.5, y + 0.5);
      if (i === 0) ctx.moveTo(p.sx, p.sy);
      else ctx.lineTo(p.sx, p.sy);
    });
    if (points.length === 1) {
      const p = app.camera.toScreen(points[0][1] + 0.5, points[0][0] + 0.5);
      ctx.lineTo(p.sx + 0.01, p.sy);
    }
  }

  drawStrokes() {
    const { ctx, app } = this;
    const strokes = [...app.pendingStrokes];
    if (app.stroke) strokes.push(app.stroke);
    ctx.save();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const stroke of strokes) {
      if (stroke.z !== app.camera.z || !stroke.points.length) continue;
      this.strokePath(stroke.points);
      if (stroke.kind === "split") {
        ctx.setLineDash([8, 5]);
        ctx.lineWidth = 2;
        ctx.strokeStyle = "#ffd84d";
      } else {
        ctx.setLineDash([]);
        ctx.lineWidth = Math.max(1, 2 * stroke.radius * app.camera.zoom);
        ctx.globalAlpha = stroke.kind === "erase" ? 0.55 : 0.7;
        ctx.strokeStyle = stroke.kind === "erase" ? "#0b0d12" : cssColour(stroke.segment);
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    ctx.restore();
  }

  drawSeeds() {
    const { ctx, app } = this;
    const z = app.camera.z;
    ctx.save();
    for (const [seeds, colour, label] of [[app.seeds.a, "#ff5a5a", "A"], [app.seeds.b, "#4ea1ff", "B"]]) {
      for (const [sz, sy, sx] of seeds) {
        const p = app.camera.toScreen(sx + 0.5, sy + 0.5);
        const here = sz === z;
        ctx.globalAlpha = here ? 1 : 0.35;
        ctx.beginPath();
        ctx.arc(p.sx, p.sy, here ? 7 : 4, 0, Math.PI * 2);
        ctx.fillStyle = colour;
        ctx.fill();
        ctx.lineWidth = 1.5;
        ctx.strokeStyle = "#fff";
        ctx.stroke();
        if (here) {
          ctx.fillStyle = "#fff";
          ctx.font = "bold 9px system-ui";
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.fillText(label, p.sx, p.sy + 0.5);
        }
      }
    }
    ctx.restore();
  }

  drawMarks() {
    const { ctx, app } = this;
    ctx.save();
    for (const mark of app.marks) {
      const distance = Math.abs(mark.z - app.camera.z);
      if (distance > 2) continue;
      const p = app.camera.toScreen(mark.x + 0.5, mark.y + 0.5);
      ctx.globalAlpha = distance === 0 ? 1 : 0.35;
      const colour = mark.resolved ? "#8b94a7" : "#ffb84d";
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(p.sx, p.sy);
      ctx.lineTo(p.sx, p.sy - 22);
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(p.sx, p.sy - 22);
      ctx.lineTo(p.sx + 13, p.sy - 17.5);
      ctx.lineTo(p.sx, p.sy - 13);
      ctx.closePath();
      ctx.fill();
      ctx.beginPath();
      ctx.arc(p.sx, p.sy, 2.5, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.restore();
  }

  drawCursors() {
    const { ctx, app } = this;
    ctx.save();
    ctx.font = "11px system-ui";
    ctx.textBaseline = "middle";
    for (const member of app.presence) {
      if (member.sid === app.sync.sid || !member.cursor || member.cursor.z !== app.camera.z) continue;
      const p = app.camera.toScreen(member.cursor.x + 0.5, member.cursor.y + 0.5);
      ctx.fillStyle = member.colour;
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(p.sx, p.sy);
      ctx.lineTo(p.sx + 4, p.sy + 13);
      ctx.lineTo(p.sx + 7, p.sy + 8);
      ctx.lineTo(p.sx + 13, p.sy + 6);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
      const text = member.user;
      const w = ctx.measureText(text).width + 8;
      ctx.fillRect(p.sx + 10, p.sy + 12, w, 15);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, p.sx + 14, p.sy + 19.5);
    }
    ctx.restore();
  }

  drawBrush() {
    const { ctx, app } = this;
    const pointer = app.pointer;
    if (!pointer || !pointer.inside || !["paint", "erase"].includes(app.tool)) return;
    ctx.save();
    ctx.beginPath();
    ctx.arc(pointer.sx, pointer.sy, app.view.brush / 2, 0, Math.PI * 2);
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "rgba(0,0,0,.7)";
    ctx.stroke();
    ctx.lineWidth = 1.2;
    ctx.strokeStyle = app.tool === "erase" ? "#fff" : cssColour(app.paintId) || "#fff";
    if (!app.paintId && app.tool === "paint") ctx.strokeStyle = "#fff";
    ctx.stroke();
    ctx.restore();
  }
}
