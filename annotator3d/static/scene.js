// The 3D view: a three.js scene in nm (x right, y down, z into the screen, as Dojo shows a
// slice), with the dataset's bounding box, objects as meshes, markers as spheres, an optional
// EM slice, lights, an orbit or trackball camera, picking and offscreen pictures.

import * as THREE from "three";
import { OrbitControls } from "three/addons/OrbitControls.js";
import { TrackballControls } from "three/addons/TrackballControls.js";

const CLICK_SLOP = 4; // px a pointer may move between down and up and still be a click
const LATE_DRAW = 250; // ms: how long a draw for newly arrived meshes may wait

export class Scene {
  /** extent: [x, y, z] size of the dataset in nm. */
  constructor(canvas, extent, handlers) {
    this.canvas = canvas;
    this.extent = extent;
    this.handlers = handlers; // {pick(hit, event), changed()}
    this.centre = new THREE.Vector3(extent[0] / 2, extent[1] / 2, extent[2] / 2);
    this.radius = Math.hypot(...extent) / 2;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color("#0b0d12");
    this.camera = new THREE.PerspectiveCamera(40, 1, this.radius / 1000, this.radius * 100);
    this.camera.up.set(0, -1, 0); // image rows go down, as in Dojo
    this.objects = new THREE.Group();
    this.markers = new THREE.Group();
    this.scene.add(this.objects, this.markers);
    this.addLights();
    this.addBox();
    this.useControls("orbit");
    this.fit();
    this.drawQueued = false;
    this.listen();
  }

  addLights() {
    this.ambient = new THREE.AmbientLight(0xffffff, 0.45);
    this.key = new THREE.DirectionalLight(0xffffff, 1.2);
    this.fill = new THREE.DirectionalLight(0xffffff, 0.45);
    this.fill.position.set(1, 1, 1);
    this.scene.add(this.ambient, this.camera, this.fill);
    this.camera.add(this.key); // the key light follows the camera: what you see is lit
    this.key.position.set(-0.5, -1, 0.5);
  }

  addBox() {
    const [x, y, z] = this.extent;
    const geometry = new THREE.EdgesGeometry(new THREE.BoxGeometry(x, y, z));
    this.box = new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ color: 0x6b7590 }));
    this.box.position.copy(this.centre);
    this.scene.add(this.box);
  }

  useControls(kind) {
    const target = this.controls ? this.controls.target.clone() : this.centre.clone();
    this.controls?.dispose();
    if (kind === "trackball") {
      this.controls = new TrackballControls(this.camera, this.canvas);
      this.controls.rotateSpeed = 3;
    } else {
      this.camera.up.set(0, -1, 0);
      this.controls = new OrbitControls(this.camera, this.canvas);
      this.controls.enableDamping = false;
    }
    this.controls.target.copy(target);
    this.controls.addEventListener("change", () => this.changed());
    this.controlsKind = kind;
    this.animateTrackball();
  }

  animateTrackball() {
    // TrackballControls need update() every frame while in use; Orbit does without.
    if (this.controlsKind !== "trackball") return;
    this.controls.update();
    requestAnimationFrame(() => this.animateTrackball());
  }

  changed() {
    this.requestDraw();
    this.handlers.changed?.();
  }

  fit(centre = this.centre, radius = this.radius) {
    const distance = radius / Math.sin(THREE.MathUtils.degToRad(this.camera.fov / 2));
    // Seen from the side of z = 0 and a little above, like the first slice in Dojo, tilted.
    const direction = new THREE.Vector3(0.6, -0.5, -0.85).normalize();
    this.camera.position.copy(centre).addScaledVector(direction, distance * 1.05);
    this.controls.target.copy(centre);
    this.camera.lookAt(centre);
    this.controls.update();
    this.changed();
  }

  resize() {
    const { clientWidth: w, clientHeight: h } = this.canvas;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.controls.handleResize?.();
    this.requestDraw();
  }

  /** Draw on the next frame; `later` (meshes arriving) waits a little so that a stream of
   * them costs a few frames, not one each. */
  requestDraw(later = false) {
    if (later) {
      this.lateTimer ??= setTimeout(() => {
        this.lateTimer = null;
        this.requestDraw();
      }, LATE_DRAW);
      return;
    }
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  draw() {
    const start = performance.now();
    this.renderer.render(this.scene, this.camera);
    this.drawTime = performance.now() - start;
  }

  // ---- settings ----
  setBackground(colour) {
    this.scene.background.set(colour);
    this.requestDraw();
  }

  setLight(intensity) {
    this.key.intensity = intensity;
    this.fill.intensity = intensity * 0.4;
    this.ambient.intensity = 0.3 + intensity * 0.15;
    this.requestDraw();
  }

  setBoxVisible(visible) {
    this.box.visible = visible;
    this.requestDraw();
  }

  // ---- picking ----
  listen() {
    let down = null;
    this.canvas.addEventListener("pointerdown", (e) => { down = { x: e.clientX, y: e.clientY }; });
    this.canvas.addEventListener("pointerup", (e) => {
      if (!down || Math.hypot(e.clientX - down.x, e.clientY - down.y) > CLICK_SLOP) return;
      down = null;
      this.handlers.pick(this.pick(e.clientX, e.clientY), e);
    });
    this.canvas.addEventListener("pointermove", (e) => this.handlers.hover?.(e));
  }

  /** The nearest visible object or marker under a page point: {kind, id, point} or null. */
  pick(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const ndc = new THREE.Vector2(((clientX - rect.left) / rect.width) * 2 - 1,
      -((clientY - rect.top) / rect.height) * 2 + 1);
    const raycaster = new THREE.Raycaster();
    raycaster.setFromCamera(ndc, this.camera);
    const targets = [...this.objects.children, ...(this.markers.visible ? this.markers.children : [])]
      .filter((o) => o.visible);
    const hit = raycaster.intersectObjects(targets, false)[0];
    if (!hit) return null;
    const { kind, id } = hit.object.userData;
    return { kind, id, point: hit.point.toArray() };
  }

  /** Where a point in nm lands on the page (for tests and hints). */
  toPage(point) {
    const v = new THREE.Vector3(...point).project(this.camera);
    const rect = this.canvas.getBoundingClientRect();
    return { x: rect.left + ((v.x + 1) / 2) * rect.width, y: rect.top + ((1 - v.y) / 2) * rect.height };
  }

  // ---- pictures ----
  /** A PNG Blob of the view rendered at width × height px (the same camera, aspect adjusted).
   * The canvas's drawing buffer is resized for it (not its size on the page), then restored;
   * rendering to the canvas, not to a render target, keeps the screen's sRGB output. */
  async picture(width, height) {
    const max = Math.min(this.renderer.capabilities.maxTextureSize, 8192);
    const [w, h] = [Math.min(width, max), Math.min(height, max)];
    const ratio = this.renderer.getPixelRatio();
    this.renderer.setPixelRatio(1);
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.draw();
    try {
      return await new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
    } finally {
      this.renderer.setPixelRatio(ratio);
      this.resize();
      this.draw();
    }
  }
}
