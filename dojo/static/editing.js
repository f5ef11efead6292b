// What each tool does once the gesture is over: build the request, send it, show the answer.
// Every edit goes through Sync.edit (fresh txid, base_version); a refusal becomes a toast.

import { EVENTS } from "/events.js";
import { ask } from "./ui.js";

function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export class Editor {
  constructor(app) {
    this.app = app;
  }

  async send(kind, params, done) {
    const answer = await this.app.sync.edit(kind, params);
    if (answer.detail?.replaced) this.app.sync.pull(); // a job replaced the segmentation
    if (!answer.ok) this.app.toast(answer.error, "error");
    else if (done) this.app.toast(done, "ok");
    return answer;
  }

  // ---- merge ----
  async merge(target, other) {
    if (!target || !other || target === other) return;
    await this.send("merge", { segments: [target, other] }, `Merged ${other} into ${target}`);
  }

  // ---- strokes: paint, erase, split line ----
  async finishStroke(stroke) {
    if (!stroke || !stroke.points.length) return;
    if (stroke.kind === "split") return this.previewSplit(stroke);
    const { z, points, radius } = stroke;
    const app = this.app;
    if (stroke.kind === "paint") {
      stroke.segment = app.paintId || await app.newId();
      if (!stroke.segment) return;
    }
    app.pendingStrokes.push(stroke);
    app.requestDraw();
    const answer = stroke.kind === "paint"
      ? await this.send("paint", { z, points, radius, segment: stroke.segment })
      : await this.send("erase", { z, points, radius });
    if (answer.ok) stroke.version = answer.edit.version;
    else app.pendingStrokes.splice(app.pendingStrokes.indexOf(stroke), 1);
    app.requestDraw();
  }

  async previewSplit(stroke) {
    if (stroke.points.length < 2) {
      this.app.toast("Draw a line across the segment to split it.");
      return;
    }
    const band = Math.min(64, Math.max(2, 4 / Math.min(1, this.app.camera.zoom)));
    const params = { z: stroke.z, points: stroke.points, band: Math.round(band * 10) / 10 };
    this.app.previewStroke = stroke;
    await this.preview("split_line", params, "Split along the line");
  }

  // ---- 3D cut: seeds A and B, on one or several slices ----
  seed(v, sideB) {
    const app = this.app;
    const fragment = app.renderer.labelAt(v.x, v.y, v.z);
    const segment = fragment ? app.segmentOf(fragment) : 0;
    if (!segment) {
      app.toast("Put the seeds inside the segment to cut.");
      return;
    }
    if (app.seeds.segment && app.seeds.segment !== segment) {
      app.toast(`The seeds must all lie in segment ${app.seeds.segment} (Esc starts again).`, "error");
      return;
    }
    app.clearPreview();
    app.seeds.segment = segment;
    (sideB ? app.seeds.b : app.seeds.a).push([v.z, v.y, v.x]);
    (sideB ? app.seeds.fragmentsB : app.seeds.fragmentsA).add(fragment);
    app.updateHint();
    app.requestDraw();
  }

  previewCut() {
    const { seeds } = this.app;
    if (!seeds.a.length || !seeds.b.length) {
      this.app.toast("Click seeds A, then Shift+click seeds B, before the preview.");
      return;
    }
    const shared = [...seeds.fragmentsA].some((f) => seeds.fragmentsB.has(f));
    if (!shared) {
      const params = { segment: seeds.segment, seeds_a: [...seeds.fragmentsA], seeds_b: [...seeds.fragmentsB] };
      return this.preview("split_fragments", params, `Split segment ${seeds.segment} between its fragments`);
    }
    const params = { segment: seeds.segment, seeds_a: seeds.a, seeds_b: seeds.b };
    const slices = new Set([...seeds.a, ...seeds.b].map((s) => s[0])).size;
    return this.preview("cut", params, slices > 1 ? `3D cut over ${slices} slices` : "2D cut on this slice");
  }

  async preview(kind, params, text) {
    const app = this.app;
    app.setBusy("Computing the preview…");
    const answer = await app.sync.request(EVENTS.DOJO_PREVIEW, { kind, params });
    app.setBusy(null);
    if (!answer.ok) {
      app.toast(answer.error, "error");
      app.previewStroke = null;
      app.requestDraw();
      return;
    }
    const fragments = answer.mapping ? new Set(Object.keys(answer.mapping).map(Number)) : null;
    app.showPreview({
      kind, params, text, box: answer.box, bits: answer.mask ? base64Bytes(answer.mask) : null, fragments,
    });
  }

  async accept() {
    const app = this.app;
    const preview = app.preview;
    if (!preview) return;
    app.clearPreview();
    const answer = await this.send(preview.kind, preview.params, "Split done");
    if (answer.ok && preview.kind !== "split_line") app.clearSeeds();
  }

  // ---- fill, lock, marks, undo ----
  async fill(v, threeD) {
    const app = this.app;
    const [depth, height, width] = app.camera.shape;
    if (v.x < 0 || v.y < 0 || v.x >= width || v.y >= height || v.z >= depth) return;
    const segment = app.paintId || await app.newId();
    if (!segment) return;
    const fillDepth = threeD ? app.view.fillDepth : 0;
    await this.send("fill", { z: v.z, y: v.y, x: v.x, segment, depth: fillDepth });
  }

  async toggleLock(segment) {
    const app = this.app;
    if (!segment) {
      app.toast("Point at a segment (or select one) to lock it.");
      return;
    }
    const locked = !app.locks.has(segment);
    const answer = await app.sync.request(EVENTS.DOJO_LOCK, { segment, locked });
    if (!answer.ok) app.toast(answer.error, "error");
    else {
      app.setLocks(answer.locks);
      app.toast(locked ? `Segment ${segment} is locked: only you can edit it` : `Segment ${segment} is unlocked`, "ok");
    }
  }

  async addMark(v) {
    const note = await ask({
      title: "Problem mark", text: `At x ${v.x}, y ${v.y}, z ${v.z}. Everyone proofreading sees it.`,
      input: true, ok: "Add mark",
    });
    if (note === null) return;
    const answer = await this.app.sync.request(EVENTS.DOJO_MARK_ADD, { z: v.z, y: v.y, x: v.x, note: note.trim() });
    if (!answer.ok) this.app.toast(answer.error, "error");
  }

  async undo(redo = false) {
    const answer = await this.app.sync.history(redo ? EVENTS.DOJO_REDO : EVENTS.DOJO_UNDO);
    if (!answer.ok) this.app.toast(answer.error, "error");
    else this.app.toast(redo ? "Redone" : "Undone", "ok");
  }

  async revertTo(version) {
    const sure = await ask({
      title: `Revert to version ${version}?`,
      text: "One new edit brings the segmentation back to how it was right after this version. "
        + "Later edits stay in the history and can be reverted to as well.",
      ok: "Revert",
    });
    if (!sure) return;
    const answer = await this.app.sync.history(EVENTS.DOJO_REVERT, { version });
    if (!answer.ok) this.app.toast(answer.error, "error");
    else this.app.toast(`Reverted to version ${version}`, "ok");
  }
}
