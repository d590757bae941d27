/**
 * GEMV for decode (kernels/gemv_q.wgsl): Y[m, :] = X'[m, :] · Wᵀ (+ bias) (+ residual) for a few
 * activation rows, over f32, f16, q8 and q4 weights (see weights.ts for the layouts), with an
 * optional fused Gemma RMSNorm of X.
 *
 * Workgroup size: 256 threads, or the largest power of two the adapter's
 * maxComputeInvocationsPerWorkgroup / maxComputeWorkgroupSizeX allow. Threads per output row
 * (TPR): 32, fewer for short rows (at most half the row's 16-byte units, at least 4), so
 * WG / TPR output rows share a workgroup (at least 2: a gate row and its up row with `glu`). Workgroup memory: 16 · WG + 16 bytes.
 * @module
 */

import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";
import { floorPow2, variantPipeline, workgroupSize } from "./variants.ts";
import { type GpuWeight, rowBytes } from "./weights.ts";

/** A fused Gemma RMSNorm of the GEMV input: x · rsqrt(mean(x²) + eps) · (gain + gainAdd). */
export interface FusedNorm {
  /** [k] gain (HF's norm weight with gainAdd 1, or a folder's folded scale with gainAdd 0). */
  readonly gain: GpuTensor;
  /** Epsilon (default 1e-6). */
  readonly eps?: number;
  /** Added to every gain value (default 1: Gemma's 1 + w). */
  readonly gainAdd?: number;
}

/** Arguments of `gemv`. */
export interface GemvArgs {
  /** [n, k] weight. */
  readonly w: GpuWeight;
  /** [m, k] f32 activations (k % 4 == 0). */
  readonly x: GpuTensor;
  /** [m, n] f32 output (not x, bias or residual). */
  readonly out: GpuTensor;
  /** Activation rows (any; 4 per workgroup along z, so small m is the intended use). */
  readonly m: number;
  /** Optional [n] bias. */
  readonly bias?: GpuTensor;
  /** Optional [m, n] residual added to the output (a different buffer from out). */
  readonly residual?: GpuTensor;
  /** Optional RMSNorm applied to x on the fly. */
  readonly norm?: FusedNorm;
  /**
   * Gated MLP epilogue: w is a fused gate|up weight of 2·I rows (bias likewise [2·I]); out and
   * residual are [m, I] with out = gelu_tanh(gate) · up (+ residual).
   */
  readonly glu?: boolean;
}

const FMT = { f32: 0, f16: 1, q8: 2, q4: 3 } as const;

function need(t: GpuTensor, n: number, what: string): void {
  if (t.length < n) throw new RangeError(`${what}: buffer holds ${t.length} values, needs ${n}`);
}

/** Checks `w`'s shape and storage against the GEMV kernel's requirements; returns row words. */
export function checkGemvWeight(w: GpuWeight): number {
  const { n, k } = w;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(k) || k < 1) {
    throw new RangeError(`gemv: bad weight shape ${n}×${k}`);
  }
  if (k % 4 !== 0) throw new RangeError(`gemv: k must be a multiple of 4, got ${k}`);
  if (w.format === "q8" || w.format === "q4") {
    const bs = w.blockSize ?? 0;
    if (bs < 16 || (bs & (bs - 1)) !== 0) {
      throw new RangeError(`gemv: block size must be a power of two >= 16, got ${bs}`);
    }
    if (!w.scales) throw new RangeError(`gemv: ${w.format} weight without scales`);
    need(w.scales, n * Math.ceil(k / bs), "gemv scales");
    if ((w.zeroLayout ?? "none") !== "none" && !w.zeros) {
      throw new RangeError(`gemv: zero layout ${w.zeroLayout} without zero points`);
    }
  }
  const bytes = rowBytes(w);
  if (bytes % 16 !== 0) {
    throw new RangeError(
      `gemv: a ${w.format} row of ${k} values is ${bytes} bytes, not a multiple of 16`,
    );
  }
  need(w.data, (n * bytes) / 4, `gemv ${w.format} weight`);
  return bytes / 4;
}

/** Records the GEMV. */
export async function gemv(r: GpuRunner, x: GemvArgs): Promise<void> {
  const { w, m } = x;
  const rowWords = checkGemvWeight(w);
  if (!Number.isInteger(m) || m < 1) throw new RangeError("gemv m must be a positive integer");
  if (m > 4 * 65535) throw new RangeError(`gemv takes at most ${4 * 65535} rows, got ${m}`);
  need(x.x, m * w.k, "gemv x");
  if (x.glu && w.n % 2 !== 0) throw new RangeError(`gemv glu: odd row count ${w.n}`);
  const outCols = x.glu ? w.n / 2 : w.n;
  need(x.out, m * outCols, "gemv out");
  if (x.bias) need(x.bias, w.n, "gemv bias");
  if (x.residual) need(x.residual, m * outCols, "gemv residual");
  if (x.norm) need(x.norm.gain, w.k, "gemv norm gain");
  const units = rowWords / 4;
  const wg = workgroupSize(r, 256);
  const tpr = Math.max(1, Math.min(32, wg / 2, floorPow2(Math.max(4, units / 2))));
  const quant = w.format === "q8" || w.format === "q4";
  const bs = quant ? w.blockSize ?? 32 : 32;
  const blocks = quant ? Math.ceil(w.k / bs) : 0;
  const zl = quant && w.zeros ? w.zeroLayout ?? (w.format === "q4" ? "nibbles" : "bytes") : "none";
  const zp = zl === "nibbles" ? 4 : zl === "bytes" ? 8 : 0;
  const zs = zp === 4 ? Math.ceil(blocks / 2) : blocks;
  if (zp && w.zeros) need(w.zeros, Math.ceil((w.n * zs) / 4), "gemv zero points");
  const pipeline = await variantPipeline(r, "gemv_q", {
    FMT: FMT[w.format],
    ZP: zp,
    BS: bs,
    WG: wg,
    TPR: tpr,
    NORM: x.norm ? 1 : 0,
    GLU: x.glu ? 1 : 0,
  });
  const p = new ParamWriter().u32(m).u32(w.n).u32(w.k / 4).u32(units).u32(blocks).u32(zs)
    .u32(x.bias ? 1 : 0).u32(x.residual ? 1 : 0)
    .f32(x.norm?.eps ?? 1e-6).f32(x.norm?.gainAdd ?? 1).u32(0).u32(0);
  const d = r.dummy;
  const buffers = [
    w.data,
    w.scales ?? d,
    w.zeros ?? d,
    x.x,
    x.bias ?? d,
    x.residual ?? d,
    x.norm?.gain ?? d,
    x.out,
  ];
  const perGroup = x.glu ? wg / tpr / 2 : wg / tpr;
  r.record(pipeline, "gemv_q", buffers, p, grid(Math.ceil(outCols / perGroup), Math.ceil(m / 4)));
}
