/**
 * Pinhole cameras in gsplat's convention (OpenCV axes: x right, y down, z forward; world-to-camera 3x4),
 * placed on an orbit exactly as the subnet's validator places them: position
 * (r cos(el) sin(az), -r sin(el), r cos(el) cos(az)) looking at the origin with world up +Y, so azimuth 0 sits
 * on +Z and a negative elevation looks down from above. Focal W / (2 tan(fov/2)), principal point (W//2, H//2).
 */
import { VALIDATOR_ELEVATION, VALIDATOR_FOV, VALIDATOR_RADIUS } from '../splat/frame.js';

export interface Camera {
  readonly width: number;
  readonly height: number;
  readonly fx: number;
  readonly fy: number;
  readonly cx: number;
  readonly cy: number;
  readonly near: number;
  readonly far: number;
  /** World-to-camera rotation (row-major 3x3) followed by the translation: [r00..r22, tx, ty, tz]. */
  readonly view: readonly number[];
}

export interface OrbitView {
  /** Degrees; 0 puts the camera on +Z, 90 on +X. */
  azimuth: number;
  /** Degrees; negative looks down from above. */
  elevation: number;
  radius: number;
}

export interface Lens {
  width: number;
  height: number;
  /** Vertical field of view in degrees. */
  fov: number;
  near?: number;
  far?: number;
}

/**
 * How far x/z and y/z may go when the projection's Jacobian is evaluated, as gsplat clamps them: the image's
 * bounds on each side plus 30 % of its half-extent. Negative sides are given as positive distances.
 */
export interface JacobianLimits {
  readonly xPos: number;
  readonly xNeg: number;
  readonly yPos: number;
  readonly yNeg: number;
}

export function jacobianLimits(cam: Camera): JacobianLimits {
  const { fx, fy, cx, cy, width, height } = cam;
  const tanX = (0.5 * width) / fx,
    tanY = (0.5 * height) / fy;
  return {
    xPos: (width - cx) / fx + 0.3 * tanX,
    xNeg: cx / fx + 0.3 * tanX,
    yPos: (height - cy) / fy + 0.3 * tanY,
    yNeg: cy / fy + 0.3 * tanY,
  };
}

export { VALIDATOR_ELEVATION, VALIDATOR_FOV, VALIDATOR_RADIUS };
export const VALIDATOR_SIZE = 518;

const DEG = Math.PI / 180;

export function orbitCamera(view: OrbitView, lens: Lens): Camera {
  const az = view.azimuth * DEG;
  const el = view.elevation * DEG;
  const r = view.radius;
  const px = r * Math.cos(el) * Math.sin(az);
  const py = -r * Math.sin(el);
  const pz = r * Math.cos(el) * Math.cos(az);
  // back = unit vector from the target to the camera; right = up x back; up' = back x right.
  const bl = Math.hypot(px, py, pz) || 1;
  const bx = px / bl,
    by = py / bl,
    bz = pz / bl;
  let rx = bz,
    ry = 0,
    rz = -bx; // (0,1,0) x back
  const rl = Math.hypot(rx, ry, rz);
  if (rl < 1e-12) {
    rx = 1;
    ry = 0;
    rz = 0;
  } else {
    rx /= rl;
    ry /= rl;
    rz /= rl;
  }
  const ux = by * rz - bz * ry,
    uy = bz * rx - bx * rz,
    uz = bx * ry - by * rx;
  // Camera axes in world space: x = right, y = -up' (image rows grow downwards), z = -back (toward the target).
  const rot = [rx, ry, rz, -ux, -uy, -uz, -bx, -by, -bz];
  const t = [
    -(rot[0] * px + rot[1] * py + rot[2] * pz),
    -(rot[3] * px + rot[4] * py + rot[5] * pz),
    -(rot[6] * px + rot[7] * py + rot[8] * pz),
  ];
  const focal = 1 / (2 * Math.tan((lens.fov * DEG) / 2));
  return {
    width: lens.width,
    height: lens.height,
    fx: lens.width * focal,
    fy: lens.height * focal,
    cx: Math.floor(lens.width / 2),
    cy: Math.floor(lens.height / 2),
    near: lens.near ?? 0.01,
    far: lens.far ?? 100,
    view: [...rot, ...t],
  };
}

/** numpy's linspace(start, stop, count), endpoint included. */
export function linspace(start: number, stop: number, count: number): number[] {
  if (count === 1) return [start];
  const step = (stop - start) / (count - 1);
  return Array.from({ length: count }, (_, i) => (i === count - 1 ? stop : start + i * step));
}

/** The validator's orbit: `count` azimuths from linspace(0, 360, count), at its elevation, radius and field of view. */
export function validatorCameras(count: number, size = VALIDATOR_SIZE): Camera[] {
  const lens = { width: size, height: size, fov: VALIDATOR_FOV };
  return linspace(0, 360, count).map((azimuth) => orbitCamera({ azimuth, elevation: VALIDATOR_ELEVATION, radius: VALIDATOR_RADIUS }, lens));
}

export interface TurntablePath {
  frames: number;
  /** Elevation waypoints in degrees, visited linearly over the video; one value keeps it constant. */
  elevations: readonly number[];
  /** Full revolutions over the video. */
  turns: number;
  radius: number;
  fov: number;
}

/** One camera per frame; the last frame stops one step short of the first so the loop is seamless. */
export function turntableCameras(path: TurntablePath, width: number, height: number): Camera[] {
  const lens = { width, height, fov: path.fov };
  const { frames, elevations, turns } = path;
  return Array.from({ length: frames }, (_, i) => {
    const s = frames > 1 ? i / frames : 0;
    return orbitCamera(
      { azimuth: 360 * turns * s, elevation: elevationAt(elevations, frames > 1 ? i / (frames - 1) : 0), radius: path.radius },
      lens,
    );
  });
}

function elevationAt(waypoints: readonly number[], s: number): number {
  if (waypoints.length === 0) return VALIDATOR_ELEVATION;
  if (waypoints.length === 1) return waypoints[0];
  const f = s * (waypoints.length - 1);
  const i = Math.min(Math.floor(f), waypoints.length - 2);
  return waypoints[i] + (waypoints[i + 1] - waypoints[i]) * (f - i);
}
