// Pointer input on the canvas (mouse, pen and touch alike, through pointer events): pan, zoom,
// and each tool's gesture — click, stroke or seed — handed to the app as voxel coordinates.

const CLICK_SLOP = 4; // screen pixels a click may move before it becomes a drag

export const TOOLS = {
  navigate: "Drag to pan · click a segment to select it · Shift+click merges it into the selection",
  merge: "Click the segment to keep, then click each segment to merge into it",
  split: "Draw a line across one segment, then accept or cancel the preview",
  cut: "Click seeds A · Shift+click seeds B (on any slices) · Enter previews, Enter again accepts",
  paint: "Drag to paint with the paint id · [ ] brush size · Alt+click picks an id",
  erase: "Drag to erase to background · [ ] brush size",
  fill: "Click fills the region in 2D · Shift+click fills in 3D within ± depth slices",
};

export class PointerInput {
  constructor(canvas, app) {
    this.canvas = canvas;
    this.app = app;
    this.gesture = null;
    this.space = false;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", () => this.cancelGesture());
    canvas.addEventListener("pointerleave", () => this.leave());
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    window.addEventListener("keydown", (e) => {
      if (e.key === " " && !isTyping(e)) { this.space = true; this.updateCursor(); e.preventDefault(); }
    });
    window.addEventListener("keyup", (e) => {
      if (e.key === " ") { this.space = false; this.updateCursor(); }
    });
  }

  screen(e) {
    const rect = this.canvas.getBoundingClientRect();
    return { sx: e.clientX - rect.left, sy: e.clientY - rect.top };
  }

  voxel(p) {
    const v = this.app.camera.toVoxel(p.sx, p.sy);
    return { x: Math.floor(v.x), y: Math.floor(v.y), z: this.app.camera.z };
  }

  updateCursor() {
    const tool = this.app.tool;
    const c = this.canvas.classList;
    c.toggle("panning", this.gesture?.kind === "pan");
    c.toggle("pan", this.space || (tool === "navigate" && this.gesture?.kind !== "pan"));
    c.toggle("brush", !this.space && (tool === "paint" || tool === "erase"));
  }

  down(e) {
    this.canvas.focus({ preventScroll: true });
    const p = this.screen(e);
    this.canvas.setPointerCapture(e.pointerId);
    const tool = this.app.tool;
    if (e.button === 1 || e.button === 2 || this.space) {
      this.gesture = { kind: "pan", last: p };
    } else if (e.button !== 0) {
      return;
    } else if (e.altKey) {
      this.gesture = { kind: "pick", start: p };
    } else if (tool === "split" || tool === "paint" || tool === "erase") {
      const v = this.voxel(p);
      this.app.stroke = {
        kind: tool, z: v.z, points: [[v.y, v.x]], last: p,
        radius: this.app.brushRadius(), segment: this.app.paintId,
      };
      this.gesture = { kind: "stroke" };
    } else {
      this.gesture = { kind: "click", start: p, last: p, shift: e.shiftKey };
    }
    this.updateCursor();
    this.app.requestDraw();
  }

  move(e) {
    const p = this.screen(e);
    this.app.pointerMoved(p, this.voxel(p));
    const g = this.gesture;
    if (!g) return;
    if (g.kind === "click" && Math.hypot(p.sx - g.start.sx, p.sy - g.start.sy) > CLICK_SLOP) {
      g.kind = "pan";
      this.updateCursor();
    }
    if (g.kind === "pan") {
      this.app.camera.panBy(p.sx - g.last.sx, p.sy - g.last.sy);
      g.last = p;
      this.app.viewChanged();
    } else if (g.kind === "stroke") {
      this.extendStroke(e, p);
    }
  }

  extendStroke(e, p) {
    const stroke = this.app.stroke;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const event of events.length ? events : [e]) {
      const q = this.screen(event);
      if (Math.hypot(q.sx - stroke.last.sx, q.sy - stroke.last.sy) < 2) continue;
      const v = this.voxel(q);
      const [py, px] = stroke.points[stroke.points.length - 1];
      if (py === v.y && px === v.x) continue;
      if (stroke.points.length < 9000) stroke.points.push([v.y, v.x]);
      stroke.last = q;
    }
    this.app.requestDraw();
  }

  up(e) {
    const g = this.gesture;
    this.gesture = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    this.updateCursor();
    if (!g) return;
    const p = this.screen(e);
    const v = this.voxel(p);
    if (g.kind === "stroke") {
      const stroke = this.app.stroke;
      this.app.stroke = null;
      this.app.finishStroke(stroke);
    } else if (g.kind === "pick") {
      this.app.pickAt(v);
    } else if (g.kind === "click") {
      this.app.clickAt(v, { shift: g.shift || e.shiftKey });
    }
    this.app.requestDraw();
  }

  cancelGesture() {
    this.gesture = null;
    this.app.stroke = null;
    this.updateCursor();
    this.app.requestDraw();
  }

  leave() {
    if (!this.gesture) this.app.pointerLeft();
  }

  wheel(e) {
    e.preventDefault();
    const p = this.screen(e);
    const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    this.app.camera.zoomAt(Math.exp(-delta * 0.0015), p.sx, p.sy);
    this.app.pointerMoved(p, this.voxel(p));
    this.app.viewChanged();
  }
}

export function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable
    || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) && target.type !== "range" && target.type !== "checkbox");
}
