/**
 * ONNX speed benchmark (a script, not a test) on a converted full-size model folder: for each
 * precision present (fp32, q8, q4) it measures, in a fresh process, load time, vision encoder,
 * prefill of 266 tokens (256 image + `<bos>` + 8 prompt tokens + "\n"), time to first token,
 * decode tokens/s over 64 greedy tokens and peak RSS; in the same run it measures the read
 * bandwidth (2 threads) and the rate of each precision's matmul ops alone, and prints every
 * figure as a fraction of its roofline (see shared/docs/machine-ceilings.md).
 *
 *   deno run -A tests/bench/onnx.ts [model-dir] [--dtypes fp32,q8,q4] [--threads 2]
 *
 * model-dir defaults to /root/.cache/pg/onnx/pg1-3b-224 (see BENCHMARKS.md for the convert
 * commands).
 * @module
 */

import { parseArgs } from "node:util";
import os from "node:os";
import process from "node:process";
import * as fs from "node:fs";
import { join } from "node:path";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { type Dtype, DTYPE_SUFFIX, openModelDir } from "../../lib/backend/model_dir.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { type OpLayout, readBandwidth, timeOp } from "./onnx_ceilings.ts";

const DEFAULT_DIR = "/root/.cache/pg/onnx/pg1-3b-224";
const PROMPT_TOKENS = 8;
const DECODE_TOKENS = 64;

/** What one child process measures for one precision. */
interface ModelTimes {
  dtype: Dtype;
  loadMs: number;
  visionMs: number;
  prefillMs: number;
  ttftMs: number;
  decodeMsPerToken: number;
  decodeTokPerS: number;
  peakRssMb: number;
  prefillTokens: number;
}

/** Peak resident memory (getrusage's maxRSS) in MiB. */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

async function measureModel(path: string, dtype: Dtype, threads: number): Promise<ModelTimes> {
  const dir = await openModelDir(path);
  const cfg = dir.config;
  let t0 = performance.now();
  const be = await OnnxBackend.load(dir, { dtype, threads });
  const loadMs = performance.now() - t0;
  const s = cfg.vision.imageSize;
  const pixels = new Float32Array(3 * s * s).map((_, i) => Math.sin(i * 0.001));
  const n = cfg.numImageTokens + 1 + PROMPT_TOKENS + 1;
  const ids = new Int32Array(n);
  ids.fill(cfg.imageTokenIndex, 0, cfg.numImageTokens);
  ids[cfg.numImageTokens] = cfg.bosTokenId;
  for (let i = 0; i < PROMPT_TOKENS; i++) ids[cfg.numImageTokens + 1 + i] = 1000 + 37 * i;
  ids[n - 1] = 108;
  const run = async () => {
    const t = performance.now();
    const image = await be.encodeImages(pixels, 1);
    const visionMs = performance.now() - t;
    const p = performance.now();
    const out = await be.prefill({
      batchSize: 1,
      length: n,
      inputIds: ids,
      attentionMask: new Int32Array(n).fill(1),
      positionIds: Int32Array.from({ length: n }, (_, i) => i + 1),
      image,
      logitsToKeep: 1,
    });
    return { visionMs, prefillMs: performance.now() - p, ttftMs: performance.now() - t, out };
  };
  await run(); // warm-up (first runs allocate and pack)
  const first = await run();
  let { cache, logits } = first.out;
  const v = be.vocabSize;
  t0 = performance.now();
  for (let step = 0; step < DECODE_TOKENS; step++) {
    let best = 0;
    for (let i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
    const r = await be.decode({
      cache,
      tokens: Int32Array.of(best),
      positionIds: Int32Array.of(n + step + 1),
      attentionMask: new Int32Array(cache.length + 1).fill(1),
    });
    cache = r.cache;
    logits = r.logits;
  }
  const decodeMs = performance.now() - t0;
  await be.release();
  return {
    dtype,
    loadMs,
    visionMs: first.visionMs,
    prefillMs: first.prefillMs,
    ttftMs: first.ttftMs,
    decodeMsPerToken: decodeMs / DECODE_TOKENS,
    decodeTokPerS: (DECODE_TOKENS * 1000) / decodeMs,
    peakRssMb: peakRssMb(),
    prefillTokens: n,
  };
}

/** The matmul layouts `convert` ships for each precision: [decoder layers, LM head]. */
const SHIPPED: Record<string, [OpLayout, OpLayout]> = {
  fp32: [{ name: "MatMul f32", kind: "f32" }, { name: "MatMul f32", kind: "f32" }],
  q8: [
    { name: "MatMulNBits 8-bit acc 4", kind: "nbits", bits: 8, accuracyLevel: 4 },
    { name: "MatMulNBits 8-bit acc 4", kind: "nbits", bits: 8, accuracyLevel: 4 },
  ],
  q4: [
    {
      name: "MatMulNBits 4-bit acc 4 +zp",
      kind: "nbits",
      bits: 4,
      accuracyLevel: 4,
      zeroPoints: true,
    },
    { name: "MatMulNBits 8-bit acc 4", kind: "nbits", bits: 8, accuracyLevel: 4 },
  ],
};

/** [K, N, count per token] of the decoder's matmuls, LM head last. */
function decoderShapes(cfg: PaliGemmaConfig): [number, number, number][] {
  const t = cfg.text;
  const d = t.hiddenSize;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  const shapes = new Map<string, [number, number, number]>();
  const add = (k: number, n: number, c: number) => {
    const key = `${k}x${n}`;
    const old = shapes.get(key);
    shapes.set(key, [k, n, (old?.[2] ?? 0) + c]);
  };
  add(d, q, t.numLayers);
  add(d, kv, 2 * t.numLayers);
  add(q, d, t.numLayers);
  add(d, t.intermediateSize, 2 * t.numLayers);
  add(t.intermediateSize, d, t.numLayers);
  return [...shapes.values(), [d, t.vocabSize, 1]];
}

/** Parameters of the vision tower's linear layers (what its GEMMs multiply). */
function visionParams(cfg: PaliGemmaConfig): number {
  const v = cfg.vision;
  const perLayer = 4 * v.hiddenSize * v.hiddenSize + 2 * v.hiddenSize * v.intermediateSize;
  const patch = 3 * v.patchSize * v.patchSize * v.hiddenSize;
  return v.numLayers * perLayer + patch + v.hiddenSize * cfg.projectionDim;
}

/** Parameters of the decoder layers' linear layers. */
function decoderParams(cfg: PaliGemmaConfig): number {
  const t = cfg.text;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  return t.numLayers *
    (2 * t.hiddenSize * q + 2 * t.hiddenSize * kv + 3 * t.hiddenSize * t.intermediateSize);
}

function fileBytes(path: string): number {
  let n = 0;
  for (const f of [path, `${path}_data`]) if (fs.existsSync(f)) n += fs.statSync(f).size;
  return n;
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

async function main() {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      child: { type: "string" },
      dtypes: { type: "string", default: "fp32,q8,q4" },
      threads: { type: "string", default: "2" },
    },
  });
  const path = positionals[0] ?? DEFAULT_DIR;
  const threads = Number(values.threads);
  if (values.child) {
    console.log(JSON.stringify(await measureModel(path, values.child as Dtype, threads)));
    return;
  }
  const dir = await openModelDir(path);
  const cfg = dir.config;
  const dtypes = values.dtypes!.split(",").filter((d) =>
    fs.existsSync(join(path, "onnx", `decoder_model_merged${DTYPE_SUFFIX[d as Dtype]}.onnx`))
  ) as Dtype[];
  const cpu = os.cpus()[0]?.model;
  console.log(`# ONNX benchmark ${new Date().toISOString()}`);
  console.log(`machine: ${cpu}, ${navigator.hardwareConcurrency} cores; model ${path}`);
  console.log(`load average before: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  const bw = await readBandwidth(2);
  console.log(`read bandwidth (2 threads): ${bw.toFixed(1)} GB/s`);

  const rows: string[] = [];
  for (const dtype of dtypes) {
    const [body, head] = SHIPPED[dtype];
    // Matmuls alone: each decoder shape at M=1 (x its count) and the GEMM rate at M=256.
    let aloneMs = 0;
    for (const [k, n, count] of decoderShapes(cfg)) {
      const l = count === 1 && n === cfg.text.vocabSize ? head : body;
      aloneMs += count * (await timeOp(l, k, n, [1], 5))[0];
    }
    const [gemmMs] = await timeOp(body, 2048, 16384, [256], 3);
    const gemmRate = (2 * 256 * 2048 * 16384) / (gemmMs / 1000); // FLOP/s
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        path,
        "--child",
        dtype,
        "--threads",
        String(threads),
      ],
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(child.stdout).trim().split("\n").pop()!;
    const m = JSON.parse(text) as ModelTimes;
    const decBytes = fileBytes(
      join(path, "onnx", `decoder_model_merged${DTYPE_SUFFIX[dtype]}.onnx`),
    );
    const rooflineTokS = (bw * 1e9) / decBytes;
    const visionFlops = 2 * visionParams(cfg) * cfg.numImageTokens;
    const prefillFlops = 2 * decoderParams(cfg) * m.prefillTokens;
    const visionRoof = (visionFlops / gemmRate) * 1000;
    const prefillRoof = (prefillFlops / gemmRate) * 1000;
    console.log(`\n## ${dtype}: ${JSON.stringify(m)}`);
    console.log(
      `  matmuls alone per token ${aloneMs.toFixed(1)} ms (${body.name}; head ${head.name}); ` +
        `GEMM M=256 ${(gemmRate / 1e9).toFixed(0)} GFLOP/s; decoder weights ${
          (decBytes / 1e9).toFixed(2)
        } GB`,
    );
    rows.push(
      `| ${dtype} | ${(m.loadMs / 1000).toFixed(1)} s | ${(m.visionMs / 1000).toFixed(2)} s (${
        pct(visionRoof / m.visionMs)
      }) | ${(m.prefillMs / 1000).toFixed(2)} s (${pct(prefillRoof / m.prefillMs)}) | ${
        (m.ttftMs / 1000).toFixed(2)
      } s (${(m.ttftMs / (visionRoof + prefillRoof)).toFixed(2)}x) | ${
        m.decodeTokPerS.toFixed(2)
      } tok/s (${pct(m.decodeTokPerS / rooflineTokS)} of ${rooflineTokS.toFixed(1)}) | ${
        (m.decodeMsPerToken / aloneMs).toFixed(2)
      }x of ${aloneMs.toFixed(0)} ms | ${(m.peakRssMb / 1024).toFixed(2)} GB |`,
    );
  }
  console.log(`\nload average after: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log(
    "\n| dtype | load | vision (of GEMM roofline) | prefill (of GEMM roofline) | " +
      "TTFT (x GEMM roofline) | decode (of bandwidth roofline) | decode step / matmuls alone | " +
      "peak RSS |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(r);
}

if (import.meta.main) await main();
