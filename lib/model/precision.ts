/**
 * Weight precisions of a converted model folder and their file-name suffixes in the
 * transformers.js layout (`onnx/decoder_model_merged{suffix}.onnx`). Shared by the converter,
 * which writes them, and the runtime, which finds them.
 * @module
 */

/** Precisions a model folder can hold, best (most accurate) first. */
export const PRECISIONS = ["fp32", "fp16", "q8", "q4"] as const;

/** One weight precision. */
export type Precision = typeof PRECISIONS[number];

/** File-name suffix of each precision in the transformers.js layout. */
export const PRECISION_SUFFIX: Readonly<Record<Precision, string>> = {
  fp32: "",
  fp16: "_fp16",
  q8: "_quantized",
  q4: "_q4",
};

/** Whether `name` is a precision (an own key of PRECISION_SUFFIX: `constructor` is not). */
export function isPrecision(name: string): name is Precision {
  return Object.hasOwn(PRECISION_SUFFIX, name);
}
