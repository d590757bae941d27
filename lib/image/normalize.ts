/**
 * Pixel values for the SigLIP tower, as HF's `SiglipImageProcessor` computes them: rescale by
 * 1/255 in float64, cast to float32, then `(x - 0.5) / 0.5` in float32, channels first.
 * @module
 */

/** HF's `rescale_factor` (1/255 as the hub configs store it). */
const RESCALE = 0.00392156862745098;

/** The 256 possible pixel values, computed once with HF's operation order and roundings. */
const LUT: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    const scaled = Math.fround(v * RESCALE);
    t[v] = Math.fround(Math.fround(scaled - 0.5) / 0.5);
  }
  return t;
})();

/** The float32 pixel value HF gives a uint8 sample `v` (in [-1, 1]). */
export function pixelValue(v: number): number {
  return LUT[v];
}

/** Converts an `size`×`size` HWC uint8 RGB image to CHW float32 in [-1, 1] (3·size·size values). */
export function toPixelValues(rgb: Uint8Array, size: number): Float32Array {
  const n = size * size;
  if (rgb.length !== n * 3) {
    throw new RangeError(`toPixelValues: expected ${n * 3} bytes for ${size}x${size} RGB`);
  }
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i] = LUT[rgb[i * 3]];
    out[n + i] = LUT[rgb[i * 3 + 1]];
    out[2 * n + i] = LUT[rgb[i * 3 + 2]];
  }
  return out;
}
