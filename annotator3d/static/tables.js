// The side tables: objects (visible, colour, id, name, sizes, centroid; sort and search) and
// markers (name, object, position, radius, colour; edit and delete).

import { element } from "/static/api.js";

const $ = (id) => document.getElementById(id);

export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  return Math.abs(value) >= 1000 || Math.abs(value) < 0.001 ? value.toExponential(digits - 1)
    : Number(value.toPrecision(digits)).toString();
}

const toUm3 = (nm3) => (nm3 === null || nm3 === undefined ? null : nm3 / 1e9);
const toUm2 = (nm2) => (nm2 === null || nm2 === undefined ? null : nm2 / 1e6);
const position = (p) => (p ? p.map((v) => Math.round(v)).join(", ") : "–");

export class ObjectTable {
  constructor(app) {
    this.app = app;
    this.body = $("objects").querySelector("tbody");
    this.search = $("object-search");
    this.sort = { key: "voxels", descending: true };
    this.rowsById = new Map();
    this.search.addEventListener("input", () => this.render());
    // A new table waits while a name is being typed in it (an edit elsewhere may refresh it).
    this.body.addEventListener("focusout", () => setTimeout(() => {
      if (this.deferred && !this.editing()) this.render();
    }));
    for (const th of $("objects").querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : key !== "name" && key !== "id" };
        this.render();
      });
    }
  }

  visibleRows() {
    const query = this.search.value.trim().toLowerCase();
    const rows = [...this.app.meshes.rows.values()].filter((o) => !query
      || String(o.id).startsWith(query) || (o.name || "").toLowerCase().includes(query));
    const { key, descending } = this.sort;
    const value = (o) => (key === "centroid" ? (o.centroid?.[2] ?? 0) : key === "name" ? (o.name || "~") : (o[key] ?? -1));
    rows.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      const order = typeof x === "string" ? x.localeCompare(y) : x - y;
      return (descending ? -order : order) || a.id - b.id;
    });
    return rows;
  }

  editing() {
    return this.body.contains(document.activeElement) && document.activeElement.type === "text";
  }

  render() {
    this.deferred = this.editing();
    if (this.deferred) return;
    const rows = this.visibleRows();
    this.rowsById.clear();
    this.body.replaceChildren(...rows.map((o) => this.rowOf(o)));
    $("object-count").textContent = `${this.app.meshes.rows.size}`;
    for (const th of $("objects").querySelectorAll("th[data-sort]")) {
      th.classList.toggle("sorted", th.dataset.sort === this.sort.key);
      th.classList.toggle("descending", th.dataset.sort === this.sort.key && this.sort.descending);
    }
  }

  rowOf(o) {
    const visible = element("input", { type: "checkbox", "aria-label": `Show object ${o.id}`, title: "Show or hide" });
    visible.checked = o.visible;
    visible.addEventListener("click", (e) => e.stopPropagation());
    visible.addEventListener("change", () => this.app.setVisible(o.id, visible.checked));
    const colour = element("input", { type: "color", value: o.colour, "aria-label": `Colour of object ${o.id}`, class: "colour" });
    colour.disabled = !this.app.canEdit;
    colour.addEventListener("click", (e) => e.stopPropagation());
    colour.addEventListener("change", () => this.app.recolour(o.id, colour.value));
    const name = element("input", { type: "text", value: o.name || "", placeholder: "unnamed", maxlength: "200", "aria-label": `Name of object ${o.id}` });
    name.readOnly = !this.app.canEdit;
    name.addEventListener("click", (e) => e.stopPropagation());
    name.addEventListener("keydown", (e) => { if (e.key === "Enter") name.blur(); e.stopPropagation(); });
    name.addEventListener("change", () => this.app.rename(o.id, name.value));
    const tr = element("tr", { dataset: { object: String(o.id) }, class: o.id === this.app.meshes.selected ? "selected" : "" },
      element("td", {}, visible), element("td", {}, colour),
      element("td", { class: "num" }, String(o.id)), element("td", { class: "name" }, name),
      element("td", { class: "num" }, (o.voxels ?? 0).toLocaleString()),
      element("td", { class: "num", title: `${o.volume ?? "–"} nm³` }, formatNumber(toUm3(o.volume))),
      element("td", { class: "num", title: `${o.surface_area ?? "–"} nm²` }, formatNumber(toUm2(o.surface_area))),
      element("td", { class: "centroid" }, position(o.centroid)));
    tr.addEventListener("click", () => this.app.select(o.id, true));
    this.rowsById.set(o.id, tr);
    return tr;
  }

  /** Update one row in place (a rename or recolour from someone else), unless it is being edited. */
  update(o) {
    const tr = this.body.querySelector(`tr[data-object="${o.id}"]`);
    if (!tr) return;
    const name = tr.querySelector("td.name input");
    if (document.activeElement !== name) name.value = o.name || "";
    tr.querySelector("input.colour").value = o.colour;
    tr.querySelector("input[type=checkbox]").checked = o.visible;
  }

  markSelected(id) {
    for (const tr of this.body.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const tr = this.body.querySelector(`tr[data-object="${id}"]`);
    if (tr) {
      tr.classList.add("selected");
      tr.scrollIntoView({ block: "nearest" });
    }
  }
}

export class MarkerTable {
  constructor(app) {
    this.app = app;
    this.body = $("markers").querySelector("tbody");
  }

  render(markers) {
    $("marker-count").textContent = `${markers.length}`;
    this.body.replaceChildren(...markers.map((m) => this.rowOf(m)));
  }

  rowOf(m) {
    const editable = this.app.canEdit;
    const colour = element("input", { type: "color", value: m.colour, "aria-label": `Colour of marker ${m.id}` });
    colour.disabled = !editable;
    colour.addEventListener("change", () => this.app.updateMarker(m.id, { colour: colour.value }));
    const name = element("input", { type: "text", value: m.name, placeholder: "unnamed", maxlength: "200", "aria-label": `Name of marker ${m.id}` });
    name.readOnly = !editable;
    name.addEventListener("keydown", (e) => { if (e.key === "Enter") name.blur(); e.stopPropagation(); });
    name.addEventListener("change", () => this.app.updateMarker(m.id, { name: name.value }));
    const radius = element("input", { type: "number", value: String(Number(m.radius.toPrecision(4))), min: "0.1", step: "any", "aria-label": `Radius of marker ${m.id} (nm)` });
    radius.readOnly = !editable;
    radius.addEventListener("keydown", (e) => e.stopPropagation());
    radius.addEventListener("change", () => this.app.updateMarker(m.id, { radius: Number(radius.value) }));
    const remove = element("button", { class: "small", title: "Delete the marker", "aria-label": `Delete marker ${m.id}` }, "✕");
    remove.hidden = !editable;
    remove.addEventListener("click", () => this.app.deleteMarker(m.id));
    const object = element("a", { href: "#", title: "Select the object" }, m.segment ? String(m.segment) : "–");
    object.addEventListener("click", (e) => {
      e.preventDefault();
      if (m.segment) this.app.select(m.segment, true);
    });
    const where = element("td", { class: "centroid", title: "Centre the view on it" }, position(m.position));
    where.addEventListener("click", () => this.app.focusPoint(m.position, m.radius * 20));
    return element("tr", { dataset: { marker: String(m.id) } },
      element("td", {}, colour), element("td", { class: "name" }, name), element("td", { class: "num" }, object),
      where, element("td", { class: "num radius" }, radius), element("td", {}, remove));
  }
}
