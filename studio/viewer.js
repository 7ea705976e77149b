// The viewer: splats through three.js + Spark, meshes (GLB) through three.js's GLTFLoader; orbit/zoom with OrbitControls, a slow turn until the user takes over
// (none when the system asks for reduced motion), reset, and camera linking for A/B. A still camera stops
// drawing shortly after its last change, so an idle page costs no GPU (or CPU, on software WebGL).
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { DRACOLoader } from 'three/addons/loaders/DRACOLoader.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { MeshoptDecoder } from 'three/addons/libs/meshopt_decoder.module.js';
import { SparkRenderer, SplatMesh } from '@sparkjsdev/spark';

// Assets are centred with their largest extent at 1.5 (the validator's frame: +Y up, front toward +Z).
const HOME = new THREE.Vector3(0, 0.45, 2.6);
// A GLB is shown at the splats' size, centred, so both look alike (its own size and pivot may be any: size_m, pivot).
const MESH_EXTENT = 1.5;
let gltfLoader;

/** One loader for every viewer, with the meshopt and Draco decoders (compressed GLBs; Draco's from three's own libs). */
function loader() {
  if (!gltfLoader) {
    const draco = new DRACOLoader();
    gltfLoader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder).setDRACOLoader(draco);
  }
  return gltfLoader;
}
// Frames keep coming this long after a change (damping eases out; Spark's onDirty asks for more).
const SETTLE_MS = 600;
const motion = !matchMedia('(prefers-reduced-motion: reduce)').matches;

export class Viewer {
  constructor(container) {
    this.container = container;
    this.renderer = new THREE.WebGLRenderer({ antialias: false });
    this.renderer.setPixelRatio(1);
    this.renderer.setClearColor(0x0c0d10);
    this.canvas = this.renderer.domElement;
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute('aria-label', 'Splat viewer: drag to orbit, scroll to zoom, R to reset');
    container.replaceChildren(this.canvas);
    this.scene = new THREE.Scene();
    // Spark says when a finished sort (in its worker) needs another frame.
    this.scene.add(new SparkRenderer({ renderer: this.renderer, onDirty: () => this.invalidate() }));
    // Meshes need light; splats carry their own colour and ignore it.
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x444455, 1.6));
    const key = new THREE.DirectionalLight(0xffffff, 1.8);
    key.position.set(1, 2, 3);
    this.scene.add(key);
    this.camera = new THREE.PerspectiveCamera(45, 1, 0.01, 100);
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.enableDamping = true;
    this.controls.autoRotateSpeed = 2.5;
    this.controls.minDistance = 0.5;
    this.controls.maxDistance = 10;
    this.controls.addEventListener('start', () => {
      this.controls.autoRotate = false;
    });
    this.followers = new Set();
    this.drawUntil = 0;
    this.controls.addEventListener('change', () => {
      this.invalidate();
      this.followers.forEach((f) => f.copyCamera(this));
    });
    this.canvas.addEventListener('keydown', (e) => {
      if (e.key === 'r' || e.key === 'R') this.reset();
    });
    this.reset();
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
    this.renderer.setAnimationLoop(() => {
      this.controls.update();
      if (!this.controls.autoRotate && !this.dirty && performance.now() >= this.drawUntil) return;
      this.renderer.render(this.scene, this.camera);
      this.dirty = false;
    });
  }

  // A change always gets at least one frame: on a busy machine the next animation frame can come after the
  // settling window has passed, and a resized canvas stays cleared until it is drawn again.
  invalidate() {
    this.dirty = true;
    this.drawUntil = performance.now() + SETTLE_MS;
  }

  resize() {
    const { clientWidth: w, clientHeight: h } = this.container;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.invalidate();
  }

  reset() {
    this.camera.position.copy(HOME);
    this.controls.target.set(0, 0, 0);
    this.controls.autoRotate = motion && !this.leader;
    this.controls.update();
    this.invalidate();
  }

  /** Shows an SPZ (or PLY) file's bytes; resolves once Spark has decoded it. */
  async load(bytes, fileName = 'asset.spz') {
    this.clear();
    const splats = new SplatMesh({ fileBytes: bytes, fileName });
    this.shown = splats;
    this.scene.add(splats);
    await splats.initialized;
    this.invalidate();
    this.container.dataset.loaded = 'true';
  }

  /** Shows a GLB file's bytes; resolves once GLTFLoader has parsed it. */
  async loadGlb(bytes) {
    this.clear();
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const gltf = await loader().parseAsync(buffer, '');
    const box = new THREE.Box3().setFromObject(gltf.scene);
    const side = Math.max(...box.getSize(new THREE.Vector3()).toArray());
    const scale = side > 0 ? MESH_EXTENT / side : 1;
    const holder = new THREE.Group();
    gltf.scene.position.copy(box.getCenter(new THREE.Vector3()).multiplyScalar(-1));
    holder.add(gltf.scene);
    holder.scale.setScalar(scale);
    this.shown = holder;
    this.scene.add(holder);
    this.invalidate();
    this.container.dataset.loaded = 'true';
  }

  clear() {
    if (!this.shown) return;
    this.scene.remove(this.shown);
    this.shown.dispose?.();
    this.shown.traverse?.((o) => {
      o.geometry?.dispose();
      o.material?.map?.dispose();
      o.material?.dispose?.();
    });
    this.shown = null;
  }

  /** This viewer's camera follows `leader`'s (both ways when linked from each side). */
  follow(leader) {
    this.leader = leader;
    this.controls.autoRotate = false;
    leader.followers.add(this);
    this.followers.add(leader);
    this.copyCamera(leader);
  }

  copyCamera(other) {
    if (this.copying) return;
    this.copying = true;
    this.camera.position.copy(other.camera.position);
    this.controls.target.copy(other.controls.target);
    this.controls.update();
    this.copying = false;
  }

  dispose() {
    this.renderer.setAnimationLoop(null);
    this.controls.dispose();
    this.renderer.dispose();
    this.renderer.forceContextLoss?.();
  }
}
