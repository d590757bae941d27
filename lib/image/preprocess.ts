/**
 * The whole image path of the HF PaliGemma processor: load, resize to S×S with PIL's bicubic,
 * rescale and normalise to CHW float32.
 * @module
 */
import { loadImage, type LoadImageOptions } from "./load.ts";
import { toPixelValues } from "./normalize.ts";
import { resizeBicubic } from "./resize.ts";

/** The model input for one image plus the original size (needed to map boxes back). */
export interface PreprocessedImage {
  /** CHW float32 pixel values in [-1, 1], `3 * size * size` of them. */
  readonly pixelValues: Float32Array;
  /** The square side the image was resized to. */
  readonly size: number;
  /** Width of the decoded image (after EXIF orientation), before resizing. */
  readonly width: number;
  /** Height of the decoded image (after EXIF orientation), before resizing. */
  readonly height: number;
}

/** Loads `path` and turns it into `size`×`size` pixel values as the HF processor does. */
export async function preprocessImage(
  path: string,
  size: number,
  opts: LoadImageOptions = {},
): Promise<PreprocessedImage> {
  const img = await loadImage(path, opts);
  const resized = resizeBicubic(img.rgb, img.width, img.height, size, size);
  return { pixelValues: toPixelValues(resized, size), size, width: img.width, height: img.height };
}
