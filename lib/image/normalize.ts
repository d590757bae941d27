/**
 * Pixel values for the SigLIP tower, as HF's `SiglipImageProcessor` computes them: rescale by
 * `rescale_factor` in float64, cast to float32, then `(x - mean) / std` in float32 (mean and std
 * cast to float32 first), channels first. Without rescaling the samples are cast to float32 as
 * they are; without normalising the rescaled values are kept.
 * @module
 */

import { DEFAULT_PREPROCESS, type PreprocessConfig } from "./preprocess_config.ts";

/** The 256 possible values of one channel under `cfg`, with HF's operation order and roundings. */
function channelTable(cfg: PreprocessConfig, channel: number): Float32Array {
  const t = new Float32Array(256);
  const mean = Math.fround(cfg.normalize?.mean[channel] ?? 0);
  const std = Math.fround(cfg.normalize?.std[channel] ?? 1);
  for (let v = 0; v < 256; v++) {
    const x = cfg.rescaleFactor === null ? v : Math.fround(v * cfg.rescaleFactor);
    t[v] = cfg.normalize === null ? x : Math.fround(Math.fround(x - mean) / std);
  }
  return t;
}

/** The per-channel (R, G, B) lookup tables of `cfg`: uint8 sample → float32 pixel value. */
export function pixelTables(cfg: PreprocessConfig): readonly Float32Array[] {
  return [0, 1, 2].map((c) => channelTable(cfg, c));
}

/** Tables of the default (HF PaliGemma) processing, computed once. */
const DEFAULT_TABLES = pixelTables(DEFAULT_PREPROCESS);

/**
 * Converts an `size`×`size` HWC uint8 RGB image to CHW float32 pixel values (3·size·size of
 * them) under `cfg` (default: HF PaliGemma's, giving values in [-1, 1]).
 */
export function toPixelValues(
  rgb: Uint8Array,
  size: number,
  cfg: PreprocessConfig = DEFAULT_PREPROCESS,
): Float32Array {
  const n = size * size;
  if (rgb.length !== n * 3) {
    throw new RangeError(`toPixelValues: expected ${n * 3} bytes for ${size}x${size} RGB`);
  }
  const [r, g, b] = cfg === DEFAULT_PREPROCESS ? DEFAULT_TABLES : pixelTables(cfg);
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i] = r[rgb[i * 3]];
    out[n + i] = g[rgb[i * 3 + 1]];
    out[2 * n + i] = b[rgb[i * 3 + 2]];
  }
  return out;
}
