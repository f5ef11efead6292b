// Read-only probes of what the page shows, for the browser tests and the console:
// where a segment is on screen, what lies under a point, which colour the canvas has there.

export function installProbes(app) {
  Object.assign(app, {
    /** True when every tile the view wants is loaded and current. */
    settled() {
      return this.tiles.settled(this.renderer.wanted());
    },

    /** A point in page coordinates well inside `segment` on this slice, or null. */
    pointInside(segment, margins = [12, 8, 5, 3]) {
      const rect = this.renderer.canvas.getBoundingClientRect();
      const level = this.renderer.levelOf(this.labelLayer);
      const info = this.tiles.layers.get(this.labelLayer);
      const [, sy, sx] = info.levels[level].scale;
      const t = this.tiles.tileSize;
      for (const margin of margins) {
        for (const spec of this.renderer.visibleSpecs(this.labelLayer, level)) {
          const tile = this.tiles.peek(`${spec.layer}/${spec.level}/${spec.z}/${spec.row}/${spec.col}`);
          if (!tile) continue;
          const { ids, width, height } = tile.label;
          const m = Math.max(1, Math.ceil(margin / sx));
          const same = (x, y) => x >= 0 && y >= 0 && x < width && y < height && this.segmentOf(ids[y * width + x]) === segment;
          for (let y = m; y < height - m; y += 2) {
            for (let x = m; x < width - m; x += 2) {
              if (!same(x, y) || !same(x - m, y) || !same(x + m, y) || !same(x, y - m) || !same(x, y + m)) continue;
              if (!same(x - m, y - m) || !same(x + m, y + m) || !same(x + m, y - m) || !same(x - m, y + m)) continue;
              const p = this.camera.toScreen((spec.col * t + x + 0.5) * sx, (spec.row * t + y + 0.5) * sy);
              if (p.sx < 20 || p.sy < 50 || p.sx > this.camera.width - 20 || p.sy > this.camera.height - 70) continue;
              return { x: rect.left + p.sx, y: rect.top + p.sy };
            }
          }
        }
      }
      return null;
    },

    /** The segment under a point in page coordinates. */
    segmentAtPage(x, y) {
      const rect = this.renderer.canvas.getBoundingClientRect();
      const v = this.camera.toVoxel(x - rect.left, y - rect.top);
      const fragment = this.renderer.labelAt(Math.floor(v.x), Math.floor(v.y));
      return fragment === null ? null : this.segmentOf(fragment);
    },

    /** The colour [r, g, b] the canvas shows at a point in page coordinates. */
    colourAtPage(x, y) {
      const rect = this.renderer.canvas.getBoundingClientRect();
      const d = this.renderer.dpr;
      const data = this.renderer.ctx.getImageData(Math.round((x - rect.left) * d), Math.round((y - rect.top) * d), 1, 1).data;
      return [data[0], data[1], data[2]];
    },
  });
}
