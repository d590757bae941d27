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
export { type PassOrder, type ResizeOptions, resizeRgb, verticalFirst } from "./resize.ts";
export { PIL_FILTER_IDS, type PilFilter, resample, type ResampleOptions } from "./pil_resample.ts";
export { pixelTables, toPixelValues } from "./normalize.ts";
export {
  DEFAULT_PREPROCESS,
  type ModelInput,
  parsePreprocessConfig,
  type PreprocessConfig,
  readPreprocessConfig,
  UnsupportedPreprocessing,
} from "./preprocess_config.ts";
export { type PreprocessedImage, preprocessImage, type PreprocessOptions } from "./preprocess.ts";
