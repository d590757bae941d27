/**
 * Micro-benchmark (a script, not a test) of the WebGPU kernels: GFLOP/s of the GEMMs, GB/s
 * (weight bytes read) of the matrix-vector paths per storage format, the attention kernels'
 * FLOP rate and KV bytes read, and the time of the device-side token choice. On llvmpipe (a
 * software adapter) the figures only show that the kernels run: they are NOT GPU figures, and
 * every line says so. On a real GPU pass `--scale` for full-size shapes.
 *
 *   deno run --allow-read tests/bench/webgpu_kernels.ts [--scale 1] [--iters 5] [--only gemv]
 *
 * `--scale s` multiplies the benchmark dimensions by s (1 = small sizes for llvmpipe; the
 * PaliGemma 3B shapes are scale 8 for the GEMVs). `--only` runs one group: matmul, gemm, gemv,
 * attention, sample.
 * @module
 */

import { parseArgs } from "node:util";
import { quantizeRows } from "../../lib/convert/quantize.ts";
import { argmax, attention, matmul } from "../../lib/webgpu/ops.ts";
import { flashAttention, flashScratchLengths, flashSplits } from "../../lib/webgpu/ops_flash.ts";
import { gemm } from "../../lib/webgpu/ops_gemm.ts";
import { gemv } from "../../lib/webgpu/ops_gemv.ts";
import { sampleScratchLength, sampleTokens } from "../../lib/webgpu/ops_sample.ts";
import { GpuRunner } from "../../lib/webgpu/runner.ts";
import { isSoftwareAdapter } from "../../lib/webgpu/variants.ts";
import {
  f16Weight,
  f32Weight,
  type GpuWeight,
  packZeroPointsFor,
  quantWeight,
} from "../../lib/webgpu/weights.ts";
import { PgError } from "../../lib/errors.ts";

function random(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Runs `iters` recordings after one warm-up and returns seconds per run. */
async function time(r: GpuRunner, iters: number, run: () => Promise<void>): Promise<number> {
  await run();
  await r.sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await run();
  await r.sync();
  return (performance.now() - t0) / 1000 / iters;
}

function weight(r: GpuRunner, fmt: "f32" | "f16" | "q8" | "q4", n: number, k: number): GpuWeight {
  const w = random(n * k);
  if (fmt === "f32") return f32Weight(r, w, n, k);
  if (fmt === "f16") return f16Weight(r, w, n, k);
  const bits = fmt === "q8" ? 8 : 4;
  const scheme = { bits, blockSize: 32, asymmetric: bits === 4 } as const;
  const q = quantizeRows(w, n, k, scheme);
  return quantWeight(r, packZeroPointsFor(q, n, k, scheme), n, k, bits, 32);
}

/** Bytes of a weight as stored (codes + scales + zero points). */
function weightBytes(w: GpuWeight): number {
  return 4 * (w.data.length + (w.scales?.length ?? 0) + (w.zeros?.length ?? 0));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      scale: { type: "string", default: "1" },
      iters: { type: "string", default: "5" },
      only: { type: "string" },
    },
  });
  const s = Number(values.scale);
  const iters = Number(values.iters);
  const only = values.only;
  const want = (g: string) => !only || only === g;
  const r = await GpuRunner.open();
  const info = r.device.adapterInfo;
  const soft = isSoftwareAdapter(r);
  const tag = soft ? " [llvmpipe: CPU software rendering, NOT a GPU figure]" : "";
  console.log(`adapter: ${info.description || info.vendor}${soft ? " (software)" : ""}`);
  try {
    if (want("matmul") || want("gemm")) {
      for (const [m, n, k] of [[256, 256, 256], [256, 1152, 1152]]) {
        const [M, N, K] = [m * s, n * s, k * s];
        const a = r.tensor(random(M * K));
        const wt = random(N * K);
        const out = r.zeros(M * N);
        const flops = 2 * M * N * K;
        if (want("matmul")) {
          const w = r.tensor(wt);
          const sec = await time(r, iters, () => matmul(r, { a, w, out, m: M, n: N, k: K }));
          console.log(
            `matmul (ops.ts) ${M}×${N}×${K}: ${(sec * 1e3).toFixed(2)} ms, ` +
              `${(flops / sec / 1e9).toFixed(2)} GFLOP/s${tag}`,
          );
        }
        if (want("gemm")) {
          for (const fmt of ["f32", "f16", "q8"] as const) {
            const w = weight(r, fmt, N, K);
            const sec = await time(r, iters, () => gemm(r, { a, w, out, m: M }));
            console.log(
              `gemm ${fmt} ${M}×${N}×${K}: ${(sec * 1e3).toFixed(2)} ms, ` +
                `${(flops / sec / 1e9).toFixed(2)} GFLOP/s${tag}`,
            );
          }
        }
      }
    }
    if (want("gemv")) {
      for (const [n, k] of [[2048, 2048], [9216, 2304]]) {
        const [N, K] = [(n * s) / 8, (k * s) / 8].map((v) => Math.max(32, Math.round(v / 32) * 32));
        const x = r.tensor(random(K));
        const out = r.zeros(N);
        {
          const w = r.tensor(random(N * K));
          const sec = await time(r, iters, () => matmul(r, { a: x, w, out, m: 1, n: N, k: K }));
          console.log(
            `matvec (ops.ts) f32 ${N}×${K}: ${(sec * 1e3).toFixed(3)} ms, ` +
              `${((N * K * 4) / sec / 1e9).toFixed(2)} GB/s${tag}`,
          );
        }
        for (const fmt of ["f32", "f16", "q8", "q4"] as const) {
          const w = weight(r, fmt, N, K);
          const sec = await time(r, iters, () => gemv(r, { w, x, out, m: 1 }));
          console.log(
            `gemv ${fmt} ${N}×${K}: ${(sec * 1e3).toFixed(3)} ms, ` +
              `${(weightBytes(w) / sec / 1e9).toFixed(2)} GB/s of weights${tag}`,
          );
        }
      }
    }
    if (want("attention")) {
      // PaliGemma 1 3B attention: 8 query heads, 1 KV head, head_dim 256.
      const [H, Hkv, D] = [8, 1, 256];
      for (const [T, P] of [[Math.round(64 * s), 0], [1, Math.round(512 * s)]]) {
        const cap = P + T;
        const q = r.tensor(random(T * H * D));
        const k = r.tensor(random(Hkv * cap * D));
        const v = r.tensor(random(Hkv * cap * D));
        const out = r.zeros(T * H * D);
        const base = {
          q,
          k,
          v,
          out,
          batch: 1,
          heads: H,
          kvHeads: Hkv,
          tokens: T,
          headDim: D,
          past: P,
          capacity: cap,
          scale: 1 / 16,
        };
        const flops = 4 * T * H * cap * D;
        const kvBytes = 2 * Hkv * cap * D * 4;
        const report = (name: string, sec: number) =>
          console.log(
            `${name} T=${T} past=${P}: ${(sec * 1e3).toFixed(3)} ms, ` +
              `${(flops / sec / 1e9).toFixed(2)} GFLOP/s, ${
                (kvBytes / sec / 1e9).toFixed(2)
              } GB/s ` +
              `of KV${tag}`,
          );
        report("attention (ops.ts)", await time(r, iters, () => attention(r, base)));
        report("flash attention", await time(r, iters, () => flashAttention(r, base)));
        const splits = flashSplits(cap, Math.ceil(H / 8) * Hkv);
        if (splits > 1) {
          const n = flashScratchLengths(splits, 1, H, T, D);
          const scratch = { part: r.zeros(n.part), ml: r.zeros(n.ml) };
          report(
            `flash attention split-KV ×${splits}`,
            await time(r, iters, () => flashAttention(r, { ...base, splits, scratch })),
          );
        }
      }
    }
    if (want("sample")) {
      const V = 257216;
      const logits = r.tensor(random(V).map((v) => v * 10));
      const out = r.zeros(4);
      const scratch = r.zeros(sampleScratchLength(r, 1, V));
      const uniforms = r.tensor(new Float32Array([0.37]));
      const ids = r.zeros(1);
      const ms = (sec: number) => `${(sec * 1e3).toFixed(3)} ms${tag}`;
      console.log(
        `argmax (ops.ts, one workgroup) over ${V}: ` +
          ms(await time(r, iters, () => argmax(r, { x: logits, out: ids, rows: 1, n: V }))),
      );
      for (
        const [name, sampling] of [
          ["greedy", { temperature: 0, topK: 0, topP: 1 }],
          ["temperature", { temperature: 0.8, topK: 0, topP: 1 }],
          ["top-k 40 + top-p 0.9", { temperature: 0.8, topK: 40, topP: 0.9 }],
        ] as const
      ) {
        const sec = await time(
          r,
          iters,
          () => sampleTokens(r, { logits, rows: 1, vocab: V, out, scratch, sampling, uniforms }),
        );
        console.log(`sample ${name} over ${V}: ${ms(sec)}`);
      }
    }
  } finally {
    r.destroy();
  }
}

try {
  await main();
} catch (err) {
  if (err instanceof PgError) {
    console.error(`error: ${err.message}`);
    Deno.exit(err.exitCode);
  }
  throw err;
}
