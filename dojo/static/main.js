// Dojo's client: state of the view and of the segmentation, the draw loop, the controls.
// The modules beside this one do the work: camera, tiles, labels, renderer, tools (pointer
// input), editing (requests), sync (Socket.IO), panels, keys (shortcuts), overlay (another
// layer over the image), urlstate.

import { EVENTS } from "/events.js";
import { api } from "/static/api.js";
import { connectJobs } from "/static/jobs_view.js";
import { Camera } from "./camera.js";
import { Editor } from "./editing.js";
import { commandFor, renderHelp, shortcutLabel } from "./keys.js";
import { chooseColour, cssColour, setChosenColours } from "./labels.js";
import { Overlay } from "./overlay.js";
import { HistoryPanel, MarksPanel, SegmentTable, debounce, renderPresence } from "./panels.js";
import { Renderer } from "./renderer.js";
import { Sync } from "./sync.js";
import { TileStore } from "./tiles.js";
import { installProbes } from "./probes.js";
import { PointerInput, TOOLS, isTyping } from "./tools.js";
import { toast } from "./ui.js";
import { readOverlayFromUrl, readViewFromUrl, writeViewToUrl } from "./urlstate.js";

const $ = (id) => document.getElementById(id);
const EDIT_TOOLS = ["merge", "split", "cut", "paint", "erase", "fill"];

class App {
  constructor(state) {
    const body = document.body.dataset;
    this.datasetId = body.dataset;
    this.user = body.user;
    this.canEdit = body.role !== "viewer";
    this.dataset = state.dataset;
    const layers = new Map(state.dataset.layers.map((l) => [l.name, l]));
    this.imageLayer = layers.has("image") ? "image" : null;
    this.labelLayer = layers.has("segmentation") ? "segmentation" : null;
    this.camera = new Camera(state.dataset.shape);
    this.tiles = new TileStore(this.datasetId, state.dataset, state.tile_size, () => this.requestDraw());
    this.overlay = new Overlay(this, state.dataset.layers, readOverlayFromUrl());
    this.tiles.valueLayers = new Set(this.overlay.valueLayers());
    this.replacing = null; // edits received while the state after a replacement loads
    this.mapping = new Map(Object.entries(state.mapping).map(([f, s]) => [Number(f), s]));
    this.locks = new Map();
    this.setLocks(state.locks);
    this.names = new Map(Object.entries(state.names).map(([s, n]) => [Number(s), n]));
    setChosenColours(state.colours);
    this.marks = state.marks;
    this.presence = [];
    this.selected = 0;
    this.paintId = 0;
    this.tool = "navigate";
    this.view = { contrast: 1, brightness: 1, opacity: 0.4, outline: false, showSegmentation: true, brush: 24, fillDepth: 3 };
    this.stroke = null;
    this.pendingStrokes = [];
    this.previewStroke = null;
    this.preview = null;
    this.seeds = { segment: 0, a: [], b: [], fragmentsA: new Set(), fragmentsB: new Set() };
    this.pointer = null;
    this.hover = null;
    this.colourStamp = 0;
    this.drawQueued = false;
    this.pickArmed = false;
    this.renderer = new Renderer($("view"), this);
    this.editor = new Editor(this);
    this.sync = new Sync(this.datasetId, state.version, {
      edit: (e) => this.applyEdit(e), locks: (l) => this.setLocks(l), segment: (s) => this.segmentChanged(s),
      marks: (m) => this.setMarks(m), presence: (p) => this.setPresence(p),
      status: (text, live) => this.connection(text, live), joined: (again) => this.joined(again),
    });
    this.segmentTable = new SegmentTable(this);
    this.marksPanel = new MarksPanel(this);
    this.historyPanel = new HistoryPanel(this);
    this.refreshTables = debounce(() => this.segmentTable.load(), 400);
    this.sendCursor = throttle((v) => this.sync.cursor(v.z, v.y, v.x), 100);
  }

  start() {
    new PointerInput(this.renderer.canvas, this);
    this.bindControls();
    const fromUrl = readViewFromUrl();
    const stage = $("stage");
    let first = true;
    new ResizeObserver(() => {
      this.renderer.resize();
      if (first) this.initialView(fromUrl);
      first = false;
      this.requestDraw();
    }).observe(stage);
    this.setTool("navigate");
    this.setMarks(this.marks);
    this.segmentTable.load();
    this.historyPanel.load();
    this.sync.connect();
    // A job (a new segmentation, a new prediction) may change the dataset: catch up.
    connectJobs({ updated: (job) => this.jobUpdated(job) });
    window.addEventListener("keydown", (e) => this.keydown(e));
  }

  initialView(fromUrl) {
    this.camera.fit();
    if (fromUrl.zoom) this.camera.zoom = Math.max(1 / 64, Math.min(32, fromUrl.zoom));
    if (fromUrl.x !== undefined && fromUrl.y !== undefined) this.camera.centreOn(fromUrl.x, fromUrl.y);
    if (fromUrl.z !== undefined) this.camera.setZ(fromUrl.z);
    if (fromUrl.sel) this.select(fromUrl.sel);
    this.viewChanged();
  }

  // ---- segmentation state ----
  segmentOf(fragment) {
    const segment = this.mapping.get(fragment);
    return segment === undefined ? fragment : segment;
  }

  colourStyle() {
    return {
      segmentOf: (f) => this.segmentOf(f), opacity: this.view.opacity, outline: this.view.outline,
      selected: this.selected, previewFragments: this.preview?.fragments || null,
    };
  }

  recolour() {
    this.colourStamp += 1;
    this.requestDraw();
  }

  applyEdit(edit) {
    if (edit.kind === "replace") {
      this.segmentationReplaced(edit);
      return;
    }
    this.replacing?.edits.push(edit);
    const entries = Object.entries(edit.mapping || {});
    for (const [key, segment] of entries) {
      const fragment = Number(key);
      if (fragment === segment) this.mapping.delete(fragment);
      else this.mapping.set(fragment, segment);
    }
    if (edit.box && this.labelLayer) this.tiles.invalidate(this.labelLayer, edit.box, edit.version);
    if (edit.kind === "merge" && edit.payload?.segments?.slice(1).includes(this.selected)) {
      this.selected = edit.payload.segments[0];
    }
    if (entries.length) this.recolour();
    this.historyPanel.add(edit);
    this.refreshTables();
    this.updateStatus();
    this.requestDraw();
  }

  /** A job replaced the whole segmentation: everything before this edit is archived, so
   * start again from the server's state (the view, the overlay and the marks stay). */
  async segmentationReplaced(edit) {
    this.replacing = { edits: [] };
    this.mapping.clear();
    this.pendingStrokes = [];
    this.clearPreview();
    this.clearSeeds();
    this.selected = 0;
    if (this.labelLayer) this.tiles.drop(this.labelLayer);
    this.historyPanel.clear();
    this.historyPanel.add(edit);
    this.recolour();
    try {
      const state = await api("GET", `/dojo/api/${encodeURIComponent(this.datasetId)}/state`);
      this.mapping = new Map(Object.entries(state.mapping).map(([f, s]) => [Number(f), s]));
      for (const later of this.replacing.edits) {
        if (later.version <= state.version) continue;
        for (const [f, s] of Object.entries(later.mapping || {})) this.mapping.set(Number(f), s);
      }
      this.names = new Map(Object.entries(state.names).map(([s, n]) => [Number(s), n]));
      setChosenColours(state.colours);
      this.setLocks(state.locks);
      this.setMarks(state.marks);
      this.layersChanged(state.dataset.layers);
    } catch (error) {
      this.toast(`Could not load the new segmentation: ${error.message}. Reload the page.`, "error", 30);
    } finally {
      this.replacing = null;
    }
    this.historyPanel.load();
    this.segmentTable.load();
    this.recolour();
    const p = edit.payload || {};
    this.toast(`${edit.user} replaced the segmentation (${p.source || "a job"}); the previous one is the layer ${p.kept}.`, "ok", 12);
  }

  /** The dataset's layers changed (a job added or rewrote one). */
  layersChanged(layers) {
    this.dataset = { ...this.dataset, layers };
    this.tiles.setLayers(layers);
    this.overlay.setLayers(layers);
    this.tiles.valueLayers = new Set(this.overlay.valueLayers());
    if (this.overlay.layer) this.tiles.refresh(this.overlay.layer); // it may have been rewritten
    this.overlay.set({});
  }

  async jobUpdated(job) {
    if (job.state !== "done" || job.options?.dataset !== this.datasetId) return;
    this.sync.pull();
    try {
      const dataset = await api("GET", `/api/datasets/${encodeURIComponent(this.datasetId)}`);
      this.layersChanged(dataset.layers);
    } catch (error) {
      console.warn(`layers after a job: ${error.message}`);
    }
  }

  overlayChanged() {
    writeViewToUrl(this.camera, this.selected, this.overlay.state());
    this.requestDraw();
  }

  setLocks(locks) {
    this.locks = new Map(Object.entries(locks || {}).map(([s, u]) => [Number(s), u]));
    if (this.segmentTable) this.refreshTables();
    this.updateStatus();
  }

  /** A segment renamed ({id, name}) here or in the 3D annotator, or recoloured there ({id, colour}). */
  segmentChanged(change) {
    const { id, name, colour } = change;
    if ("name" in change && name) this.names.set(id, name);
    else if ("name" in change) this.names.delete(id);
    if ("colour" in change) {
      chooseColour(id, colour);
      this.recolour();
    }
    this.refreshTables();
    this.updateStatus();
  }

  setMarks(marks) {
    this.marks = marks;
    this.marksPanel.render(marks);
    this.requestDraw();
  }

  setPresence(users) {
    this.presence = users;
    renderPresence(this, users);
    this.requestDraw();
  }

  connection(text, live) {
    const node = $("connection");
    node.textContent = live ? "● live" : text;
    node.className = `connection ${live ? "live" : "down"}`;
  }

  async joined(again) {
    if (!again) return;
    // After a reconnect: edits came through `join`; names and marks may have changed too.
    try {
      const state = await api("GET", `/dojo/api/${encodeURIComponent(this.datasetId)}/state`);
      this.names = new Map(Object.entries(state.names).map(([s, n]) => [Number(s), n]));
      setChosenColours(state.colours);
      this.recolour();
      this.setMarks(state.marks);
      this.segmentTable.load();
    } catch (error) {
      this.toast(`Could not refresh after reconnecting: ${error.message}`, "error");
    }
  }

  // ---- drawing ----
  requestDraw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.renderer.draw();
      const wanted = this.renderer.wanted();
      this.tiles.want(wanted);
      this.dropSettledStrokes(wanted);
    });
  }

  dropSettledStrokes(wanted) {
    if (!this.pendingStrokes.some((s) => s.version)) return;
    const labels = wanted.filter((s) => s.layer === this.labelLayer);
    if (!this.tiles.settled(labels)) return;
    const before = this.pendingStrokes.length;
    this.pendingStrokes = this.pendingStrokes.filter((s) => !s.version || s.version > this.sync.version);
    if (this.pendingStrokes.length !== before) this.requestDraw();
  }

  viewChanged() {
    const { camera } = this;
    $("z-slider").value = String(camera.z);
    const input = $("z-input");
    if (document.activeElement !== input) input.value = String(camera.z);
    $("zoom-text").textContent = `${Math.round(camera.zoom * 100)} %`;
    if (this.labelLayer || this.imageLayer) {
      const level = this.renderer.levelOf(this.labelLayer || this.imageLayer);
      $("status-level").textContent = `level ${level}`;
    }
    $("brush-text").textContent = `${this.view.brush} px · ${Math.max(1, Math.round(this.view.brush / camera.zoom))} vox`;
    writeViewToUrl(camera, this.selected, this.overlay.state());
    this.updateHoverFromPointer();
    this.requestDraw();
  }

  setZ(z) {
    if (this.camera.setZ(z)) this.viewChanged();
  }

  // ---- pointer ----
  pointerMoved(p, v) {
    this.pointer = { ...p, inside: true };
    this.hoverAt(v);
    if (this.sync.socket?.connected) this.sendCursor(v);
    if (this.tool === "paint" || this.tool === "erase") this.requestDraw();
  }

  pointerLeft() {
    if (this.pointer) this.pointer.inside = false;
    this.hover = null;
    this.updateStatus();
    this.requestDraw();
  }

  updateHoverFromPointer() {
    if (!this.pointer?.inside) return;
    const v = this.camera.toVoxel(this.pointer.sx, this.pointer.sy);
    this.hoverAt({ x: Math.floor(v.x), y: Math.floor(v.y), z: this.camera.z });
  }

  hoverAt(v) {
    const fragment = this.renderer.labelAt(v.x, v.y, v.z);
    this.hover = { ...v, fragment, segment: fragment === null ? null : this.segmentOf(fragment) };
    this.updateStatus();
  }

  updateStatus() {
    const hover = this.hover;
    const [depth, height, width] = this.camera.shape;
    const inside = hover && hover.x >= 0 && hover.y >= 0 && hover.x < width && hover.y < height;
    $("status-pos").textContent = inside ? `x ${hover.x} · y ${hover.y} · z ${hover.z}` : `z ${this.camera.z} of ${depth - 1}`;
    const box = $("status-segment");
    box.replaceChildren();
    if (!inside || hover.fragment === null) return;
    const { segment, fragment } = hover;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = cssColour(segment);
    const name = this.names.get(segment);
    const lock = this.locks.get(segment);
    const parts = [segment ? `segment ${segment}` : "background (0)"];
    if (name) parts.push(`“${name}”`);
    parts.push(`fragment ${fragment}`);
    if (lock) parts.push(`locked by ${lock}`);
    box.append(swatch, parts.join(" · "));
  }

  clickAt(v, { shift }) {
    if (this.pickArmed) return this.pickAt(v);
    const fragment = this.renderer.labelAt(v.x, v.y, v.z);
    const segment = fragment ? this.segmentOf(fragment) : 0;
    const tool = this.tool;
    if (tool === "cut") return this.editor.seed(v, shift);
    if (tool === "fill") return this.editor.fill(v, shift);
    if (shift && this.selected && segment && this.canEdit) return this.editor.merge(this.selected, segment);
    if (tool === "merge" && this.selected && segment && segment !== this.selected) {
      return this.editor.merge(this.selected, segment);
    }
    this.select(segment === this.selected && tool === "navigate" ? 0 : segment);
  }

  pickAt(v) {
    this.pickArmed = false;
    $("pick-id").classList.remove("active");
    const fragment = this.renderer.labelAt(v.x, v.y, v.z);
    if (fragment === null) return;
    this.setPaintId(this.segmentOf(fragment));
    this.toast(`Painting with segment ${this.paintId || "0 (background)"}`);
  }

  finishStroke(stroke) {
    return this.editor.finishStroke(stroke);
  }

  brushRadius() {
    return Math.min(512, Math.max(0.5, this.view.brush / 2 / this.camera.zoom));
  }

  // ---- selection, preview, seeds ----
  select(segment) {
    this.selected = segment || 0;
    this.segmentTable.markSelected();
    this.recolour();
    writeViewToUrl(this.camera, this.selected, this.overlay.state());
    this.updateHint();
  }

  showPreview(preview) {
    this.preview = preview;
    $("preview-text").textContent = preview.text;
    $("preview-bar").hidden = false;
    if (preview.fragments) this.recolour();
    this.requestDraw();
  }

  clearPreview() {
    const hadFragments = this.preview?.fragments;
    this.preview = null;
    this.previewStroke = null;
    $("preview-bar").hidden = true;
    if (hadFragments) this.recolour();
    this.requestDraw();
  }

  clearSeeds() {
    this.seeds = { segment: 0, a: [], b: [], fragmentsA: new Set(), fragmentsB: new Set() };
    this.updateHint();
    this.requestDraw();
  }

  cancel() {
    if (this.preview) this.clearPreview();
    else if (this.seeds.a.length || this.seeds.b.length) this.clearSeeds();
    else if (this.pickArmed) this.pickAt({ x: -1, y: -1, z: -1 });
    else this.select(0);
  }

  accept() {
    if (this.preview) this.editor.accept();
    else if (this.tool === "cut") this.editor.previewCut();
  }

  setBusy(text) {
    this.busy = text;
    this.updateHint();
  }

  updateHint() {
    let text = TOOLS[this.tool];
    if (this.busy) text = this.busy;
    else if (this.tool === "cut" && this.seeds.segment) {
      text = `Segment ${this.seeds.segment}: ${this.seeds.a.length} seed(s) A, ${this.seeds.b.length} seed(s) B · Enter previews · Esc clears`;
    } else if (this.tool === "merge" && this.selected) {
      text = `Click segments to merge into ${this.selected} · Esc to pick another`;
    }
    $("tool-hint").textContent = text;
    $("status-tool").textContent = `${this.tool}${this.selected ? ` · selected ${this.selected}` : ""}`;
  }

  setTool(tool) {
    if (!this.canEdit && EDIT_TOOLS.includes(tool)) {
      this.toast("Your role can view but not edit.");
      return;
    }
    if (tool !== this.tool) {
      if (this.preview) this.clearPreview();
      if (this.tool === "cut") this.clearSeeds();
    }
    this.tool = tool;
    for (const button of document.querySelectorAll("[data-tool]")) {
      button.classList.toggle("active", button.dataset.tool === tool);
      button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
    }
    const canvas = this.renderer.canvas;
    canvas.classList.toggle("pan", tool === "navigate");
    canvas.classList.toggle("brush", tool === "paint" || tool === "erase");
    this.updateHint();
    this.requestDraw();
  }

  setPaintId(id) {
    this.paintId = Math.max(0, Math.floor(Number(id) || 0));
    $("paint-id").value = this.paintId ? String(this.paintId) : "";
    $("paint-swatch").style.background = this.paintId ? cssColour(this.paintId) : "transparent";
  }

  async newId() {
    const answer = await this.sync.request(EVENTS.DOJO_NEW_ID);
    if (!answer.ok) {
      this.toast(answer.error, "error");
      return 0;
    }
    this.setPaintId(answer.id);
    this.toast(`New segment ${answer.id} to paint with`, "ok");
    return answer.id;
  }

  // ---- navigation ----
  jumpTo(x, y, z) {
    this.camera.centreOn(Number(x), Number(y), z === undefined ? undefined : Number(z));
    this.viewChanged();
  }

  async jumpToSegment(segment) {
    try {
      const info = await api("GET", `/dojo/api/${encodeURIComponent(this.datasetId)}/segments/${segment}`);
      const [z, y, x] = info.centre;
      this.select(segment);
      this.jumpTo(x + 0.5, y + 0.5, z);
    } catch (error) {
      this.toast(error.message, "error");
    }
  }

  toggleLock(segment) {
    return this.editor.toggleLock(segment);
  }

  revertTo(version) {
    return this.editor.revertTo(version);
  }

  toast(message, kind, seconds) {
    return toast(message, kind, seconds);
  }

  // ---- keyboard and controls ----
  keydown(event) {
    if (isTyping(event) || document.querySelector("dialog[open]")) return;
    const command = commandFor(event);
    if (!command) return;
    event.preventDefault();
    this.run(command);
  }

  run(command) {
    if (command.startsWith("tool:")) return this.setTool(command.slice(5));
    const hovered = this.hover?.segment || 0;
    const commands = {
      pick: () => this.hover && this.pickAt(this.hover),
      "new-id": () => this.newId(),
      "brush-smaller": () => this.setBrush(this.view.brush / 1.25),
      "brush-larger": () => this.setBrush(this.view.brush * 1.25),
      accept: () => this.accept(),
      cancel: () => this.cancel(),
      lock: () => this.toggleLock(hovered || this.selected),
      mark: () => this.editor.addMark(this.hover || this.centreVoxel()),
      undo: () => this.editor.undo(false),
      redo: () => this.editor.undo(true),
      "z-prev": () => this.setZ(this.camera.z - 1),
      "z-next": () => this.setZ(this.camera.z + 1),
      "z-prev-10": () => this.setZ(this.camera.z - 10),
      "z-next-10": () => this.setZ(this.camera.z + 10),
      "zoom-in": () => { this.camera.zoomAt(1.25); this.viewChanged(); },
      "zoom-out": () => { this.camera.zoomAt(0.8); this.viewChanged(); },
      fit: () => { this.camera.fit(); this.viewChanged(); },
      "toggle-segmentation": () => this.setView("showSegmentation", !this.view.showSegmentation),
      "toggle-outline": () => this.setView("outline", !this.view.outline),
      "toggle-overlay": () => this.overlay.toggle(),
      "opacity-up": () => this.setView("opacity", Math.min(1, this.view.opacity + 0.1)),
      "opacity-down": () => this.setView("opacity", Math.max(0, this.view.opacity - 0.1)),
      jump: () => document.querySelector("#jump-form input[name=x]").focus(),
      search: () => { $("panel-segments").open = true; $("segment-search").focus(); },
      help: () => $("help-dialog").showModal(),
    };
    return commands[command]?.();
  }

  centreVoxel() {
    return { x: Math.floor(this.camera.x), y: Math.floor(this.camera.y), z: this.camera.z };
  }

  setBrush(size) {
    this.view.brush = Math.round(Math.min(120, Math.max(2, size)));
    $("brush").value = String(this.view.brush);
    this.viewChanged();
  }

  setView(key, value) {
    this.view[key] = value;
    const controls = { showSegmentation: "show-segmentation", outline: "outline", opacity: "opacity" };
    const input = $(controls[key]);
    if (input) {
      if (input.type === "checkbox") input.checked = value;
      else input.value = String(value);
    }
    this.recolour();
  }

  bindControls() {
    const z = $("z-slider");
    z.max = String(this.camera.shape[0] - 1);
    $("z-input").max = String(this.camera.shape[0] - 1);
    $("z-max").textContent = `/ ${this.camera.shape[0] - 1}`;
    z.addEventListener("input", () => this.setZ(z.value));
    $("z-input").addEventListener("change", (e) => this.setZ(e.target.value));
    $("z-prev").addEventListener("click", () => this.setZ(this.camera.z - 1));
    $("z-next").addEventListener("click", () => this.setZ(this.camera.z + 1));
    for (const key of ["contrast", "brightness"]) {
      $(key).addEventListener("input", (e) => { this.view[key] = Number(e.target.value); this.requestDraw(); });
    }
    $("opacity").addEventListener("input", (e) => this.setView("opacity", Number(e.target.value)));
    $("outline").addEventListener("change", (e) => this.setView("outline", e.target.checked));
    $("show-segmentation").addEventListener("change", (e) => this.setView("showSegmentation", e.target.checked));
    $("brush").addEventListener("input", (e) => this.setBrush(Number(e.target.value)));
    $("fill-depth").addEventListener("change", (e) => { this.view.fillDepth = Math.max(1, Math.min(64, Number(e.target.value) || 1)); });
    $("paint-id").addEventListener("change", (e) => this.setPaintId(e.target.value));
    $("new-id").addEventListener("click", () => this.newId());
    $("pick-id").addEventListener("click", () => {
      this.pickArmed = !this.pickArmed;
      $("pick-id").classList.toggle("active", this.pickArmed);
    });
    $("jump-form").addEventListener("submit", (e) => this.submitJump(e));
    $("open-3d").addEventListener("click", (e) => { // the 3D annotator, at the selected segment
      const dataset = encodeURIComponent(this.datasetId);
      e.currentTarget.href = `/annotator/${dataset}${this.selected ? `?sel=${this.selected}` : ""}`;
    });
    $("jump-segment-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = Number(new FormData(e.target).get("segment"));
      if (id > 0) this.jumpToSegment(id);
    });
    this.overlay.bind();
    $("preview-accept").addEventListener("click", () => this.accept());
    $("preview-cancel").addEventListener("click", () => this.cancel());
    this.bindToolbar();
    renderHelp($("help-list"));
    $("help-dialog").querySelector("[data-close]").addEventListener("click", () => $("help-dialog").close());
  }

  bindToolbar() {
    const labels = { navigate: "Navigate", merge: "Merge", split: "Split", cut: "3D cut", paint: "Paint", erase: "Erase", fill: "Fill" };
    for (const button of document.querySelectorAll("[data-tool]")) {
      const tool = button.dataset.tool;
      button.title = `${labels[tool]} (${shortcutLabel(`tool:${tool}`)})\n${TOOLS[tool]}`;
      button.disabled = !this.canEdit && EDIT_TOOLS.includes(tool);
      button.addEventListener("click", () => this.setTool(tool));
    }
    for (const button of document.querySelectorAll("[data-command]")) {
      const command = button.dataset.command;
      button.title = `${button.getAttribute("aria-label")} (${shortcutLabel(command)})`;
      if (!this.canEdit && ["lock", "mark", "undo", "redo"].includes(command)) button.disabled = true;
      button.addEventListener("click", () => this.run(command));
    }
  }

  submitJump(event) {
    event.preventDefault();
    const data = new FormData(event.target);
    const value = (k, fallback) => (data.get(k) === "" ? fallback : Number(data.get(k)));
    this.jumpTo(value("x", this.camera.x), value("y", this.camera.y), value("z", this.camera.z));
    this.renderer.canvas.focus();
  }
}

function throttle(fn, wait) {
  let last = 0;
  let timer = null;
  let pending = null;
  return (arg) => {
    pending = arg;
    const now = performance.now();
    if (now - last >= wait) {
      last = now;
      fn(pending);
    } else if (!timer) {
      timer = setTimeout(() => { timer = null; last = performance.now(); fn(pending); }, wait - (now - last));
    }
  };
}

async function main() {
  const datasetId = document.body.dataset.dataset;
  const state = await api("GET", `/dojo/api/${encodeURIComponent(datasetId)}/state`);
  const app = new App(state);
  installProbes(app);
  window.dojo = app; // for the browser tests and for curious users in the console
  app.start();
}

main().catch((error) => toast(`Dojo could not start: ${error.message}`, "error", 30));
