// Markers drawn as spheres of their radius and colour, at their position in nm.

import * as THREE from "three";

export class MarkerSpheres {
  constructor(app) {
    this.app = app;
    this.group = app.scene.markers;
    this.geometry = new THREE.SphereGeometry(1, 24, 16); // scaled to each marker's radius
  }

  set(markers) {
    for (const sphere of [...this.group.children]) {
      this.group.remove(sphere);
      sphere.material.dispose();
    }
    for (const m of markers) {
      const material = new THREE.MeshStandardMaterial({ color: m.colour, emissive: new THREE.Color(m.colour).multiplyScalar(0.35), roughness: 0.4 });
      const sphere = new THREE.Mesh(this.geometry, material);
      sphere.position.set(...m.position);
      sphere.scale.setScalar(m.radius);
      sphere.userData = { kind: "marker", id: m.id };
      this.group.add(sphere);
    }
    this.app.scene.requestDraw();
  }

  setVisible(visible) {
    this.group.visible = visible;
    this.app.scene.requestDraw();
  }
}
