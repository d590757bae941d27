/**
 * WebGPU device acquisition (Deno's `navigator.gpu`). Asks for the adapter's own limits on
 * buffer sizes so whole weight matrices fit in one binding where the adapter allows it.
 * @module
 */

import { InputError } from "../errors.ts";

/** Returns the default adapter, or null when WebGPU is missing or no adapter is available. */
export async function findGpuAdapter(): Promise<GPUAdapter | null> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return null;
  try {
    return await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

/** Opens a device on `adapter` (or the default adapter) with the adapter's largest limits. */
export async function requestGpuDevice(adapter?: GPUAdapter | null): Promise<GPUDevice> {
  const a = adapter ?? await findGpuAdapter();
  if (!a) {
    throw new InputError(
      "WebGPU: no GPU adapter available (navigator.gpu.requestAdapter() returned null); " +
        "use the ONNX backend or a machine with a WebGPU driver",
    );
  }
  const want = [
    "maxBufferSize",
    "maxStorageBufferBindingSize",
    "maxComputeWorkgroupStorageSize",
    "maxStorageBuffersPerShaderStage",
    "maxComputeInvocationsPerWorkgroup",
  ] as const;
  const requiredLimits: Record<string, number> = {};
  for (const k of want) requiredLimits[k] = a.limits[k];
  try {
    // f16 arithmetic in WGSL (kernels/gemm_h.wgsl) where the adapter offers it.
    const requiredFeatures: GPUFeatureName[] = a.features.has("shader-f16") ? ["shader-f16"] : [];
    return await a.requestDevice({ requiredLimits, requiredFeatures });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`WebGPU: the adapter refused a device: ${why}`);
  }
}
