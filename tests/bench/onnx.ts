/**
 * ONNX speed benchmark (a script, not a test) on a converted full-size model folder: for each
 * precision present (fp32, q8, q4) it measures, in a fresh process, load time, vision encoder,
 * prefill of 266 tokens (256 image + `<bos>` + 8 prompt tokens + "\n"), time to first token,
 * decode tokens/s over 64 greedy tokens and peak RSS. Right beside the decode, in the same child
 * process, it measures the read bandwidth (C program, 2 threads, just before and just after the
 * decode) and "matmuls alone": one ONNX graph holding exactly one token's decoder matmuls in the
 * shipped layouts (attention, MLP and LM head each in its own), one `session.run` per step.
 * Just before each precision's child, the GEMM rate (M=256, K=2048, N=16384, median of 3) of each
 * distinct op that precision ships for the vision tower, the decoder's attention and its MLP is
 * measured; the GEMM roofline of TTFT is vision FLOPs / vision rate + attention prefill FLOPs /
 * attention rate + MLP prefill FLOPs / MLP rate. Every figure is printed as a fraction of its
 * roofline (see shared/docs/machine-ceilings.md).
 *
 *   deno run -A tests/bench/onnx.ts [model-dir] [--dtypes fp32,q8,q4] [--threads 2]
 *
 * model-dir defaults to /root/.cache/pg/onnx/pg1-3b-224 (see BENCHMARKS.md for the convert
 * commands).
 * @module
 */

import { benchInput } from "./bench_input.ts";
import { parseArgs } from "node:util";
import os from "node:os";
import process from "node:process";
import * as fs from "node:fs";
import { join } from "node:path";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { type Precision, PRECISION_SUFFIX } from "../../lib/model/precision.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import {
  type DecoderLayouts,
  type DecoderShapes,
  openDecoderMatmuls,
  type OpLayout,
  readBandwidth,
  timeDecoderMatmuls,
  timeOp,
} from "./onnx_ceilings.ts";

const DEFAULT_DIR = "/root/.cache/pg/onnx/pg1-3b-224";
const DECODE_TOKENS = 64;
/** Decode steps alternated with as many "matmuls alone" steps, in blocks of BLOCK. */
const PAIRS = 16;
const BLOCK = 4;

/** What one child process measures for one precision. */
interface ModelTimes {
  dtype: Precision;
  loadMs: number;
  visionMs: number;
  prefillMs: number;
  ttftMs: number;
  decodeMsPerToken: number;
  decodeMedianMs: number;
  decodeTokPerS: number;
  /** Peak RSS of this process after the decode (getrusage maxRSS), MiB. */
  peakRssMb: number;
  /** The same from /proc/self/status VmHWM (a cross-check), MiB. */
  vmHwmMb: number;
  prefillTokens: number;
  /** Read bandwidth just before and just after the decode, GB/s. */
  bwBefore: number;
  bwAfter: number;
  /** Median decode step in blocks alternated with the "matmuls alone" ones (fp32: the 64), ms. */
  pairedDecodeMs: number;
  /** One token's decoder matmuls alone (one graph, one run per step), ms. */
  aloneBestMs: number;
  aloneMedianMs: number;
}

/** Peak resident memory (getrusage's maxRSS) in MiB. */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** VmHWM of /proc/self/status in MiB (NaN where unreadable). */
function vmHwmMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Decoder matmul shapes of `cfg` for `timeDecoderMatmuls` (the converted, unfused layout). */
function shapesOf(cfg: PaliGemmaConfig): DecoderShapes {
  const t = cfg.text;
  return {
    d: t.hiddenSize,
    q: t.numHeads * t.headDim,
    kv: t.numKvHeads * t.headDim,
    ff: t.intermediateSize,
    layers: t.numLayers,
    vocab: t.vocabSize,
    fused: false,
  };
}

async function measureModel(path: string, dtype: Precision, threads: number): Promise<ModelTimes> {
  const dir = await openModelDir(path);
  const cfg = dir.config;
  let t0 = performance.now();
  const be = await OnnxBackend.load(dir, { dtype, threads });
  const loadMs = performance.now() - t0;
  const { pixels, ids } = benchInput(cfg);
  const n = ids.length;
  const run = async () => {
    const t = performance.now();
    const image = await be.encodeImages(pixels, 1);
    const visionMs = performance.now() - t;
    const p = performance.now();
    const out = await be.prefillLogits({
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
  let step = 0;
  const decodeStep = async () => {
    const ts = performance.now();
    let best = 0;
    for (let i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
    const r = await be.decodeLogits({
      cache,
      tokens: Int32Array.of(best),
      positionIds: Int32Array.of(n + ++step),
      attentionMask: new Int32Array(cache.length + 1).fill(1),
    });
    cache = r.cache;
    logits = r.logits;
    return performance.now() - ts;
  };
  const bwBefore = await readBandwidth(2);
  const steps: number[] = [];
  t0 = performance.now();
  for (let i = 0; i < DECODE_TOKENS; i++) steps.push(await decodeStep());
  const decodeMs = performance.now() - t0;
  const bwAfter = await readBandwidth(2);
  const peak = peakRssMb();
  const hwm = vmHwmMb();
  const layouts = SHIPPED[dtype];
  const median = (a: number[]) => a.toSorted((x, y) => x - y)[a.length >> 1];
  let alone: number[] = [];
  let paired: number[] = [];
  if (dtype !== "fp32") {
    // Both fit in memory: alternate blocks of decode steps and "matmuls alone" steps, so that
    // both medians see the same stretch of this shared machine's bandwidth. Blocks, not single
    // steps: right after a run a session's idle ORT workers spin for a while and slow the other
    // session's next step (measured: alternating single steps made both ~25 % slower).
    const mm = await openDecoderMatmuls(shapesOf(cfg), layouts, threads);
    for (let i = 0; i < PAIRS; i += BLOCK) {
      for (let j = 0; j < BLOCK; j++) paired.push(await decodeStep());
      for (let j = 0; j < BLOCK; j++) alone.push(await mm.step());
    }
    await mm.release();
    await be.release();
  } else {
    // fp32's 10 GB of weights twice would not fit: release the model first.
    await be.release();
    const r = await timeDecoderMatmuls(shapesOf(cfg), layouts, threads, PAIRS);
    alone = [r.medianMs];
    paired = steps;
  }
  return {
    dtype,
    loadMs,
    visionMs: first.visionMs,
    prefillMs: first.prefillMs,
    ttftMs: first.ttftMs,
    decodeMsPerToken: decodeMs / DECODE_TOKENS,
    decodeMedianMs: median(steps),
    pairedDecodeMs: median(paired),
    decodeTokPerS: (DECODE_TOKENS * 1000) / decodeMs,
    peakRssMb: peak,
    vmHwmMb: hwm,
    prefillTokens: n,
    bwBefore,
    bwAfter,
    aloneBestMs: Math.min(...alone),
    aloneMedianMs: median(alone),
  };
}

/** The matmul layouts `convert` ships for one precision, per group of weights. */
interface ShippedLayouts extends DecoderLayouts {
  /** SigLIP's linear layers and the projector. */
  readonly vision: OpLayout;
}

const F32: OpLayout = { name: "MatMul f32", kind: "f32" };
const Q8_ATTENTION: OpLayout = {
  name: "MatMulNBits 8-bit acc 4 block 16",
  kind: "nbits",
  bits: 8,
  accuracyLevel: 4,
  blockSize: 16,
};
const Q8_BLOCK32: OpLayout = {
  name: "MatMulNBits 8-bit acc 4",
  kind: "nbits",
  bits: 8,
  accuracyLevel: 4,
  blockSize: 32,
};
/** fp16 weights: ONNX Runtime folds their Cast at load, so they run as fp32 MatMul. */
const F16_VISION: OpLayout = { name: "MatMul f32 (fp16 weights)", kind: "f32" };

/** The layouts `convert` ships for each precision (see `defaultQuant` in lib/convert/layers.ts). */
const SHIPPED: Record<string, ShippedLayouts> = {
  fp32: { vision: F32, attention: F32, mlp: F32, head: F32 },
  q8: { vision: F16_VISION, attention: Q8_ATTENTION, mlp: Q8_BLOCK32, head: Q8_BLOCK32 },
  q4: {
    vision: F16_VISION,
    attention: Q8_ATTENTION,
    mlp: {
      name: "MatMulNBits 4-bit acc 4 +zp",
      kind: "nbits",
      bits: 4,
      accuracyLevel: 4,
      zeroPoints: true,
      blockSize: 32,
    },
    head: Q8_BLOCK32,
  },
};

/** The groups whose GEMM rate bounds vision and prefill. */
const GEMM_GROUPS = ["vision", "attention", "mlp"] as const;
type GemmGroup = typeof GEMM_GROUPS[number];

/** An op's identity for timing (its label aside): equal keys run the same kernel. */
function opKey(l: OpLayout): string {
  return JSON.stringify([l.kind, l.bits, l.accuracyLevel, !!l.zeroPoints, l.unsigned, l.blockSize]);
}

/**
 * GEMM rate in FLOP/s (M=256, K=2048, N=16384, median of 3) of each group's op in `layouts`,
 * each distinct op timed once.
 */
async function gemmRates(layouts: ShippedLayouts): Promise<Record<GemmGroup, number>> {
  const [k, n, m] = [2048, 16384, 256];
  const byOp = new Map<string, number>();
  const out = {} as Record<GemmGroup, number>;
  for (const g of GEMM_GROUPS) {
    const l = layouts[g];
    let rate = byOp.get(opKey(l));
    if (rate === undefined) {
      const [ms] = await timeOp(l, k, n, [m], 3);
      rate = (2 * m * k * n) / (ms / 1000);
      byOp.set(opKey(l), rate);
    }
    out[g] = rate;
  }
  return out;
}

/** Parameters of the vision tower's linear layers (what its GEMMs multiply). */
function visionParams(cfg: PaliGemmaConfig): number {
  const v = cfg.vision;
  const perLayer = 4 * v.hiddenSize * v.hiddenSize + 2 * v.hiddenSize * v.intermediateSize;
  const patch = 3 * v.patchSize * v.patchSize * v.hiddenSize;
  return v.numLayers * perLayer + patch + v.hiddenSize * cfg.projectionDim;
}

/** Parameters of the decoder layers' attention projections (q, k, v, o). */
function attentionParams(cfg: PaliGemmaConfig): number {
  const t = cfg.text;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  return t.numLayers * (2 * t.hiddenSize * q + 2 * t.hiddenSize * kv);
}

/** Parameters of the decoder layers' MLPs (gate, up, down). */
function mlpParams(cfg: PaliGemmaConfig): number {
  const t = cfg.text;
  return t.numLayers * 3 * t.hiddenSize * t.intermediateSize;
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
    console.log(JSON.stringify(await measureModel(path, values.child as Precision, threads)));
    return;
  }
  const dir = await openModelDir(path);
  const cfg = dir.config;
  const dtypes = values.dtypes!.split(",").filter((d) =>
    fs.existsSync(
      join(path, "onnx", `decoder_model_merged${PRECISION_SUFFIX[d as Precision]}.onnx`),
    )
  ) as Precision[];
  const cpu = os.cpus()[0]?.model;
  console.log(`# ONNX benchmark ${new Date().toISOString()}`);
  console.log(`machine: ${cpu}, ${navigator.hardwareConcurrency} cores; model ${path}`);
  console.log(`load average before: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`read bandwidth (2 threads) at start: ${(await readBandwidth(2)).toFixed(1)} GB/s`);

  const rows: string[] = [];
  for (const dtype of dtypes) {
    const layouts = SHIPPED[dtype];
    // The GEMM rate of each group's op at M=256, just before the child.
    const rates = await gemmRates(layouts);
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
      stderr: "piped",
    }).output();
    if (!child.success) {
      console.log(
        `\n## ${dtype}: child failed\n${new TextDecoder().decode(child.stderr).slice(-2000)}`,
      );
      continue;
    }
    const text = new TextDecoder().decode(child.stdout).trim().split("\n").pop()!;
    const m = JSON.parse(text) as ModelTimes;
    const decBytes = fileBytes(
      join(path, "onnx", `decoder_model_merged${PRECISION_SUFFIX[dtype]}.onnx`),
    );
    const bw = Math.max(m.bwBefore, m.bwAfter);
    const rooflineTokS = (bw * 1e9) / decBytes;
    const aloneMs = m.aloneMedianMs;
    const visionFlops = 2 * visionParams(cfg) * cfg.numImageTokens;
    const attentionFlops = 2 * attentionParams(cfg) * m.prefillTokens;
    const mlpFlops = 2 * mlpParams(cfg) * m.prefillTokens;
    const visionRoof = (visionFlops / rates.vision) * 1000;
    const prefillRoof = (attentionFlops / rates.attention + mlpFlops / rates.mlp) * 1000;
    const ops =
      `attention ${layouts.attention.name}; MLP ${layouts.mlp.name}; head ${layouts.head.name}`;
    const gflops = (g: GemmGroup) => `${g} ${(rates[g] / 1e9).toFixed(0)} (${layouts[g].name})`;
    console.log(`\n## ${dtype}: ${JSON.stringify(m)}`);
    console.log(
      `  bandwidth ${m.bwBefore.toFixed(1)} / ${
        m.bwAfter.toFixed(1)
      } GB/s before / after decode; ` +
        `matmuls alone per token median ${aloneMs.toFixed(1)} ms, best ${
          m.aloneBestMs.toFixed(1)
        } ms (${ops}); ` +
        `GEMM M=256 GFLOP/s: ${GEMM_GROUPS.map(gflops).join(", ")}; decoder weights ${
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
        (m.pairedDecodeMs / aloneMs).toFixed(2)
      }x (${m.pairedDecodeMs.toFixed(0)} / ${aloneMs.toFixed(0)} ms) | ${
        (m.peakRssMb / 1024).toFixed(2)
      } GB (VmHWM ${(m.vmHwmMb / 1024).toFixed(2)}) |`,
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
