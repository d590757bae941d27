/**
 * Token choice on the device (kernels/sample.wgsl): greedy argmax, or temperature / top-k /
 * top-p sampling driven by a uniform draw from the CPU's seeded RNG (lib/generate/rng.ts), so the
 * pick matches `pickToken` in lib/generate/sampling.ts for the same draw (up to float32 rounding
 * at the edges of the cumulative distribution), with an optional grammar bitmask per row. Only
 * 4 words per row come back: token, its probability (softmax at temperature 1 before the mask),
 * flags and the candidate count.
 *
 * Two dispatches: per-chunk statistics (max / sum of exponentials / first argmax, raw and masked)
 * over many workgroups, then one workgroup per row that combines them and picks. Sizes from the
 * adapter's limits: WG = 256 threads (64 on software adapters, whose compile time grows steeply
 * with workgroup memory) capped by maxComputeInvocationsPerWorkgroup; chunks of 16·WG ids;
 * candidate capacity CAP = 1024 (64 on software adapters), halved until the workgroup memory
 * 4·(5·WG + 256 + 2·CAP + 8) bytes fits maxComputeWorkgroupStorageSize. top_k > CAP, ties past
 * CAP, or a nucleus needing more than CAP candidates set flag 1: sample that row on the CPU.
 * @module
 */

import type { SamplingOptions } from "../generate/sampling.ts";
import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";
import { isSoftwareAdapter, variantPipeline, workgroupSize, workgroupStorage } from "./variants.ts";

/** Flag: the candidates did not fit the kernel's capacity; pick this row on the CPU. */
export const SAMPLE_OVERFLOW = 1;
/** Flag: the mask allowed no id (token 0 returned). */
export const SAMPLE_NONE_ALLOWED = 2;

/** Sizes of the sampling kernels on a device. */
export interface SamplePlan {
  /** Threads per workgroup. */
  readonly wg: number;
  /** Ids per chunk of the first pass. */
  readonly chunk: number;
  /** Candidate capacity of top-k / top-p. */
  readonly cap: number;
}

/** The sampling kernels' sizes on `r`'s device. */
export function samplePlan(r: GpuRunner): SamplePlan {
  const soft = isSoftwareAdapter(r);
  const wg = workgroupSize(r, soft ? 64 : 256);
  let cap = soft ? 64 : 1024;
  while (cap > 16 && 4 * (5 * wg + 256 + 2 * cap + 8) > workgroupStorage(r)) cap /= 2;
  return { wg, chunk: 16 * wg, cap };
}

/** Elements of the scratch buffer `sampleTokens` needs for `rows` rows of `vocab` logits. */
export function sampleScratchLength(
  r: GpuRunner,
  rows: number,
  vocab: number,
  plan = samplePlan(r),
): number {
  return rows * Math.ceil(vocab / plan.chunk) * 6;
}

/** Arguments of `sampleTokens`. */
export interface SampleArgs {
  /** f32 logits [rows, vocab]. */
  readonly logits: GpuTensor;
  /** Rows. */
  readonly rows: number;
  /** Row width. */
  readonly vocab: number;
  /** u32 [rows, 4] output: token, f32 bits of its probability, flags, candidates. */
  readonly out: GpuTensor;
  /** Scratch of `sampleScratchLength` elements. */
  readonly scratch: GpuTensor;
  /** Temperature 0 = greedy; topK 0 and topP 1 switch those filters off. */
  readonly sampling: SamplingOptions;
  /** f32 [rows] uniform draws in [0, 1) (one `rng.next()` per row; ignored when greedy). */
  readonly uniforms?: GpuTensor;
  /** Optional u32 [rows, ceil(vocab / 32)] bitmask: bit (id % 32) of word id / 32 set = allowed. */
  readonly mask?: GpuTensor;
  /** Size override (wg and cap powers of two, chunk a multiple of wg), for tests and tuning. */
  readonly plan?: SamplePlan;
}

function need(t: GpuTensor, n: number, what: string): void {
  if (t.length < n) throw new RangeError(`${what}: buffer holds ${t.length} values, needs ${n}`);
}

/** Records the two sampling dispatches. */
export async function sampleTokens(r: GpuRunner, x: SampleArgs): Promise<void> {
  const { rows, vocab, sampling } = x;
  if (!Number.isInteger(rows) || rows < 1 || rows > 65535) {
    throw new RangeError(`sampleTokens rows must be in 1..65535, got ${rows}`);
  }
  if (!Number.isInteger(vocab) || vocab < 1) throw new RangeError("sampleTokens vocab");
  const plan = x.plan ?? samplePlan(r);
  const nchunks = Math.ceil(vocab / plan.chunk);
  const words = Math.ceil(vocab / 32);
  need(x.logits, rows * vocab, "sampleTokens logits");
  need(x.out, rows * 4, "sampleTokens out");
  need(x.scratch, rows * nchunks * 6, "sampleTokens scratch");
  if (x.mask) need(x.mask, rows * words, "sampleTokens mask");
  const greedy = !(sampling.temperature > 0);
  if (!greedy) {
    if (!x.uniforms) throw new RangeError("sampleTokens: sampling needs uniform draws");
    need(x.uniforms, rows, "sampleTokens uniforms");
  }
  // As sampling.ts: top-k only when 0 < topK < vocab.
  const topK = !greedy && sampling.topK > 0 && sampling.topK < vocab ? sampling.topK : 0;
  const p = new ParamWriter().u32(rows).u32(vocab).u32(plan.chunk).u32(nchunks)
    .u32(x.mask ? 1 : 0).u32(words).u32(topK).u32(greedy ? 1 : 0)
    .f32(greedy ? 1 : 1 / sampling.temperature).f32(greedy ? 1 : sampling.topP).u32(0).u32(0);
  const buffers = [x.logits, x.mask ?? r.dummy, x.uniforms ?? r.dummy, x.scratch, x.out];
  const consts = { WG: plan.wg, CAP: plan.cap };
  const first = await variantPipeline(r, "sample", { ...consts, PASS: 0 });
  r.record(first, "sample chunks", buffers, p, [nchunks, rows, 1]);
  const second = await variantPipeline(r, "sample", { ...consts, PASS: 1 });
  r.record(second, "sample pick", buffers, p, grid(rows));
}

/** One row's result of `sampleTokens`. */
export interface SampledToken {
  /** The token id. */
  readonly token: number;
  /** Its probability: softmax of the row's logits at temperature 1, before the mask. */
  readonly prob: number;
  /** 0, SAMPLE_OVERFLOW (pick on the CPU) or SAMPLE_NONE_ALLOWED. */
  readonly flags: number;
  /** Candidates considered (allowed ids, or the top-k / top-p candidates). */
  readonly candidates: number;
}

/** Decodes the u32 [rows, 4] output of `sampleTokens`. */
export function decodeSamples(words: Uint32Array, rows: number): SampledToken[] {
  const f = new Float32Array(words.buffer, words.byteOffset, words.length);
  return Array.from({ length: rows }, (_, i) => ({
    token: words[4 * i],
    prob: f[4 * i + 1],
    flags: words[4 * i + 2],
    candidates: words[4 * i + 3],
  }));
}
