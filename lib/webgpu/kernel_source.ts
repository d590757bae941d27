/**
 * The WGSL kernels shipped in `kernels/`, one compute shader per file with entry point `main`.
 * @module
 */

import { InputError } from "../errors.ts";

/** Names of the kernels in `kernels/` (file name without `.wgsl`). */
export type KernelName =
  | "matmul"
  | "matvec"
  | "rmsnorm"
  | "layernorm"
  | "gelu"
  | "gelu_mul"
  | "rope"
  | "kv_append"
  | "attention"
  | "add"
  | "scale"
  | "relu"
  | "embedding"
  | "argmax"
  | "conv2d"
  | "conv_transpose"
  | "pick_greedy";

/** Every kernel, for preloading. */
export const KERNEL_NAMES: readonly KernelName[] = [
  "matmul",
  "matvec",
  "rmsnorm",
  "layernorm",
  "gelu",
  "gelu_mul",
  "rope",
  "kv_append",
  "attention",
  "add",
  "scale",
  "relu",
  "embedding",
  "argmax",
  "conv2d",
  "conv_transpose",
  "pick_greedy",
];

/** Reads the WGSL source of one kernel. */
export async function loadKernelSource(name: KernelName): Promise<string> {
  const url = new URL(`../../kernels/${name}.wgsl`, import.meta.url);
  try {
    return await Deno.readTextFile(url);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`kernels/${name}.wgsl: cannot read the WGSL kernel (${why})`);
  }
}
