/**
 * Kernel variants: WGSL files in `kernels/` compiled with pipeline-override constants (tile and
 * workgroup sizes, storage formats), cached per device, and the adapter-limit helpers the
 * wrappers in `ops_*.ts` use to pick workgroup sizes.
 * @module
 */

import { InputError } from "../errors.ts";
import type { GpuRunner, GpuTensor } from "./runner.ts";

/** Override constants of one variant (WGSL `override` names to values). */
export type Overrides = Readonly<Record<string, number>>;

const sources = new Map<string, Promise<string>>();
const pipelines = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

/** A line `//! include NAME` stands for the text of `kernels/NAME.wgsl` (code shared by kernels). */
const INCLUDE = /^\/\/! include (\w+)$/gm;

/** Reads `kernels/<file>.wgsl` once, with its `//! include` lines replaced by those files. */
function source(file: string): Promise<string> {
  let s = sources.get(file);
  if (!s) {
    const url = new URL(`../../kernels/${file}.wgsl`, import.meta.url);
    s = Deno.readTextFile(url).then(withIncludes).catch((err) => {
      sources.delete(file);
      if (err instanceof InputError) throw err;
      const why = err instanceof Error ? err.message : String(err);
      throw new InputError(`kernels/${file}.wgsl: cannot read the WGSL kernel (${why})`);
    });
    sources.set(file, s);
  }
  return s;
}

/** `code` with each `//! include NAME` line replaced by `kernels/NAME.wgsl` (itself expanded). */
async function withIncludes(code: string): Promise<string> {
  const names = [...new Set([...code.matchAll(INCLUDE)].map((m) => m[1]))];
  const texts = new Map<string, string>();
  for (const name of names) texts.set(name, await source(name));
  return code.replace(INCLUDE, (_line, name: string) => texts.get(name)!);
}

/** The pipeline of `kernels/<file>.wgsl` (entry `main`) with `constants`, compiled once. */
export function variantPipeline(
  r: GpuRunner,
  file: string,
  constants: Overrides,
  halfAsF32 = false,
): Promise<GPUComputePipeline> {
  let cache = pipelines.get(r.device);
  if (!cache) {
    cache = new Map();
    pipelines.set(r.device, cache);
  }
  const keys = Object.keys(constants).sort();
  const key = `${file}${halfAsF32 ? "(f32)" : ""}?${
    keys.map((k) => `${k}=${constants[k]}`).join("&")
  }`;
  let p = cache.get(key);
  if (!p) {
    const c = cache;
    p = compile(r.device, file, key, constants, halfAsF32);
    p.catch(() => c.delete(key)); // a failed compile is retried, not cached
    cache.set(key, p);
  }
  return p;
}

async function compile(
  device: GPUDevice,
  file: string,
  label: string,
  constants: Overrides,
  halfAsF32: boolean,
): Promise<GPUComputePipeline> {
  const code = halfAsF32 ? halfToF32(await source(file)) : await source(file);
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label, code });
  const pipeline = device.createComputePipeline({
    label,
    layout: "auto",
    compute: { module, entryPoint: "main", constants: { ...constants } },
  });
  const err = await device.popErrorScope();
  if (err) throw new Error(`kernels/${file}.wgsl (${label}): ${err.message}`);
  return pipeline;
}

/**
 * A half-precision kernel's source with f32 in place of f16: its header `enable f16;` and
 * `alias h = f16;` / `alias h4 = vec4<f16>;` lines are rewritten (the kernels use only the
 * aliases), so its logic can run where the adapter lacks shader-f16.
 */
export function halfToF32(code: string): string {
  const head = "enable f16;\nalias h = f16;\nalias h4 = vec4<f16>;\n";
  if (!code.startsWith(head)) throw new Error("halfToF32: not a half-precision kernel header");
  return "alias h = f32;\nalias h4 = vec4<f32>;\n" + code.slice(head.length);
}

/** Whether the device was opened with the shader-f16 feature (f16 arithmetic in WGSL). */
export function hasShaderF16(r: GpuRunner): boolean {
  return r.device.features.has("shader-f16");
}

/** The largest power of two <= `v` (at least 1). */
export function floorPow2(v: number): number {
  return v < 1 ? 1 : 2 ** Math.floor(Math.log2(v));
}

/**
 * Threads per workgroup for a kernel that wants `want` (a power of two): the largest power of two
 * <= want that the device's maxComputeInvocationsPerWorkgroup and maxComputeWorkgroupSizeX allow.
 */
export function workgroupSize(r: GpuRunner, want: number): number {
  const l = r.device.limits;
  return floorPow2(Math.min(want, l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX));
}

/** Bytes of workgroup memory one workgroup may use on this device. */
export function workgroupStorage(r: GpuRunner): number {
  return r.device.limits.maxComputeWorkgroupStorageSize;
}

/** Whether the device runs on a software (fallback) adapter such as llvmpipe. */
export function isSoftwareAdapter(r: GpuRunner): boolean {
  const info = r.device.adapterInfo as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return info.isFallbackAdapter === true || /llvmpipe|swiftshader|lavapipe/i.test(
    `${info.description} ${info.vendor} ${info.architecture}`,
  );
}

const writeDummies = new WeakMap<GpuRunner, GpuTensor>();

/**
 * A small buffer for unused read_write bindings: the runner's `dummy` may be bound read-only in
 * the same dispatch, and one buffer cannot be both read-only and writable storage there.
 */
export function writeDummy(r: GpuRunner): GpuTensor {
  let t = writeDummies.get(r);
  if (!t) {
    t = r.zeros(4, "write dummy");
    writeDummies.set(r, t);
  }
  return t;
}
