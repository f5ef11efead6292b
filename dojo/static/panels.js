// Side panels: the segment table, problem marks, edit history and who is here.

import { EVENTS } from "/events.js";
import { api, element } from "/static/api.js";
import { cssColour } from "./labels.js";

const $ = (id) => document.getElementById(id);

export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

function timeAgo(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return iso;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export class SegmentTable {
  constructor(app) {
    this.app = app;
    this.body = $("segments").querySelector("tbody");
    this.search = $("segment-search");
    this.sort = $("segment-sort");
    this.refresh = debounce(() => this.load(), 250);
    this.search.addEventListener("input", this.refresh);
    this.sort.addEventListener("change", () => this.load());
    this.editing = null;
  }

  async load() {
    if (this.editing) return; // do not replace a name being typed
    const [sort, order] = this.sort.value.split(":");
    const query = new URLSearchParams({ q: this.search.value.trim(), sort, order, limit: "200" });
    try {
      const data = await api("GET", `/dojo/api/${encodeURIComponent(this.app.datasetId)}/segments?${query}`);
      this.render(data.segments);
      $("segment-count").textContent = `${data.total}`;
    } catch (error) {
      this.app.toast(`Segment table: ${error.message}`, "error");
    }
  }

  render(rows) {
    this.body.replaceChildren(...rows.map((row) => this.rowOf(row)));
    this.markSelected();
  }

  rowOf(row) {
    const locked = this.app.locks.get(row.id) ?? row.locked_by;
    const lock = element("button", {
      class: `lock${locked ? " on" : ""}`, title: locked ? `Locked by ${locked}: click to unlock` : "Lock",
      "aria-label": locked ? `Unlock segment ${row.id}` : `Lock segment ${row.id}`,
    });
    lock.innerHTML = '<svg><use href="#i-lock"/></svg>';
    lock.addEventListener("click", (event) => {
      event.stopPropagation();
      this.app.toggleLock(row.id);
    });
    const name = element("td", { class: "name", title: "Double-click to rename" }, row.name || "");
    name.addEventListener("dblclick", (event) => {
      event.stopPropagation();
      this.rename(name, row);
    });
    const tr = element("tr", { dataset: { segment: String(row.id) } },
      element("td", {}, element("span", { class: "swatch", style: `background:${cssColour(row.id)}` })),
      element("td", { class: "num" }, String(row.id)),
      name,
      element("td", { class: "num" }, row.voxels.toLocaleString()),
      element("td", { title: locked || "" }, lock),
      element("td", { class: "editor", title: row.last_editor || "" }, row.last_editor || ""));
    tr.addEventListener("click", () => this.app.jumpToSegment(row.id));
    return tr;
  }

  rename(cell, row) {
    const input = element("input", { value: row.name || "", "aria-label": `Name of segment ${row.id}` });
    this.editing = row.id;
    cell.replaceChildren(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      this.editing = null;
      if (save && input.value.trim() !== (row.name || "")) {
        const answer = await this.app.sync.request(EVENTS.DOJO_RENAME, { segment: row.id, name: input.value });
        if (!answer.ok) this.app.toast(answer.error, "error");
      }
      this.load();
    };
    input.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
  }

  markSelected() {
    for (const tr of this.body.children) {
      tr.classList.toggle("selected", Number(tr.dataset.segment) === this.app.selected);
    }
  }
}

export class MarksPanel {
  constructor(app) {
    this.app = app;
    this.list = $("marks");
  }

  render(marks) {
    const open = marks.filter((m) => !m.resolved).length;
    $("mark-count").textContent = marks.length ? `${open} open` : "";
    this.list.replaceChildren(...marks.map((mark) => {
      const text = element("span", { class: "grow", title: `${mark.note || "(no note)"} — ${mark.user}` },
        `z${mark.z} · ${mark.note || "(no note)"}`);
      text.addEventListener("click", () => this.app.jumpTo(mark.x, mark.y, mark.z));
      const resolve = element("button", { title: mark.resolved ? "Reopen" : "Mark as resolved" }, mark.resolved ? "Reopen" : "Resolve");
      resolve.addEventListener("click", () => this.update(EVENTS.DOJO_MARK_UPDATE, { id: mark.id, resolved: !mark.resolved }));
      const remove = element("button", { class: "danger", title: "Delete", "aria-label": `Delete mark ${mark.id}` }, "✕");
      remove.addEventListener("click", () => this.update(EVENTS.DOJO_MARK_DELETE, { id: mark.id }));
      return element("li", { class: mark.resolved ? "resolved" : "", dataset: { mark: String(mark.id) } },
        element("span", { class: "swatch", style: `background:${mark.resolved ? "#8b94a7" : "#ffb84d"}` }), text, resolve, remove);
    }));
  }

  async update(event, payload) {
    const answer = await this.app.sync.request(event, payload);
    if (!answer.ok) this.app.toast(answer.error, "error");
  }
}

function describeEdit(edit) {
  const p = edit.payload || {};
  switch (edit.kind) {
    case "merge": return `merge ${p.segments?.slice(1).join(", ")} → ${p.segments?.[0]}`;
    case "paint": return `paint ${p.segment} on z${p.z}`;
    case "erase": return `erase on z${p.z}`;
    case "fill": return `fill ${p.segment} at z${p.z}${p.depth ? ` ±${p.depth}` : ""}`;
    case "split_line": return `split on z${p.z}`;
    case "cut": return `3D cut of ${p.segment}`;
    case "split_fragments": return `split ${p.segment} by fragments`;
    case "undo": return `undo v${p.of}`;
    case "redo": return `redo v${p.of}`;
    case "revert": return `revert to v${p.to}`;
    case "replace": return `segmentation replaced: ${p.source || "new"} (the old one: layer ${p.kept})`;
    default: return edit.kind;
  }
}

export class HistoryPanel {
  constructor(app) {
    this.app = app;
    this.list = $("history");
    this.edits = new Map();
  }

  async load() {
    try {
      const data = await api("GET", `/dojo/api/${encodeURIComponent(this.app.datasetId)}/history`);
      for (const edit of data.edits) this.edits.set(edit.version, edit);
      this.render();
    } catch (error) {
      this.app.toast(`History: ${error.message}`, "error");
    }
  }

  /** Forget the edits shown (the history before a replacement is archived). */
  clear() {
    this.edits.clear();
    this.render();
  }

  add(edit) {
    this.edits.set(edit.version, edit);
    if (edit.undo_of && this.edits.has(edit.undo_of)) {
      const column = edit.kind === "undo" ? "undone_by" : edit.kind === "redo" ? "redone_by" : null;
      if (column) this.edits.get(edit.undo_of)[column] = edit.version;
    }
    this.render();
  }

  render() {
    $("version-text").textContent = `v${this.app.sync.version}`;
    const edits = [...this.edits.values()].sort((a, b) => b.version - a.version).slice(0, 200);
    this.list.replaceChildren(...edits.map((edit) => {
      const undone = edit.kind !== "undo" && edit.undone_by && !edit.redone_by;
      const revert = element("button", { title: `Bring everything back to the state right after version ${edit.version}` }, "Revert to here");
      revert.disabled = edit.version >= this.app.sync.version;
      revert.addEventListener("click", () => this.app.revertTo(edit.version));
      return element("li", { class: undone ? "undone" : "", dataset: { version: String(edit.version) } },
        element("span", { class: "v" }, `v${edit.version}`),
        element("span", { class: "grow", title: `${edit.user} · ${edit.time}` },
          element("span", { class: "kind" }, describeEdit(edit)), " ",
          element("span", { class: "when" }, `${edit.user} · ${timeAgo(edit.time)}`)),
        revert);
    }));
  }
}

export function renderPresence(app, users) {
  const seen = new Map();
  for (const member of users) if (!seen.has(member.user)) seen.set(member.user, member);
  $("presence").replaceChildren(...[...seen.values()].map((member) =>
    element("span", { class: "user", title: `${member.user} is here` },
      element("span", { class: "dot", style: `background:${member.colour}` }), member.user)));
}
