// Objects as three.js meshes: fetched as binary from the server, a level of detail chosen by
// their size on the screen, drawn with their colour, opacity and brightness.

import * as THREE from "three";

const CONCURRENT = 4; // mesh requests in flight at once
const LARGE = 400_000; // voxels: an object this big starts coarse (lod 1) and refines up close
const HUGE = 4_000_000; // ... and this big starts at lod 2
const DETAIL_SHARE = 0.3; // share of the view's height above which an object gets full detail
const SELECTED_GLOW = new THREE.Color(0x3a3a3a);
const FIRST_SHOWN = 400; // objects shown when the page opens, the largest first

/** Parse the server's mesh format: "UNEM", uint32 n_vertices, uint32 n_faces, float32
 * vertices (x, y, z in nm), uint32 faces; little-endian. */
export function parseMesh(buffer) {
  const magic = new TextDecoder().decode(new Uint8Array(buffer, 0, 4));
  if (magic !== "UNEM") throw new Error("not a UNEM mesh");
  const view = new DataView(buffer);
  const vertices = view.getUint32(4, true);
  const faces = view.getUint32(8, true);
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(buffer, 12, vertices * 3), 3));
  geometry.setIndex(new THREE.BufferAttribute(new Uint32Array(buffer, 12 + vertices * 12, faces * 3), 1));
  geometry.computeVertexNormals();
  geometry.computeBoundingSphere();
  return { geometry, vertices, faces };
}

export class ObjectMeshes {
  constructor(app) {
    this.app = app;
    this.group = app.scene.objects;
    this.rows = new Map(); // id -> object row (from the table) + view state
    this.queue = [];
    this.active = 0;
    this.loaded = 0;
    this.selected = 0;
    this.smooth = 0; // Taubin iterations asked of the server for every mesh
  }

  url(id, lod, smooth = this.smooth) {
    return `/annotator/api/${encodeURIComponent(this.app.datasetId)}/meshes/${id}?lod=${lod}&smooth=${smooth}`;
  }

  /** Smooth every mesh `iterations` times: the loaded ones are fetched again. */
  setSmoothing(iterations) {
    if (iterations === this.smooth) return;
    this.smooth = iterations;
    for (const row of this.rows.values()) row.lod = null;
    this.loadVisible();
  }

  /** Take the object table; keep the view state (visibility, opacity...) of known objects,
   * and the names and colours that arrived after change number `asked` (the table's time). */
  setTable(objects, asked = 0) {
    const seen = new Set();
    // At first only the largest objects are shown: thousands of meshes would not draw.
    const first = this.rows.size === 0;
    const shown = new Set([...objects].sort((a, b) => b.voxels - a.voxels).slice(0, FIRST_SHOWN).map((o) => o.id));
    for (const o of objects) {
      seen.add(o.id);
      const row = this.rows.get(o.id);
      if (row) {
        const newer = row.changedAt > asked ? { name: row.name, colour: row.colour } : {};
        Object.assign(row, o, newer);
        this.paint(row);
      } else {
        const visible = !first || shown.has(o.id);
        this.rows.set(o.id, { ...o, visible, opacity: 1, brightness: 1, mesh: null, lod: null, want: this.startLod(o), changedAt: 0 });
      }
    }
    for (const id of [...this.rows.keys()]) if (!seen.has(id)) this.remove(id);
    this.loadVisible();
  }

  startLod(o) {
    return o.voxels > HUGE ? 2 : o.voxels > LARGE ? 1 : 0;
  }

  loadVisible() {
    for (const row of this.rows.values()) if (row.visible && row.lod !== row.want) this.enqueue(row.id);
  }

  enqueue(id) {
    if (!this.queue.includes(id)) this.queue.push(id);
    this.pump();
  }

  pump() {
    while (this.active < CONCURRENT && this.queue.length) {
      const row = this.rows.get(this.queue.shift());
      if (!row) continue;
      this.active += 1;
      this.fetch(row).finally(() => {
        this.active -= 1;
        this.pump();
        this.app.progressChanged();
      });
    }
  }

  pending() {
    return this.active + this.queue.length;
  }

  async fetch(row, force = false) {
    const lod = row.want;
    const smooth = this.smooth;
    // The browser revalidates with the ETag (the mesh's version): unchanged meshes cost a 304.
    const response = await fetch(this.url(row.id, lod, smooth), { credentials: "same-origin", cache: force ? "no-cache" : "default" });
    if (response.status === 404) return; // the segment went away meanwhile (merged)
    if (!response.ok) {
      this.app.toast(`Mesh of object ${row.id}: ${response.status} ${response.statusText}`, "error");
      return;
    }
    const { geometry } = parseMesh(await response.arrayBuffer());
    if (this.rows.get(row.id) !== row) return; // removed while loading
    this.setGeometry(row, geometry, lod);
    row.smooth = smooth;
    if (smooth !== this.smooth) {
      row.lod = null; // the smoothing changed while this mesh was on its way
      this.enqueue(row.id);
    }
  }

  setGeometry(row, geometry, lod) {
    if (!row.mesh) {
      const material = new THREE.MeshStandardMaterial({ roughness: 0.55, metalness: 0.05, side: THREE.DoubleSide });
      row.mesh = new THREE.Mesh(geometry, material);
      row.mesh.userData = { kind: "object", id: row.id };
      this.group.add(row.mesh);
      this.loaded += 1;
    } else {
      row.mesh.geometry.dispose();
      row.mesh.geometry = geometry;
    }
    row.lod = lod;
    this.paint(row, true);
  }

  paint(row, later = false) {
    if (!row.mesh) return;
    const material = row.mesh.material;
    material.color.set(row.colour).multiplyScalar(row.brightness);
    material.opacity = row.opacity;
    material.transparent = row.opacity < 1;
    material.depthWrite = row.opacity >= 1;
    material.emissive.copy(row.id === this.selected ? SELECTED_GLOW : new THREE.Color(0));
    row.mesh.visible = row.visible;
    this.app.scene.requestDraw(later);
  }

  set(id, changes) {
    const row = this.rows.get(id);
    if (!row) return;
    Object.assign(row, changes);
    this.paint(row);
    if (row.visible && row.lod !== row.want) this.enqueue(id);
  }

  select(id) {
    const before = this.rows.get(this.selected);
    this.selected = id;
    if (before) this.paint(before);
    if (this.rows.has(id)) this.paint(this.rows.get(id));
  }

  remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    if (row.mesh) {
      this.group.remove(row.mesh);
      row.mesh.geometry.dispose();
      row.mesh.material.dispose();
      this.loaded -= 1;
    }
    this.rows.delete(id);
    this.app.scene.requestDraw();
  }

  /** A segment's mesh changed on the server: fetch it again at its level of detail. */
  refetch(id) {
    const row = this.rows.get(id);
    if (!row) return false;
    this.fetch(row, true).then(() => this.app.progressChanged());
    return true;
  }

  /** Refine what is large on the screen, coarsen what is large and far (after camera moves). */
  updateDetail() {
    const camera = this.app.scene.camera;
    const tan = Math.tan(THREE.MathUtils.degToRad(camera.fov / 2));
    for (const row of this.rows.values()) {
      if (!row.mesh || !row.visible || this.startLod(row) === 0) continue;
      const sphere = row.mesh.geometry.boundingSphere;
      const distance = Math.max(camera.position.distanceTo(sphere.center) - sphere.radius, 1e-6);
      const share = sphere.radius / (distance * tan);
      row.want = share > DETAIL_SHARE ? 0 : this.startLod(row);
      if (row.want !== row.lod) this.enqueue(row.id);
    }
  }

  /** The centre and radius of an object (for "centre the view on it"). */
  sphere(id) {
    const row = this.rows.get(id);
    return row?.mesh ? row.mesh.geometry.boundingSphere : null;
  }
}
