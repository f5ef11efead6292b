// Tiles: a small LRU cache, a loader that fetches only what the view wants (nearest the centre
// first, a few at a time), and invalidation of the tiles an edit's bounding box touches.

import { decodeLabels } from "./labels.js";

const CONCURRENCY = 6;
const LIMITS = { image: 192, label: 96 };

export function tileKey(layer, level, z, row, col) {
  return `${layer}/${level}/${z}/${row}/${col}`;
}

export class TileStore {
  constructor(datasetId, dataset, tileSize, onLoad) {
    this.datasetId = datasetId;
    this.layers = new Map(dataset.layers.map((l) => [l.name, l]));
    this.tileSize = tileSize;
    this.onLoad = onLoad;
    this.cache = new Map(); // key → tile; Map order is the LRU order
    this.inflight = new Map(); // key → version requested
    this.queue = [];
    this.versions = new Map(); // key → version of the last edit that touched the tile
    this.failed = new Map(); // key → time of failure (retried after a while)
    this.loadedCount = 0;
  }

  isLabel(layer) {
    const kind = this.layers.get(layer)?.kind;
    return kind === "segmentation" || kind === "groundtruth";
  }

  /** A cached tile (any state) and mark it recently used. */
  get(key) {
    const tile = this.cache.get(key);
    if (tile) {
      this.cache.delete(key);
      this.cache.set(key, tile);
    }
    return tile;
  }

  peek(key) {
    return this.cache.get(key);
  }

  /** A cached tile no edit has changed since it was fetched, or undefined. */
  fresh(key) {
    const tile = this.cache.get(key);
    return tile && tile.version >= (this.versions.get(key) || 0) ? tile : undefined;
  }

  /** What the view needs now, in priority order: [{layer, level, z, row, col}]. */
  want(specs) {
    const now = performance.now();
    this.queue = specs.filter((s) => {
      const key = tileKey(s.layer, s.level, s.z, s.row, s.col);
      if (this.inflight.has(key)) return false;
      const failedAt = this.failed.get(key);
      if (failedAt !== undefined && now - failedAt < 5000) return false;
      const tile = this.cache.get(key);
      return !tile || tile.version < (this.versions.get(key) || 0);
    });
    this.pump();
  }

  pump() {
    while (this.inflight.size < CONCURRENCY && this.queue.length) {
      const spec = this.queue.shift();
      this.fetchTile(spec);
    }
  }

  url(spec, version) {
    const base = `/dojo/api/${encodeURIComponent(this.datasetId)}/tiles/${spec.layer}/${spec.level}/${spec.z}/${spec.row}/${spec.col}`;
    return version ? `${base}?v=${version}` : base;
  }

  async fetchTile(spec) {
    const key = tileKey(spec.layer, spec.level, spec.z, spec.row, spec.col);
    const version = this.versions.get(key) || 0;
    this.inflight.set(key, version);
    try {
      const response = await fetch(this.url(spec, version), { credentials: "same-origin" });
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      const tile = { key, ...spec, version, label: null, bitmap: null, stamp: -1, canvas: null };
      if (this.isLabel(spec.layer)) {
        const [width, height] = this.tileExtent(spec);
        const dtype = response.headers.get("X-Dtype") || "uint32";
        tile.label = decodeLabels(await response.arrayBuffer(), dtype, width, height);
      } else {
        tile.bitmap = await createImageBitmap(await response.blob());
      }
      this.failed.delete(key);
      if ((this.versions.get(key) || 0) === version) this.store(tile);
      this.loadedCount += 1;
    } catch (error) {
      this.failed.set(key, performance.now());
      console.warn(`tile ${key}: ${error.message}`);
    } finally {
      this.inflight.delete(key);
      this.pump();
      this.onLoad(key);
    }
  }

  store(tile) {
    const old = this.cache.get(tile.key);
    if (old?.bitmap) old.bitmap.close();
    this.cache.delete(tile.key);
    this.cache.set(tile.key, tile);
    this.evict(tile.label ? "label" : "image");
  }

  evict(kind) {
    let count = 0;
    for (const tile of this.cache.values()) if ((tile.label ? "label" : "image") === kind) count += 1;
    for (const [key, tile] of this.cache) {
      if (count <= LIMITS[kind]) break;
      if ((tile.label ? "label" : "image") !== kind) continue;
      if (tile.bitmap) tile.bitmap.close();
      this.cache.delete(key);
      count -= 1;
    }
  }

  /** Width and height in pixels of a tile of a level (edge tiles are smaller). */
  tileExtent(spec) {
    const shape = this.layers.get(spec.layer).levels[spec.level].shape;
    const t = this.tileSize;
    return [Math.min(t, shape[2] - spec.col * t), Math.min(t, shape[1] - spec.row * t)];
  }

  /** Mark every tile of `layer` inside a full-resolution box [z0, y0, x0, z1, y1, x1] as changed. */
  invalidate(layer, box, version) {
    const info = this.layers.get(layer);
    if (!info) return;
    const [z0, y0, x0, z1, y1, x1] = box;
    const t = this.tileSize;
    info.levels.forEach((level, index) => {
      const [sz, sy, sx] = level.scale;
      for (let z = Math.floor(z0 / sz); z <= Math.floor((z1 - 1) / sz); z += 1) {
        for (let row = Math.floor(y0 / sy / t); row <= Math.floor((y1 - 1) / sy / t); row += 1) {
          for (let col = Math.floor(x0 / sx / t); col <= Math.floor((x1 - 1) / sx / t); col += 1) {
            this.versions.set(tileKey(layer, index, z, row, col), version);
          }
        }
      }
    });
  }

  /** True when no label tile of the view is loading or stale. */
  settled(specs) {
    return specs.every((s) => {
      const key = tileKey(s.layer, s.level, s.z, s.row, s.col);
      const tile = this.cache.get(key);
      return !this.inflight.has(key) && tile && tile.version >= (this.versions.get(key) || 0);
    });
  }
}
