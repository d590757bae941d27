/**
 * Machine ceilings for the ONNX benchmark (a script module, not a test): read bandwidth with a
 * small C program built on the fly (cc -O3 -march=native, 2 threads), and the rate of each
 * candidate matmul op of onnxruntime-node run alone (MatMul f32, MatMulNBits 4/8 bit at each
 * accuracy level, symmetric or with zero points, DynamicQuantizeMatMul int8).
 *
 *   deno run -A tests/bench/onnx_ceilings.ts        (prints the ceilings and the op table)
 * @module
 */

import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { OnnxModelWriter } from "../../lib/onnx/builder.ts";
import { DataType } from "../../lib/onnx/proto.ts";
import { MS } from "../../lib/convert/layers.ts";

const C_SOURCE = `
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define N (1ull << 28)
static float *a;
static int threads;
typedef struct { size_t lo, hi; float s; } job;
static void *run(void *p) {
  job *j = p; float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  for (size_t i = j->lo; i < j->hi; i += 8) {
    s0 += a[i]; s1 += a[i+1]; s2 += a[i+2]; s3 += a[i+3];
    s4 += a[i+4]; s5 += a[i+5]; s6 += a[i+6]; s7 += a[i+7];
  }
  j->s = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7; return 0;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
  threads = argc > 1 ? atoi(argv[1]) : 2;
  a = aligned_alloc(64, N * sizeof(float));
  for (size_t i = 0; i < N; i++) a[i] = (float)(i & 7);
  double best = 1e9; float sink = 0;
  for (int r = 0; r < 6; r++) {
    pthread_t t[64]; job j[64]; double t0 = now();
    for (int k = 0; k < threads; k++) { j[k].lo = N / threads * k; j[k].hi = N / threads * (k + 1); pthread_create(&t[k], 0, run, &j[k]); }
    for (int k = 0; k < threads; k++) { pthread_join(t[k], 0); sink += j[k].s; }
    double dt = now() - t0; if (dt < best) best = dt;
  }
  printf("%.3f %g\\n", N * sizeof(float) / best / 1e9, sink);
  return 0;
}
`;

/** Read bandwidth in GB/s (best of 6 sums over a 1 GiB float array) with `threads` threads. */
export async function readBandwidth(threads = 2): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "pg-bw-" });
  try {
    await Deno.writeTextFile(join(dir, "bw.c"), C_SOURCE);
    const cc = await new Deno.Command("cc", {
      args: ["-O3", "-march=native", "-pthread", "-o", join(dir, "bw"), join(dir, "bw.c")],
    }).output();
    if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(join(dir, "bw"), { args: [String(threads)] }).output();
    return Number(new TextDecoder().decode(out.stdout).split(" ")[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A candidate matmul layout. */
export interface OpLayout {
  /** Label used in tables. */
  readonly name: string;
  /** "f32" MatMul, "nbits" MatMulNBits, "dq8" DynamicQuantizeMatMul. */
  readonly kind: "f32" | "nbits" | "dq8";
  /** Bits per weight (nbits). */
  readonly bits?: 4 | 8;
  /** accuracy_level (nbits). */
  readonly accuracyLevel?: number;
  /** Zero points stored (nbits). */
  readonly zeroPoints?: boolean;
}

/** Every layout measured. */
export const LAYOUTS: OpLayout[] = [
  { name: "MatMul f32", kind: "f32" },
  { name: "MatMulNBits 8-bit acc 4", kind: "nbits", bits: 8, accuracyLevel: 4 },
  {
    name: "MatMulNBits 8-bit acc 4 +zp",
    kind: "nbits",
    bits: 8,
    accuracyLevel: 4,
    zeroPoints: true,
  },
  { name: "MatMulNBits 8-bit acc 0", kind: "nbits", bits: 8, accuracyLevel: 0 },
  { name: "MatMulNBits 4-bit acc 4", kind: "nbits", bits: 4, accuracyLevel: 4 },
  {
    name: "MatMulNBits 4-bit acc 4 +zp",
    kind: "nbits",
    bits: 4,
    accuracyLevel: 4,
    zeroPoints: true,
  },
  { name: "MatMulNBits 4-bit acc 0", kind: "nbits", bits: 4, accuracyLevel: 0 },
  { name: "MatMulNBits 4-bit acc 1", kind: "nbits", bits: 4, accuracyLevel: 1 },
  { name: "DynamicQuantizeMatMul int8", kind: "dq8" },
];

/** Bytes of weights (with scales and zero points) of one [K, N] matmul in `l`. */
export function weightBytes(l: OpLayout, k: number, n: number): number {
  if (l.kind === "f32") return k * n * 4;
  if (l.kind === "dq8") return k * n + n * 4;
  const blocks = Math.ceil(k / 32);
  const zp = l.zeroPoints ? n * Math.ceil((blocks * l.bits!) / 8) : 0;
  return (n * blocks * 32 * l.bits!) / 8 + n * blocks * 4 + zp;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer, 0, n >> 2);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  return out;
}

function randomF32(n: number, seed: number, scale: number): Float32Array {
  const b = randomBytes(n * 4, seed);
  const u = new Uint32Array(b.buffer);
  const out = new Float32Array(b.buffer);
  for (let i = 0; i < n; i++) out[i] = ((u[i] >>> 8) / 16777216 - 0.5) * scale;
  return out;
}

/** Writes a graph with `copies` independent [K,N] matmuls of input A [M,K] in `l` to `path`. */
async function opGraph(path: string, l: OpLayout, k: number, n: number, copies: number) {
  const g = await OnnxModelWriter.create(path, { externalData: true });
  const a = g.input("A", DataType.FLOAT, ["M", k]);
  for (let c = 0; c < copies; c++) {
    let y: string;
    if (l.kind === "f32") {
      const w = randomF32(k * n, 7 + c, 0.05);
      y = g.op("MatMul", [a, await g.weight(`w${c}`, DataType.FLOAT, [k, n], f32Bytes(w))]);
    } else if (l.kind === "dq8") {
      const w = await g.weight(`w${c}`, DataType.INT8, [k, n], randomBytes(k * n, 7 + c));
      const s = await g.weight(`s${c}`, DataType.FLOAT, [n], f32Bytes(randomF32(n, 9 + c, 1e-3)));
      y = g.op("DynamicQuantizeMatMul", [a, w, s], {}, MS);
    } else {
      const bits = l.bits!;
      const blocks = Math.ceil(k / 32);
      const blob = (32 * bits) / 8;
      const w = await g.weight(
        `w${c}`,
        DataType.UINT8,
        [n, blocks, blob],
        randomBytes(n * blocks * blob, 7 + c),
      );
      const s = await g.weight(
        `s${c}`,
        DataType.FLOAT,
        [n * blocks],
        f32Bytes(randomF32(n * blocks, 9 + c, 1e-2)),
      );
      const inputs = [a, w, s];
      if (l.zeroPoints) {
        const zl = n * Math.ceil((blocks * bits) / 8);
        inputs.push(await g.weight(`z${c}`, DataType.UINT8, [zl], randomBytes(zl, 11 + c)));
      }
      y = g.op("MatMulNBits", inputs, {
        K: k,
        N: n,
        bits,
        block_size: 32,
        accuracy_level: l.accuracyLevel ?? 0,
      }, MS);
    }
    g.output(y, `y${c}`, DataType.FLOAT, ["M", n]);
  }
  await g.finish();
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Median milliseconds of one [M,K]x[K,N] op of layout `l` run alone (each copy counted once). */
export async function timeOp(
  l: OpLayout,
  k: number,
  n: number,
  ms: readonly number[],
  runs = 7,
): Promise<number[]> {
  // Enough distinct weight copies to defeat the 32 MiB L3 (at least 256 MiB of weights).
  const copies = Math.max(1, Math.min(16, Math.ceil((256 << 20) / weightBytes(l, k, n))));
  const dir = await Deno.makeTempDir({ prefix: "pg-op-" });
  try {
    const path = join(dir, "op.onnx");
    await opGraph(path, l, k, n, copies);
    const s = await ort.InferenceSession.create(path, {
      intraOpNumThreads: 2,
      interOpNumThreads: 1,
      executionMode: "sequential",
    });
    const out: number[] = [];
    for (const m of ms) {
      const a = new ort.Tensor("float32", randomF32(m * k, 3, 2), [m, k]);
      await s.run({ A: a });
      const t: number[] = [];
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        await s.run({ A: a });
        t.push((performance.now() - t0) / copies);
      }
      t.sort((x, y) => x - y);
      out.push(t[t.length >> 1]);
    }
    await s.release();
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  console.log(`load: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log(
    `read bandwidth: 1 thread ${(await readBandwidth(1)).toFixed(1)} GB/s, 2 threads ${
      (await readBandwidth(2)).toFixed(1)
    } GB/s`,
  );
  const [k, n] = [2048, 16384];
  console.log(`| op (K=${k}, N=${n}) | M=1 ms | GB/s | M=256 ms | GFLOP/s |`);
  for (const l of LAYOUTS) {
    const [t1, t256] = await timeOp(
      l,
      k,
      n,
      [1, 256],
      l.kind === "nbits" && l.accuracyLevel === 0 && l.bits === 8 ? 3 : 7,
    );
    const gbs = weightBytes(l, k, n) / t1 / 1e6;
    const gf = (2 * 256 * k * n) / t256 / 1e6;
    console.log(
      `| ${l.name} | ${t1.toFixed(2)} | ${gbs.toFixed(1)} | ${t256.toFixed(1)} | ${
        gf.toFixed(0)
      } |`,
    );
  }
}
