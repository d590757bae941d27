/**
 * Image loading and SigLIP pre-processing matching HF's PIL-based PaliGemma processor.
 * @module
 */
export {
  DEFAULT_MAX_PIXELS,
  ImageTooLarge,
  loadImage,
  type LoadImageOptions,
  type RgbImage,
} from "./load.ts";
export { type PassOrder, resizeBicubic, type ResizeOptions, verticalFirst } from "./resize.ts";
export { type PilFilter, resample, type ResampleOptions } from "./pil_resample.ts";
export { pixelValue, toPixelValues } from "./normalize.ts";
export { type PreprocessedImage, preprocessImage, type PreprocessOptions } from "./preprocess.ts";
