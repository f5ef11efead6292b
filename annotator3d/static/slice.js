// The EM image of one slice as a textured plane in its place in 3D. Its tiles are Dojo's
// (the same URLs, so the browser's cache serves both tools), at the coarsest pyramid level
// that still gives the plane about MAX_SIDE pixels across.

import * as THREE from "three";

const MAX_SIDE = 1024;

export class SlicePlane {
  constructor(app, imageLayer, tileSize) {
    this.app = app;
    this.layer = imageLayer; // {name, levels: [{shape: [z, y, x], scale: [z, y, x]}...]}
    this.tileSize = tileSize;
    this.z = 0;
    this.mesh = null;
    this.token = 0;
  }

  level() {
    const levels = this.layer.levels;
    let chosen = 0;
    levels.forEach((level, k) => {
      if (Math.max(level.shape[1], level.shape[2]) >= MAX_SIDE / 2) chosen = k;
    });
    return chosen;
  }

  async show(z) {
    this.z = z;
    const token = ++this.token;
    const k = this.level();
    const level = this.layer.levels[k];
    const [, height, width] = level.shape;
    const zAtLevel = Math.min(Math.floor(z / (level.scale?.[0] || 1)), level.shape[0] - 1);
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [width, height];
    const context = canvas.getContext("2d");
    const tiles = [];
    for (let row = 0; row * this.tileSize < height; row += 1) {
      for (let col = 0; col * this.tileSize < width; col += 1) {
        const url = `/dojo/api/${encodeURIComponent(this.app.datasetId)}/tiles/${this.layer.name}/${k}/${zAtLevel}/${row}/${col}`;
        tiles.push(loadImage(url).then((image) => context.drawImage(image, col * this.tileSize, row * this.tileSize)));
      }
    }
    await Promise.all(tiles);
    if (token !== this.token) return; // another slice was asked for meanwhile
    this.place(canvas, z);
  }

  place(canvas, z) {
    const [sx, sy, sz] = this.app.extent;
    const texture = new THREE.CanvasTexture(canvas);
    texture.colorSpace = THREE.SRGBColorSpace;
    texture.flipY = false; // row 0 of the image at y = 0 (image rows go down, as y does)
    if (!this.mesh) {
      const material = new THREE.MeshBasicMaterial({ side: THREE.DoubleSide, transparent: true, opacity: 0.9 });
      this.mesh = new THREE.Mesh(new THREE.PlaneGeometry(sx, sy), material);
      this.mesh.userData = { kind: "slice" };
      this.app.scene.scene.add(this.mesh);
    }
    this.mesh.material.map?.dispose();
    this.mesh.material.map = texture;
    this.mesh.material.needsUpdate = true;
    const voxelZ = sz / this.app.dataset.shape[0];
    this.mesh.position.set(sx / 2, sy / 2, (z + 0.5) * voxelZ);
    this.mesh.visible = true;
    this.app.scene.requestDraw();
  }

  hide() {
    this.token += 1;
    if (this.mesh) this.mesh.visible = false;
    this.app.scene.requestDraw();
  }
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`tile ${url}`));
    image.src = url;
  });
}
