/**
 * The whole image path of the HF PaliGemma processor: load, resize to S×S with Pillow's filter
 * (bicubic by default), rescale and normalise to CHW float32, as a model folder's
 * preprocessor_config.json states (lib/image/preprocess_config.ts).
 * @module
 */
import { loadImage, type LoadImageOptions } from "./load.ts";
import { toPixelValues } from "./normalize.ts";
import { DEFAULT_PREPROCESS, type PreprocessConfig } from "./preprocess_config.ts";
import { resizeRgb } from "./resize.ts";

/** The model input for one image plus the original size (needed to map boxes back). */
export interface PreprocessedImage {
  /** CHW float32 pixel values (in [-1, 1] by default), `3 * size * size` of them. */
  readonly pixelValues: Float32Array;
  /** The square side the image was resized to. */
  readonly size: number;
  /** Width of the decoded image (after EXIF orientation), before resizing. */
  readonly width: number;
  /** Height of the decoded image (after EXIF orientation), before resizing. */
  readonly height: number;
  /** The decoded image (HWC RGB, `width`×`height`), only when asked for with `keepRgb`. */
  readonly rgb?: Uint8Array;
}

/** Options of {@link preprocessImage}. */
export interface PreprocessOptions extends LoadImageOptions {
  /** Also return the decoded full-size RGB (e.g. to draw an overlay without decoding again). */
  readonly keepRgb?: boolean;
  /** Resize filter, rescaling and normalisation (default: HF PaliGemma's, DEFAULT_PREPROCESS). */
  readonly config?: PreprocessConfig;
}

/** Loads `path` and turns it into `size`×`size` pixel values as the HF processor does. */
export async function preprocessImage(
  path: string,
  size: number,
  opts: PreprocessOptions = {},
): Promise<PreprocessedImage> {
  const img = await loadImage(path, opts);
  const cfg = opts.config ?? DEFAULT_PREPROCESS;
  const resized = resizeRgb(img.rgb, img.width, img.height, size, size, cfg.resample);
  return {
    pixelValues: toPixelValues(resized, size, cfg),
    size,
    width: img.width,
    height: img.height,
    rgb: opts.keepRgb ? img.rgb : undefined,
  };
}
