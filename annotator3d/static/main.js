// The 3D annotator's client: the dataset's objects as meshes (three.js), their table, marker
// points, exports, and live updates from everyone viewing the dataset and from Dojo's edits.
// Modules beside this one: scene (three.js view), objects (meshes), slice (EM plane),
// tables (object and marker tables), markers (marker spheres), sync (Socket.IO).

import { EVENTS } from "/events.js";
import { api } from "/static/api.js";
import { connectJobs } from "/static/jobs_view.js";
import { MarkerSpheres } from "./markers.js";
import { ObjectMeshes } from "./objects.js";
import { Scene } from "./scene.js";
import { SlicePlane } from "./slice.js";
import { Sync } from "./sync.js";
import { MarkerTable, ObjectTable } from "./tables.js";

const $ = (id) => document.getElementById(id);
const HOVER_REST = 120; // ms

function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

function toast(message, kind = "info", seconds = kind === "error" ? 7 : 3.5) {
  const note = document.createElement("div");
  note.className = `toast ${kind}`;
  note.setAttribute("role", kind === "error" ? "alert" : "status");
  note.textContent = message;
  $("toasts").append(note);
  setTimeout(() => note.remove(), seconds * 1000);
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

class App {
  constructor(state) {
    const body = document.body.dataset;
    this.datasetId = body.dataset;
    this.canEdit = body.role !== "viewer";
    this.dataset = state.dataset;
    const [vz, vy, vx] = state.dataset.voxel_size;
    const [dz, dy, dx] = state.dataset.shape;
    this.voxelSize = [vx, vy, vz]; // nm, x y z like every position here
    this.extent = [dx * vx, dy * vy, dz * vz];
    this.version = state.version;
    this.markers = state.markers;
    this.markerMode = false;
    this.tableLoads = 0;
    this.changes = 0; // names and colours received: a table asked for before is older
    const reload = debounce(() => this.loadObjects(), 500);
    this.refreshTable = () => {
      this.reloading = true;
      reload();
    };
    this.refineDetail = debounce(() => this.meshes.updateDetail(), 300);
    this.scene = new Scene($("view"), this.extent, {
      pick: (hit, event) => this.picked(hit, event), changed: () => this.cameraMoved(),
      hover: (event) => this.hovered(event),
    });
    this.meshes = new ObjectMeshes(this);
    this.spheres = new MarkerSpheres(this);
    this.objectTable = new ObjectTable(this);
    this.markerTable = new MarkerTable(this);
    const image = state.dataset.layers.find((l) => l.kind === "image");
    this.slice = image ? new SlicePlane(this, image, state.tile_size) : null;
    this.sync = new Sync(this.datasetId, {
      object: (o) => this.objectChanged(o), markers: (m) => this.setMarkers(m),
      meshUpdated: (note) => this.meshUpdated(note), status: (text, live) => this.connection(text, live),
      joined: (answer, again) => this.joined(answer, again),
    });
  }

  async start() {
    new ResizeObserver(() => this.scene.resize()).observe($("stage"));
    this.bindControls();
    this.setMarkers(this.markers);
    this.sync.connect();
    connectJobs({ updated: (job) => this.jobUpdated(job) });
    await this.loadObjects();
    const wanted = Number(new URLSearchParams(window.location.search).get("sel"));
    if (wanted && this.meshes.rows.has(wanted)) {
      this.select(wanted, false);
      this.whenLoaded(() => this.focusObject(wanted));
    }
  }

  async loadObjects() {
    this.tableLoads += 1;
    this.reloading = false;
    const asked = this.changes;
    try {
      const { objects } = await api("GET", `/annotator/api/${encodeURIComponent(this.datasetId)}/objects`);
      this.meshes.setTable(objects, asked);
      this.objectTable.render();
      this.showSelected();
    } catch (error) {
      toast(`Objects: ${error.message}`, "error");
    } finally {
      this.tableLoads -= 1;
      this.progressChanged();
    }
  }

  /** True when every requested mesh and table has arrived (tests wait for it). */
  settled() {
    return this.tableLoads === 0 && !this.reloading && this.meshes.pending() === 0;
  }

  whenLoaded(fn) {
    if (this.settled()) fn();
    else setTimeout(() => this.whenLoaded(fn), 100);
  }

  progressChanged() {
    const pending = this.meshes.pending();
    const unmeasured = [...this.meshes.rows.values()].some((o) => o.mesh && o.surface_area === null);
    if (!pending && unmeasured && !this.remeasured) {
      this.remeasured = true; // surface areas are known once the meshes are made: ask once
      this.refreshTable();
    }
    $("progress").textContent = pending ? `loading ${pending} mesh${pending > 1 ? "es" : ""}…` : "";
  }

  // ---- controls ----
  bindControls() {
    $("background").addEventListener("input", (e) => this.scene.setBackground(e.target.value));
    $("light").addEventListener("input", (e) => this.scene.setLight(Number(e.target.value)));
    const smoothing = debounce((value) => this.meshes.setSmoothing(value), 300);
    $("smoothing").addEventListener("input", (e) => smoothing(Number(e.target.value)));
    $("camera-mode").addEventListener("change", (e) => this.scene.useControls(e.target.value));
    $("show-box").addEventListener("change", (e) => this.scene.setBoxVisible(e.target.checked));
    $("show-markers").addEventListener("change", (e) => this.spheres.setVisible(e.target.checked));
    $("reset-view").addEventListener("click", () => this.scene.fit());
    $("tool-marker").addEventListener("click", () => this.setMarkerMode(!this.markerMode));
    $("tool-marker").hidden = !this.canEdit;
    for (const node of document.querySelectorAll(".edit-only")) node.hidden = !this.canEdit;
    this.bindSlice();
    this.bindSelected();
    this.bindTables();
    this.bindExports();
    window.addEventListener("keydown", (e) => this.keydown(e));
  }

  bindSlice() {
    if (!this.slice) {
      $("slice-row").hidden = true;
      return;
    }
    const input = $("slice-z");
    input.max = String(this.dataset.shape[0] - 1);
    input.value = String(Math.floor(this.dataset.shape[0] / 2));
    const update = () => {
      $("slice-z-text").textContent = `z ${input.value}`;
      if ($("show-slice").checked) this.slice.show(Number(input.value)).catch((e) => toast(e.message, "error"));
      else this.slice.hide();
    };
    input.addEventListener("input", debounce(update, 120));
    $("show-slice").addEventListener("change", update);
    $("slice-z-text").textContent = `z ${input.value}`;
  }

  bindSelected() {
    $("sel-name").readOnly = !this.canEdit;
    $("sel-colour").disabled = !this.canEdit;
    $("sel-name").addEventListener("keydown", (e) => { if (e.key === "Enter") e.target.blur(); e.stopPropagation(); });
    $("sel-name").addEventListener("change", (e) => this.rename(this.meshes.selected, e.target.value));
    $("sel-colour").addEventListener("change", (e) => this.recolour(this.meshes.selected, e.target.value));
    $("sel-opacity").addEventListener("input", (e) => this.meshes.set(this.meshes.selected, { opacity: Number(e.target.value) }));
    $("sel-brightness").addEventListener("input", (e) => this.meshes.set(this.meshes.selected, { brightness: Number(e.target.value) }));
    $("sel-hide").addEventListener("click", () => this.setVisible(this.meshes.selected, false));
    $("sel-focus").addEventListener("click", () => this.focusObject(this.meshes.selected));
  }

  bindTables() {
    const base = `/annotator/api/${encodeURIComponent(this.datasetId)}`;
    $("objects-csv").href = `${base}/objects.csv`;
    $("markers-csv").href = `${base}/markers.csv`;
    $("show-all").addEventListener("click", () => this.setAllVisible(true));
    $("show-none").addEventListener("click", () => this.setAllVisible(false));
    $("markers-import").addEventListener("change", (e) => this.importMarkers(e.target));
  }

  bindExports() {
    $("export-png").addEventListener("click", () => this.exportPicture());
    $("export-mesh").addEventListener("click", () => this.exportMeshes());
  }

  keydown(event) {
    if (event.target.closest?.("input, textarea, select")) return;
    if (event.key === "m" || event.key === "M") this.setMarkerMode(!this.markerMode);
    else if (event.key === "f" || event.key === "F") this.scene.fit();
    else if (event.key === "Escape") this.setMarkerMode(false);
  }

  setMarkerMode(on) {
    this.markerMode = on && this.canEdit;
    $("tool-marker").classList.toggle("active", this.markerMode);
    $("tool-marker").setAttribute("aria-pressed", String(this.markerMode));
    $("tool-hint").textContent = this.markerMode ? "Click on an object to drop a marker · Esc to stop" : "";
  }

  // ---- picking and selection ----
  picked(hit, event) {
    if (this.markerMode && hit?.kind === "object") {
      this.addMarker(hit.id, hit.point);
      return;
    }
    if (hit?.kind === "marker") {
      const marker = this.markers.find((m) => m.id === hit.id);
      if (marker?.segment) this.select(marker.segment, false);
      this.markerTable.body.querySelector(`tr[data-marker="${hit.id}"]`)?.scrollIntoView({ block: "nearest" });
      return;
    }
    this.select(hit?.kind === "object" ? hit.id : 0, false, event);
  }

  /** What is under the pointer, in the status bar: ray casts are costly on big meshes, so
   * only once the pointer has rested a moment. */
  hovered(event) {
    clearTimeout(this.hoverTimer);
    this.hoverTimer = setTimeout(() => this.showHover(event.clientX, event.clientY), HOVER_REST);
  }

  showHover(clientX, clientY) {
    const hit = this.scene.pick(clientX, clientY);
    const row = hit?.kind === "object" ? this.meshes.rows.get(hit.id) : null;
    const at = hit ? hit.point.map((v) => Math.round(v)).join(", ") : "";
    $("status-hover").textContent = row ? `object ${row.id}${row.name ? ` · ${row.name}` : ""} · ${at} nm` : at ? `${at} nm` : "";
  }

  select(id, centre) {
    this.meshes.select(id);
    this.objectTable.markSelected(id);
    this.showSelected();
    const params = new URLSearchParams(window.location.search);
    if (id) params.set("sel", String(id));
    else params.delete("sel");
    window.history.replaceState(null, "", `${window.location.pathname}${params.size ? `?${params}` : ""}`);
    if (centre && id) this.focusObject(id);
  }

  showSelected() {
    const row = this.meshes.rows.get(this.meshes.selected);
    $("selected-box").hidden = !row;
    $("selected-none").hidden = Boolean(row);
    $("selected-id").textContent = row ? `#${row.id}` : "";
    $("open-dojo").href = this.dojoUrl(row);
    if (!row) return;
    if (document.activeElement !== $("sel-name")) $("sel-name").value = row.name || "";
    $("sel-colour").value = row.colour;
    $("sel-opacity").value = String(row.opacity);
    $("sel-brightness").value = String(row.brightness);
    $("sel-dojo").href = this.dojoUrl(row);
    $("sel-hide").textContent = row.visible ? "Hide" : "Show";
  }

  /** Dojo at the object's centroid, the object selected (Dojo's URL state: z, x, y, sel). */
  dojoUrl(row) {
    const base = `/dojo/${encodeURIComponent(this.datasetId)}`;
    if (!row?.centroid) return base;
    const [x, y, z] = row.centroid.map((v, i) => Math.floor(v / this.voxelSize[i]));
    return `${base}?${new URLSearchParams({ z, x, y, sel: row.id })}`;
  }

  focusObject(id) {
    const sphere = this.meshes.sphere(id);
    if (sphere) this.focusPoint(sphere.center.toArray(), sphere.radius);
  }

  focusPoint(point, radius) {
    const target = this.scene.controls.target;
    const offset = this.scene.camera.position.clone().sub(target);
    const distance = Math.max(radius, 1) / Math.sin((this.scene.camera.fov * Math.PI) / 360) * 1.2;
    target.set(...point);
    this.scene.camera.position.copy(target).add(offset.setLength(distance));
    this.scene.controls.update();
    this.scene.changed();
  }

  cameraMoved() {
    this.refineDetail();
  }

  setVisible(id, visible) {
    this.meshes.set(id, { visible });
    const row = this.meshes.rows.get(id);
    if (row) this.objectTable.update(row);
    this.showSelected();
  }

  setAllVisible(visible) {
    for (const id of this.meshes.rows.keys()) this.meshes.set(id, { visible });
    this.objectTable.render();
    this.showSelected();
  }

  // ---- shared changes: sent to the server, applied when it broadcasts them ----
  async rename(id, name) {
    const answer = await this.sync.request(EVENTS.ANNOTATOR_RENAME, { segment: id, name });
    if (!answer.ok) toast(answer.error, "error");
    else this.objectChanged({ id, name: answer.name });
  }

  async recolour(id, colour) {
    const answer = await this.sync.request(EVENTS.ANNOTATOR_COLOUR, { segment: id, colour });
    if (!answer.ok) toast(answer.error, "error");
    else this.objectChanged({ id, colour: answer.colour });
  }

  objectChanged(o) {
    const row = this.meshes.rows.get(o.id);
    if (!row) return;
    this.changes += 1;
    const changes = { changedAt: this.changes };
    if ("name" in o) changes.name = o.name;
    if ("colour" in o) changes.colour = o.colour;
    this.meshes.set(o.id, changes);
    this.objectTable.update(row);
    if (o.id === this.meshes.selected) this.showSelected();
  }

  defaultRadius() {
    return Math.max(...this.voxelSize) * 2;
  }

  async addMarker(segment, point) {
    const name = `marker ${this.markers.length + 1}`;
    const answer = await this.sync.request(EVENTS.ANNOTATOR_MARKER_ADD, {
      segment, position: point, name, radius: this.defaultRadius(), colour: "#ffd400",
    });
    if (!answer.ok) toast(answer.error, "error");
    else if (!this.markers.some((m) => m.id === answer.marker.id)) this.setMarkers([...this.markers, answer.marker]);
  }

  async updateMarker(id, changes) {
    const answer = await this.sync.request(EVENTS.ANNOTATOR_MARKER_UPDATE, { id, ...changes });
    if (!answer.ok) {
      toast(answer.error, "error");
      this.setMarkers(this.markers); // put the table back as it was
    }
  }

  async deleteMarker(id) {
    const answer = await this.sync.request(EVENTS.ANNOTATOR_MARKER_DELETE, { id });
    if (!answer.ok) toast(answer.error, "error");
  }

  setMarkers(markers) {
    this.markers = markers;
    this.spheres.set(markers);
    this.markerTable.render(markers);
  }

  async importMarkers(input) {
    const file = input.files[0];
    if (!file) return;
    try {
      const csv = await file.text();
      const { markers } = await api("POST", `/annotator/api/${encodeURIComponent(this.datasetId)}/markers.csv`,
        { csv, replace: $("markers-replace").checked });
      this.setMarkers(markers);
      toast(`Imported ${file.name}: ${markers.length} markers now.`, "ok");
    } catch (error) {
      toast(error.message, "error", 12);
    } finally {
      input.value = "";
    }
  }

  // ---- live updates ----
  meshUpdated(note) {
    if (note.removed) this.meshes.remove(note.segment);
    else if (!this.meshes.refetch(note.segment)) this.refreshTable(); // a new object
    this.refreshTable(); // sizes and centroids changed
    this.version = Math.max(this.version, note.version);
    $("status-version").textContent = `version ${this.version}`;
  }

  joined(answer, again) {
    this.version = answer.version;
    $("status-version").textContent = `version ${this.version}`;
    if (!again) return;
    // After a reconnect: names, colours, markers or meshes may have changed meanwhile.
    this.loadObjects();
    for (const id of this.meshes.rows.keys()) this.meshes.refetch(id);
    api("GET", `/annotator/api/${encodeURIComponent(this.datasetId)}/markers`)
      .then(({ markers }) => this.setMarkers(markers)).catch((e) => toast(e.message, "error"));
  }

  jobUpdated(job) {
    // A job that replaced the segmentation changes every object: start again from the table.
    if (job.state === "done" && job.options?.dataset === this.datasetId) this.joined({ version: this.version }, true);
  }

  connection(text, live) {
    const node = $("connection");
    node.textContent = live ? "● live" : text;
    node.className = `connection ${live ? "live" : "down"}`;
  }

  // ---- exports ----
  async exportPicture() {
    const width = Math.max(16, Math.min(8192, Number($("png-width").value) || 1920));
    const height = Math.max(16, Math.min(8192, Number($("png-height").value) || 1080));
    const blob = await this.scene.picture(width, height);
    download(blob, `${this.datasetId}-${width}x${height}.png`);
    return blob;
  }

  /** Download the selected or the visible objects' meshes (POST: a selection may be long). */
  async exportMeshes() {
    const which = $("mesh-which").value;
    const segments = which === "selected" ? [this.meshes.selected].filter(Boolean)
      : [...this.meshes.rows.values()].filter((r) => r.visible).map((r) => r.id);
    if (!segments.length) {
      toast(which === "selected" ? "Select an object first." : "No object is visible.", "error");
      return;
    }
    const format = $("mesh-format").value;
    $("export-mesh").disabled = true;
    try {
      const response = await fetch(`/annotator/api/${encodeURIComponent(this.datasetId)}/export`, {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ format, segments }),
      });
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
      const name = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "")?.[1];
      download(await response.blob(), name || `${this.datasetId}.${format}`);
    } catch (error) {
      toast(`Export: ${error.message}`, "error");
    } finally {
      $("export-mesh").disabled = false;
    }
  }

  toast(message, kind) {
    toast(message, kind);
  }
}

async function main() {
  const id = document.body.dataset.dataset;
  try {
    const state = await api("GET", `/annotator/api/${encodeURIComponent(id)}/state`);
    const app = new App(state);
    window.annotator = app; // for the browser tests and the console
    await app.start();
  } catch (error) {
    toast(`Could not open the annotator: ${error.message}`, "error", 60);
    throw error;
  }
}

main();
