/**
 * Machine ceilings for the ONNX benchmark (a script module, not a test): read bandwidth with a
 * small C program built on the fly (cc -O3 -march=native, 2 threads), and the rate of each
 * candidate matmul op of onnxruntime-node run alone (MatMul f32, MatMulNBits 4/8 bit at each
 * accuracy level, symmetric or with zero points, DynamicQuantizeMatMul int8 / uint8), and
 * "matmuls alone": one graph with exactly one token's decoder matmuls (`openDecoderMatmuls`), each
 * group (attention, MLP, LM head) in its own layout (`DecoderLayouts`).
 *
 *   deno run -A tests/bench/onnx_ceilings.ts [name substring]   (ceilings and the op table)
 * @module
 */

import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { OnnxModelWriter } from "../../lib/onnx/builder.ts";
import { DataType } from "../../lib/onnx/proto.ts";
import { MS } from "../../lib/convert/layers.ts";

// Two read kernels over the same 1 GiB, each best of 8, 2 threads each taking one half: a
// vectorised sum (16 floats per add, 4 independent accumulators, so the loop is bound by memory,
// not by a chain of scalar float adds) and memcpy of 64 KiB pieces into a per-thread buffer that
// stays in L2 (glibc's rep-movsb / wide-load copy, which keeps more reads in flight). The figure is
// the faster of the two: on this VM the copy often reads 10-25 % faster than the sum.
const C_SOURCE = `
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define N (1ull << 28)
typedef float v16 __attribute__((vector_size(64)));
static v16 *a;
static int threads, mode;
typedef struct { size_t lo, hi; float s; } job;
static void *run(void *p) {
  job *j = p;
  if (mode) {
    static __thread char buf[1 << 16];
    for (size_t i = j->lo; i < j->hi; i += 1024) memcpy(buf, &a[i], sizeof buf);
    j->s = buf[5]; return 0;
  }
  v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  for (size_t i = j->lo; i < j->hi; i += 4) { s0 += a[i]; s1 += a[i+1]; s2 += a[i+2]; s3 += a[i+3]; }
  v16 t = s0 + s1 + s2 + s3; float s = 0;
  for (int k = 0; k < 16; k++) s += t[k];
  j->s = s; return 0;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
  threads = argc > 1 ? atoi(argv[1]) : 2;
  size_t n = N / 16;
  a = aligned_alloc(64, N * sizeof(float));
  float *f = (float *)a;
  for (size_t i = 0; i < N; i++) f[i] = (float)(i & 7);
  double best[2] = {1e9, 1e9}; float sink = 0;
  for (int r = 0; r < 16; r++) {
    mode = r & 1;
    pthread_t t[64]; job j[64]; double t0 = now();
    for (int k = 0; k < threads; k++) { j[k].lo = n / threads * k; j[k].hi = n / threads * (k + 1); pthread_create(&t[k], 0, run, &j[k]); }
    for (int k = 0; k < threads; k++) { pthread_join(t[k], 0); sink += j[k].s; }
    double dt = now() - t0; if (dt < best[mode]) best[mode] = dt;
  }
  double gb = N * sizeof(float) / 1e9;
  printf("%.3f %.3f %.3f %g\\n", gb / (best[0] < best[1] ? best[0] : best[1]), gb / best[0], gb / best[1], sink);
  return 0;
}
`;

/** Read bandwidth in GB/s over 1 GiB with `threads` threads: the faster of a sum and a copy. */
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
  /** dq8: uint8 weights with zero point 128 (u8·u8 kernels) instead of int8 (u8·s8). */
  readonly unsigned?: boolean;
  /** Bits per weight (nbits). */
  readonly bits?: 4 | 8;
  /** accuracy_level (nbits). */
  readonly accuracyLevel?: number;
  /** Zero points stored (nbits). */
  readonly zeroPoints?: boolean;
  /** Weights per block (nbits; default 32). */
  readonly blockSize?: number;
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
  {
    name: "MatMulNBits 8-bit acc 4 block 16",
    kind: "nbits",
    bits: 8,
    accuracyLevel: 4,
    blockSize: 16,
  },
  { name: "MatMulNBits 8-bit acc 0", kind: "nbits", bits: 8, accuracyLevel: 0 },
  { name: "MatMulNBits 4-bit acc 4", kind: "nbits", bits: 4, accuracyLevel: 4 },
  {
    name: "MatMulNBits 4-bit acc 4 +zp block 16",
    kind: "nbits",
    bits: 4,
    accuracyLevel: 4,
    zeroPoints: true,
    blockSize: 16,
  },
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
  { name: "DynamicQuantizeMatMul uint8 +zp", kind: "dq8", unsigned: true },
];

/** Bytes of weights (with scales and zero points) of one [K, N] matmul in `l`. */
export function weightBytes(l: OpLayout, k: number, n: number): number {
  if (l.kind === "f32") return k * n * 4;
  if (l.kind === "dq8") return k * n + n * (l.unsigned ? 5 : 4);
  const bs = l.blockSize ?? 32;
  const blocks = Math.ceil(k / bs);
  const zp = l.zeroPoints ? n * Math.ceil((blocks * l.bits!) / 8) : 0;
  return (n * blocks * bs * l.bits!) / 8 + n * blocks * 4 + zp;
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

/** A DynamicQuantizeMatMul of random [K,N] weights (int8, or uint8 with zero point 128). */
async function dq8Node(
  g: OnnxModelWriter,
  x: string,
  name: string,
  l: OpLayout,
  k: number,
  n: number,
  seed: number,
  scale: number,
): Promise<string> {
  const type = l.unsigned ? DataType.UINT8 : DataType.INT8;
  const w = await g.weight(name, type, [k, n], randomBytes(k * n, seed));
  const s = await g.weight(`${name}.s`, DataType.FLOAT, [n], f32Bytes(randomF32(n, seed, scale)));
  const inputs = [x, w, s];
  if (l.unsigned) {
    inputs.push(await g.weight(`${name}.z`, DataType.UINT8, [n], new Uint8Array(n).fill(128)));
  }
  return g.op("DynamicQuantizeMatMul", inputs, {}, MS);
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
      y = await dq8Node(g, a, `w${c}`, l, k, n, 7 + c, 1e-3);
    } else {
      const bits = l.bits!;
      const bs = l.blockSize ?? 32;
      const blocks = Math.ceil(k / bs);
      const blob = (bs * bits) / 8;
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
        block_size: bs,
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

/** Shapes of one decoder layer's matmuls for one token, as the converted decoder has them. */
export interface DecoderShapes {
  /** Hidden size (K of q/k/v/gate/up, N of o/down). */
  readonly d: number;
  /** Query width (heads x head dim). */
  readonly q: number;
  /** Key / value width (KV heads x head dim). */
  readonly kv: number;
  /** MLP width. */
  readonly ff: number;
  /** Decoder layers. */
  readonly layers: number;
  /** LM head rows. */
  readonly vocab: number;
  /** q/k/v as one matmul and gate/up as one (the fused decoder layout). */
  readonly fused: boolean;
}

/** The layout of each group of the decoder's matmuls, as `convert` stores them. */
export interface DecoderLayouts {
  /** Attention projections q, k, v (or fused qkv) and o. */
  readonly attention: OpLayout;
  /** MLP gate, up (or fused gate_up) and down. */
  readonly mlp: OpLayout;
  /** LM head. */
  readonly head: OpLayout;
}

/** Random weights of one [K,N] matmul in layout `l`, scaled so outputs stay near unit size. */
async function matmulNode(
  g: OnnxModelWriter,
  x: string,
  name: string,
  l: OpLayout,
  k: number,
  n: number,
  seed: number,
): Promise<string> {
  const unit = 1 / Math.sqrt(k);
  if (l.kind === "f32") {
    const w = randomF32(k * n, seed, 3.4 * unit);
    return g.op("MatMul", [x, await g.weight(name, DataType.FLOAT, [k, n], f32Bytes(w))]);
  }
  if (l.kind === "dq8") return dq8Node(g, x, name, l, k, n, seed, unit / 37);
  const bits = l.bits!;
  const bs = l.blockSize ?? 32;
  const blocks = Math.ceil(k / bs);
  const blob = (bs * bits) / 8;
  const codes = randomBytes(n * blocks * blob, seed);
  const w = await g.weight(name, DataType.UINT8, [n, blocks, blob], codes);
  const scale = new Float32Array(n * blocks).fill(unit / (bits === 8 ? 74 : 4.6));
  const inputs = [x, w, await g.weight(`${name}.s`, DataType.FLOAT, [n * blocks], f32Bytes(scale))];
  if (l.zeroPoints) {
    const zl = n * Math.ceil((blocks * bits) / 8);
    inputs.push(
      await g.weight(
        `${name}.z`,
        DataType.UINT8,
        [zl],
        new Uint8Array(zl).fill(bits === 8 ? 128 : 0x88),
      ),
    );
  }
  const attrs = { K: k, N: n, bits, block_size: bs, accuracy_level: l.accuracyLevel ?? 0 };
  return g.op("MatMulNBits", inputs, attrs, MS);
}

/**
 * Writes ONE graph holding exactly the decoder's matmuls for one token: per layer q, k, v
 * (or one fused qkv), o, gate and up (or one fused gate_up) and down, then the LM head, chained
 * x → qkv → o(q) → gate/up → down(gate · up) → next layer, with k / v collected into a small
 * output so nothing is pruned. q/k/v and o use `layouts.attention`, gate/up and down
 * `layouts.mlp`, the LM head `layouts.head`. Input `x` [1,1,d]; outputs `logits` and `kv`.
 */
async function decoderMatmulGraph(
  path: string,
  s: DecoderShapes,
  layouts: DecoderLayouts,
): Promise<void> {
  const g = await OnnxModelWriter.create(path, { externalData: true });
  let h = g.input("x", DataType.FLOAT, [1, 1, s.d]);
  const kvOut: string[] = [];
  const split = (y: string, sizes: number[]) =>
    g.node("Split", [y, g.constI64(sizes)], sizes.length, { axis: -1 });
  for (let i = 0; i < s.layers; i++) {
    const mm = (l: OpLayout) => (x: string, n: string, k: number, nOut: number, seed: number) =>
      matmulNode(g, x, `l${i}.${n}`, l, k, nOut, 100 * i + seed);
    const att = mm(layouts.attention);
    const mlp = mm(layouts.mlp);
    let q: string;
    if (s.fused) {
      const qkv = await att(h, "qkv", s.d, s.q + 2 * s.kv, 1);
      const [q0, k, v] = split(qkv, [s.q, s.kv, s.kv]);
      q = q0;
      kvOut.push(k, v);
    } else {
      q = await att(h, "q", s.d, s.q, 1);
      kvOut.push(await att(h, "k", s.d, s.kv, 2), await att(h, "v", s.d, s.kv, 3));
    }
    const o = await att(q, "o", s.q, s.d, 4);
    let gate: string;
    let up: string;
    if (s.fused) {
      [gate, up] = split(await mlp(o, "gate_up", s.d, 2 * s.ff, 5), [s.ff, s.ff]);
    } else {
      gate = await mlp(o, "gate", s.d, s.ff, 5);
      up = await mlp(o, "up", s.d, s.ff, 6);
    }
    h = await mlp(g.op("Mul", [gate, up]), "down", s.ff, s.d, 7);
  }
  const logits = await matmulNode(g, h, "lm_head", layouts.head, s.d, s.vocab, 99);
  g.output(logits, "logits", DataType.FLOAT, [1, 1, s.vocab]);
  g.output(g.op("Concat", kvOut, { axis: -1 }), "kv", DataType.FLOAT, [1, 1, 2 * s.layers * s.kv]);
  await g.finish();
}

/** An open "matmuls alone" graph (see `decoderMatmulGraph`). */
export interface DecoderMatmuls {
  /** Runs one token step (one `session.run`) and returns its milliseconds. */
  step(): Promise<number>;
  /** Releases the session and removes the graph files. */
  release(): Promise<void>;
}

/** Writes and opens the "matmuls alone" graph of `s` in `layouts` (two warm-up steps). */
export async function openDecoderMatmuls(
  s: DecoderShapes,
  layouts: DecoderLayouts,
  threads = 2,
): Promise<DecoderMatmuls> {
  const dir = await Deno.makeTempDir({ prefix: "pg-mm-" });
  const path = join(dir, "matmuls.onnx");
  await decoderMatmulGraph(path, s, layouts);
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const x = new ort.Tensor("float32", randomF32(s.d, 5, 3.4), [1, 1, s.d]);
  const step = async () => {
    const t0 = performance.now();
    await session.run({ x });
    return performance.now() - t0;
  };
  await step();
  await step();
  return {
    step,
    release: async () => {
      await session.release();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Best and median of `runs` steps of the "matmuls alone" graph (see `openDecoderMatmuls`). */
export async function timeDecoderMatmuls(
  s: DecoderShapes,
  layouts: DecoderLayouts,
  threads = 2,
  runs = 9,
): Promise<{ bestMs: number; medianMs: number }> {
  const mm = await openDecoderMatmuls(s, layouts, threads);
  const t: number[] = [];
  try {
    for (let r = 0; r < runs; r++) t.push(await mm.step());
  } finally {
    await mm.release();
  }
  t.sort((a, b) => a - b);
  return { bestMs: t[0], medianMs: t[t.length >> 1] };
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
  // Optional argument: run only the layouts whose name contains it.
  for (const l of LAYOUTS.filter((x) => !Deno.args[0] || x.name.includes(Deno.args[0]))) {
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
