/**
 * Tiled GEMM for the vision tower and prefill (kernels/gemm.wgsl): C = act(A'·Wᵀ + bias) +
 * residual with W [n, k] (HF Linear [out, in]) stored as f32, f16, q8 or q4 (weights.ts), and an
 * optional fused Gemma RMSNorm of A (the normalised rows are never written).
 *
 * Tile from the adapter's limits: 16 × 16 threads, each a 4×4 register block (64 × 64 tile of C),
 * K walked 16 at a time (8.25 KiB of workgroup memory), when maxComputeInvocationsPerWorkgroup >=
 * 256 and maxComputeWorkgroupStorageSize allows; otherwise, and on software adapters (llvmpipe,
 * whose compile time grows steeply with workgroup memory), 8 × 8 threads, a 32 × 32 tile and
 * K steps of 8 (2.1 KiB).
 * @module
 */

import type { FusedNorm } from "./ops_gemv.ts";
import type { GpuRunner, GpuTensor } from "./runner.ts";
import { ParamWriter } from "./runner.ts";
import {
  hasShaderF16,
  isSoftwareAdapter,
  variantPipeline,
  workgroupSize,
  workgroupStorage,
} from "./variants.ts";
import type { GpuWeight } from "./weights.ts";

/** Elementwise activation applied after the bias. */
export type GemmActivation = "none" | "gelu_tanh";

/** Arguments of `gemm`. */
export interface GemmArgs {
  /** [m, k] f32 activations. */
  readonly a: GpuTensor;
  /** [n, k] weight. */
  readonly w: GpuWeight;
  /** [m, n] f32 output (not a, bias or residual). */
  readonly out: GpuTensor;
  /** Rows of a. */
  readonly m: number;
  /** Optional [n] bias. */
  readonly bias?: GpuTensor;
  /** Optional [m, n] residual added last (after the activation). */
  readonly residual?: GpuTensor;
  /** Optional fused RMSNorm of a's rows. */
  readonly norm?: FusedNorm;
  /** Activation after the bias (default "none"). */
  readonly activation?: GemmActivation;
  /** Tile override (threads tx × ty, K step tk; 4·tk >= tx), for tests and tuning. */
  readonly tile?: GemmTile;
  /**
   * Inner-loop arithmetic: "f32" (default, gemm.wgsl), "f16" (gemm_h.wgsl: f16 tiles and K-step
   * sums, f32 accumulators; needs `hasShaderF16`), or "f16-logic" (gemm_h.wgsl compiled with f32
   * in place of f16: its code path on any adapter, for tests).
   */
  readonly precision?: GemmPrecision;
}

/** Inner-loop arithmetic of `gemm`. */
export type GemmPrecision = "f32" | "f16" | "f16-logic";

/** Thread grid (tx × ty threads, a 4·ty × 4·tx tile of C) and K step of the GEMM. */
export interface GemmTile {
  /** Threads along n. */
  readonly tx: number;
  /** Threads along m. */
  readonly ty: number;
  /** K step. */
  readonly tk: number;
}

const FMT = { f32: 0, f16: 1, q8: 2, q4: 3 } as const;

function need(t: GpuTensor, n: number, what: string): void {
  if (t.length < n) throw new RangeError(`${what}: buffer holds ${t.length} values, needs ${n}`);
}

/** Thread-grid side and K step of the GEMM tile on this device. */
export function gemmTile(r: GpuRunner): GemmTile {
  const bytes = (t: number, k: number) => 4 * (4 * k * t * 2 + 4 * t);
  if (
    !isSoftwareAdapter(r) && workgroupSize(r, 256) >= 256 && bytes(16, 16) <= workgroupStorage(r)
  ) {
    return { tx: 16, ty: 16, tk: 16 };
  }
  return { tx: 8, ty: 8, tk: 8 };
}

/** Records the GEMM. */
export async function gemm(r: GpuRunner, x: GemmArgs): Promise<void> {
  const { w, m } = x;
  const { n, k } = w;
  for (const [v, what] of [[m, "m"], [n, "n"], [k, "k"]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`gemm ${what} must be positive`);
  }
  need(x.a, m * k, "gemm a");
  need(x.out, m * n, "gemm out");
  if (x.bias) need(x.bias, n, "gemm bias");
  if (x.residual) need(x.residual, m * n, "gemm residual");
  if (x.norm) need(x.norm.gain, k, "gemm norm gain");
  const quant = w.format === "q8" || w.format === "q4";
  const bs = quant ? w.blockSize ?? 0 : 32;
  if (quant && (bs < 16 || (bs & (bs - 1)) !== 0)) {
    throw new RangeError(`gemm: block size must be a power of two >= 16, got ${bs}`);
  }
  if (w.format === "f16" && k % 2 !== 0) throw new RangeError(`gemm: f16 needs even k, got ${k}`);
  const blocks = quant ? Math.ceil(k / bs) : 0;
  const rowWords = w.format === "f32"
    ? k
    : w.format === "f16"
    ? k / 2
    : (blocks * bs * (w.format === "q8" ? 8 : 4)) / 32;
  need(w.data, n * rowWords, `gemm ${w.format} weight`);
  if (quant) {
    if (!w.scales) throw new RangeError(`gemm: ${w.format} weight without scales`);
    need(w.scales, n * blocks, "gemm scales");
  }
  const zl = quant && w.zeros ? w.zeroLayout ?? (w.format === "q4" ? "nibbles" : "bytes") : "none";
  const zp = zl === "nibbles" ? 4 : zl === "bytes" ? 8 : 0;
  const zs = zp === 4 ? Math.ceil(blocks / 2) : blocks;
  if (zp && w.zeros) need(w.zeros, Math.ceil((n * zs) / 4), "gemm zero points");
  const t = x.tile ?? gemmTile(r);
  if (4 * t.tk < t.tx || t.tx * t.ty > workgroupSize(r, t.tx * t.ty)) {
    throw new RangeError(`gemm: tile ${t.tx}×${t.ty}×${t.tk} not usable here`);
  }
  const gx = Math.ceil(n / (4 * t.tx));
  const gy = Math.ceil(m / (4 * t.ty));
  if (gx > 65535 || gy > 65535) throw new RangeError(`gemm ${m}×${n} is too large`);
  const precision = x.precision ?? "f32";
  if (precision === "f16" && !hasShaderF16(r)) {
    throw new RangeError(
      "gemm: f16 arithmetic needs the shader-f16 feature, which this device lacks",
    );
  }
  const file = precision === "f32" ? "gemm" : "gemm_h";
  const pipeline = await variantPipeline(r, file, {
    FMT: FMT[w.format],
    ZP: zp,
    BS: bs,
    NORM: x.norm ? 1 : 0,
    ACT: x.activation === "gelu_tanh" ? 1 : 0,
    TX: t.tx,
    TY: t.ty,
    TK: t.tk,
  }, precision === "f16-logic");
  const p = new ParamWriter().u32(m).u32(n).u32(k).u32(rowWords).u32(blocks).u32(zs)
    .u32(x.bias ? 1 : 0).u32(x.residual ? 1 : 0)
    .f32(x.norm?.eps ?? 1e-6).f32(x.norm?.gainAdd ?? 1).u32(0).u32(0);
  const d = r.dummy;
  const buffers = [
    x.a,
    w.data,
    w.scales ?? d,
    w.zeros ?? d,
    x.bias ?? d,
    x.residual ?? d,
    x.norm?.gain ?? d,
    x.out,
  ];
  r.record(pipeline, file, buffers, p, [gx, gy, 1]);
}
