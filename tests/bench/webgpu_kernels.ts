/**
 * Micro-benchmark (a script, not a test) of the WebGPU kernels: GFLOP/s of the tiled matmul and
 * GB/s (weight bytes read) of the matrix-vector path. On llvmpipe (a software adapter) the
 * numbers only show that the kernels run; on a real GPU pass larger sizes.
 *
 *   deno run --allow-read tests/bench/webgpu_kernels.ts [--scale 1] [--iters 5]
 *
 * `--scale s` multiplies every benchmark dimension by s (1 = small sizes for llvmpipe).
 * @module
 */

import { parseArgs } from "node:util";
import { matmul } from "../../lib/webgpu/ops.ts";
import { GpuRunner } from "../../lib/webgpu/runner.ts";
import { PgError } from "../../lib/errors.ts";

function random(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Runs `iters` dispatches after one warm-up and returns seconds per dispatch. */
async function time(r: GpuRunner, iters: number, run: () => Promise<void>): Promise<number> {
  await run();
  await r.sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await run();
  await r.sync();
  return (performance.now() - t0) / 1000 / iters;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { scale: { type: "string", default: "1" }, iters: { type: "string", default: "5" } },
  });
  const s = Number(values.scale);
  const iters = Number(values.iters);
  const r = await GpuRunner.open();
  console.log(`adapter: ${r.device.adapterInfo.description || r.device.adapterInfo.vendor}`);
  try {
    for (const [m, n, k] of [[256, 256, 256], [256, 1152, 1152]]) {
      const [M, N, K] = [m * s, n * s, k * s];
      const a = r.tensor(random(M * K));
      const w = r.tensor(random(N * K));
      const out = r.zeros(M * N);
      const sec = await time(
        r,
        iters,
        () => matmul(r, { a, w, out, m: M, n: N, k: K, path: "tiled" }),
      );
      const gflops = (2 * M * N * K) / sec / 1e9;
      console.log(
        `matmul ${M}×${N}×${K}: ${(sec * 1e3).toFixed(2)} ms, ${gflops.toFixed(2)} GFLOP/s`,
      );
    }
    for (const [n, k] of [[2048, 2048], [9216, 2304]]) {
      const [N, K] = [n * s, k * s];
      const a = r.tensor(random(K));
      const w = r.tensor(random(N * K));
      const out = r.zeros(N);
      const sec = await time(
        r,
        iters,
        () => matmul(r, { a, w, out, m: 1, n: N, k: K, path: "matvec" }),
      );
      const gbs = (N * K * 4) / sec / 1e9;
      console.log(`matvec ${N}×${K}: ${(sec * 1e3).toFixed(2)} ms, ${gbs.toFixed(2)} GB/s`);
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
