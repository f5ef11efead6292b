// Tiles: a small LRU cache, a loader that fetches only what the view wants (nearest the centre
// first, a few at a time), and invalidation of the tiles an edit's bounding box touches.
// Three sorts: label tiles (raw ids), value tiles (8-bit PNG read back as numbers, for the
// colour-mapped overlay) and picture tiles (the image, drawn as they come).

import { decodeLabels } from "./labels.js";

const CONCURRENCY = 6;
const LIMITS = { image: 192, label: 96, values: 96 };

export function tileKey(layer, level, z, row, col) {
  return `${layer}/${level}/${z}/${row}/${col}`;
}

export class TileStore {
  constructor(datasetId, dataset, tileSize, onLoad) {
    this.datasetId = datasetId;
    this.setLayers(dataset.layers);
    this.valueLayers = new Set(); // layers fetched as values (see Overlay.valueLayers)
    this.generations = new Map(); // layer → how often it was written anew: older tiles are stale
    this.tileSize = tileSize;
    this.onLoad = onLoad;
    this.cache = new Map(); // key → tile; Map order is the LRU order
    this.inflight = new Map(); // key → version requested
    this.queue = [];
    this.versions = new Map(); // key → version of the last edit that touched the tile
    this.failed = new Map(); // key → time of failure (retried after a while)
    this.loadedCount = 0;
  }

  setLayers(layers) {
    this.layers = new Map(layers.map((l) => [l.name, l]));
  }

  isLabel(layer) {
    const kind = this.layers.get(layer)?.kind;
    return kind === "segmentation" || kind === "groundtruth";
  }

  /** "label", "values" or "image": how a layer's tiles are fetched and kept. */
  sortOf(layer) {
    if (this.isLabel(layer)) return "label";
    return this.valueLayers.has(layer) ? "values" : "image";
  }

  /** Fetch every tile of a layer again (it may have been written anew), showing the ones
   * cached until then; loads in flight are dropped. */
  refresh(layer) {
    this.generations.set(layer, (this.generations.get(layer) || 0) + 1);
  }

  /** Forget every tile of a layer (its volume was replaced): none of them may show again. */
  drop(layer) {
    this.refresh(layer);
    const prefix = `${layer}/`;
    for (const [key, tile] of this.cache) {
      if (!key.startsWith(prefix)) continue;
      if (tile.bitmap) tile.bitmap.close();
      this.cache.delete(key);
    }
    for (const key of this.versions.keys()) if (key.startsWith(prefix)) this.versions.delete(key);
    for (const key of this.failed.keys()) if (key.startsWith(prefix)) this.failed.delete(key);
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

  /** Whether an edit changed a cached tile since it was fetched, or its layer was rewritten. */
  stale(key, tile) {
    return tile.version < (this.versions.get(key) || 0)
      || tile.generation !== (this.generations.get(tile.layer) || 0);
  }

  /** A cached tile no edit has changed since it was fetched, or undefined. */
  fresh(key) {
    const tile = this.cache.get(key);
    return tile && !this.stale(key, tile) ? tile : undefined;
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
      return !tile || this.stale(key, tile);
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
    const params = new URLSearchParams();
    if (version) params.set("v", String(version));
    if (this.sortOf(spec.layer) === "values") params.set("format", "png"); // exact values
    const query = params.toString();
    return query ? `${base}?${query}` : base;
  }

  async fetchTile(spec) {
    const key = tileKey(spec.layer, spec.level, spec.z, spec.row, spec.col);
    const version = this.versions.get(key) || 0;
    const generation = this.generations.get(spec.layer) || 0;
    this.inflight.set(key, version);
    try {
      const response = await fetch(this.url(spec, version), { credentials: "same-origin" });
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      const tile = { key, ...spec, version, generation, label: null, values: null, bitmap: null, stamp: -1, canvas: null };
      const sort = this.sortOf(spec.layer);
      if (sort === "label") {
        const [width, height] = this.tileExtent(spec);
        const dtype = response.headers.get("X-Dtype") || "uint32";
        tile.label = decodeLabels(await response.arrayBuffer(), dtype, width, height);
      } else if (sort === "values") {
        tile.values = await decodeValues(await response.blob());
      } else {
        tile.bitmap = await createImageBitmap(await response.blob());
      }
      this.failed.delete(key);
      const current = (this.generations.get(spec.layer) || 0) === generation;
      if (current && (this.versions.get(key) || 0) === version) this.store(tile);
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
    this.evict(sortOfTile(tile));
  }

  evict(kind) {
    let count = 0;
    for (const tile of this.cache.values()) if (sortOfTile(tile) === kind) count += 1;
    for (const [key, tile] of this.cache) {
      if (count <= LIMITS[kind]) break;
      if (sortOfTile(tile) !== kind) continue;
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
      return !this.inflight.has(key) && tile && !this.stale(key, tile);
    });
  }
}

function sortOfTile(tile) {
  if (tile.label) return "label";
  return tile.values ? "values" : "image";
}

/** The gray values of an 8-bit PNG tile: {values (Uint8Array), width, height}. */
async function decodeValues(blob) {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const values = new Uint8Array(width * height);
  for (let i = 0; i < values.length; i += 1) values[i] = rgba[4 * i];
  return { values, width, height };
}
