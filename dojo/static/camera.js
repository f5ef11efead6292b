// The view: which slice, which point of it is at the centre of the canvas, and the zoom.
// Coordinates are full-resolution voxels (x, y, z); zoom is CSS pixels per voxel.

const MIN_ZOOM = 1 / 64;
const MAX_ZOOM = 32;

export class Camera {
  constructor(shape) {
    this.shape = shape; // [z, y, x]
    this.z = Math.floor(shape[0] / 2);
    this.x = shape[2] / 2;
    this.y = shape[1] / 2;
    this.zoom = 1;
    this.width = 1;
    this.height = 1;
  }

  resize(width, height) {
    this.width = Math.max(1, width);
    this.height = Math.max(1, height);
  }

  toVoxel(sx, sy) {
    return { x: this.x + (sx - this.width / 2) / this.zoom, y: this.y + (sy - this.height / 2) / this.zoom };
  }

  toScreen(x, y) {
    return { sx: (x - this.x) * this.zoom + this.width / 2, sy: (y - this.y) * this.zoom + this.height / 2 };
  }

  /** Zoom by `factor` keeping the voxel under the screen point (sx, sy) where it is. */
  zoomAt(factor, sx = this.width / 2, sy = this.height / 2) {
    const anchor = this.toVoxel(sx, sy);
    this.zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.zoom * factor));
    this.x = anchor.x - (sx - this.width / 2) / this.zoom;
    this.y = anchor.y - (sy - this.height / 2) / this.zoom;
    this.clampCentre();
  }

  panBy(dx, dy) {
    this.x -= dx / this.zoom;
    this.y -= dy / this.zoom;
    this.clampCentre();
  }

  clampCentre() {
    this.x = Math.min(this.shape[2], Math.max(0, this.x));
    this.y = Math.min(this.shape[1], Math.max(0, this.y));
  }

  fit() {
    const [, height, width] = this.shape;
    this.zoom = Math.min(this.width / width, (this.height - 56) / height) * 0.94;
    this.zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.zoom));
    this.x = width / 2;
    this.y = height / 2 + 20 / this.zoom; // leave room for the slice bar below
  }

  setZ(z) {
    const clamped = Math.min(this.shape[0] - 1, Math.max(0, Math.round(Number(z) || 0)));
    const changed = clamped !== this.z;
    this.z = clamped;
    return changed;
  }

  centreOn(x, y, z) {
    this.x = x;
    this.y = y;
    if (z !== undefined) this.setZ(z);
    this.clampCentre();
  }

  /** The voxel rectangle the canvas shows: [x0, y0, x1, y1]. */
  visible() {
    const a = this.toVoxel(0, 0);
    const b = this.toVoxel(this.width, this.height);
    return [a.x, a.y, b.x, b.y];
  }
}

/** The pyramid level to draw: the coarsest whose pixels are still no larger than a screen pixel. */
export function chooseLevel(levels, pixelsPerVoxel) {
  let best = 0;
  for (let i = 0; i < levels.length; i += 1) {
    if (levels[i].scale[2] * pixelsPerVoxel <= 1.0001) best = i;
  }
  return best;
}
