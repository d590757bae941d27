/**
 * WebGPU model benchmark (a script, not a test) for a session that has a GPU: loads a model on
 * the WebGPU backend, then per run times the vision tower, the prefill of 266 tokens (256 image
 * + `<bos>` + 8 prompt tokens + "\n", benchInput) and `--tokens` greedy decode steps, and reports
 * vision ms, prefill tokens/s, decode tokens/s and the decode's achieved weight bandwidth (stored
 * weight bytes × tokens/s: every matrix is read once per step, so this is a lower bound of the
 * bytes moved). Then it runs the attention group of tests/bench/webgpu_kernels.ts at full-size
 * shapes (`--scale`) for the attention kernel's achieved bandwidth and FLOP rate.
 *
 *   deno run -A tests/bench/webgpu.ts [MODEL] [--dtype q4] [--tokens 64] [--runs 3] [--scale 4]
 *
 * MODEL: an HF folder or big_vision `.npz` (read as stored: the synthetic bf16 PG1 3B 224 of
 * tests/bench/synthetic.ts goes to the device as f16; default
 * /root/.cache/pg/synthetic/pg1-3b-224-bf16-hf), or a converted folder with `--dtype`
 * (e.g. `pg convert ... --dtype q4` for the q4 figures). HF transformers (eager / sdpa, bf16, same
 * GPU) is measured beside it with tests/reference tooling, not here. On a software adapter
 * (llvmpipe) every line says its figures are NOT GPU figures.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import type { KvCache, TokenPick } from "../../lib/backend/backend.ts";
import { openCheckpointModel } from "../../lib/backend/model_source.ts";
import { openModelDir, pickPrecision } from "../../lib/backend/model_dir.ts";
import { openOnnxWeights } from "../../lib/backend/onnx_weights.ts";
import { WebGpuBackend } from "../../lib/backend/webgpu.ts";
import { cacheSourceFormat } from "../../lib/convert/cache_key.ts";
import type { Precision } from "../../lib/model/precision.ts";
import { isSoftwareAdapter } from "../../lib/webgpu/variants.ts";
import { benchInput } from "./bench_input.ts";

const DEFAULT_MODEL = join(
  Deno.env.get("PG_SYNTHETIC_DIR") ?? "/root/.cache/pg/synthetic",
  "pg1-3b-224-bf16-hf",
);

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string" },
    tokens: { type: "string", default: "64" },
    runs: { type: "string", default: "3" },
    scale: { type: "string", default: "4" },
  },
});
const model = positionals[0] ?? DEFAULT_MODEL;
const tokens = Number(values.tokens);
const runs = Number(values.runs);
let logLine = "";
const log = (line: string) => {
  logLine = line;
  console.error(line);
};

async function load(): Promise<WebGpuBackend> {
  if (cacheSourceFormat(model) === undefined) {
    const dir = await openModelDir(model);
    const dtype = pickPrecision(dir, values.dtype as Precision | undefined);
    return await WebGpuBackend.load(openOnnxWeights(dir, dtype), { log, stored: dtype });
  }
  const ck = await openCheckpointModel(model);
  try {
    return await WebGpuBackend.load(ck.source, { log });
  } finally {
    ck.close();
  }
}

const t0 = performance.now();
const be = await load();
const loadMs = performance.now() - t0;
const soft = isSoftwareAdapter(be.gpu);
const weightBytes = be.weightBytes;
const tag = soft ? " [llvmpipe: software adapter, NOT GPU figures]" : "";
const { pixels, ids } = benchInput(be.config);
const n = ids.length;
const greedy: TokenPick = { sampling: { temperature: 0, topK: 0, topP: 1 } };
const median = (a: number[]) => a.toSorted((x, y) => x - y)[Math.floor(a.length / 2)];
const vision: number[] = [];
const prefill: number[] = [];
const decode: number[] = [];
for (let run = 0; run <= runs; run++) {
  const a = performance.now();
  const feats = await be.encodeImages(pixels, 1);
  const b = performance.now();
  let out = await be.prefill({
    batchSize: 1,
    length: n,
    inputIds: ids,
    attentionMask: new Int32Array(n).fill(1),
    positionIds: Int32Array.from({ length: n }, (_, i) => i + 1),
    image: feats,
    reserve: tokens,
  }, greedy);
  const c = performance.now();
  let cache: KvCache = out.cache;
  for (let s = 0; s < tokens; s++) {
    out = await be.decode({
      cache,
      tokens: out.tokens,
      positionIds: Int32Array.of(n + 1 + s),
      attentionMask: new Int32Array(n + 1 + s).fill(1),
    }, greedy);
    cache = out.cache;
  }
  const d = performance.now();
  if (run === 0) continue; // warm-up: shader compiles
  vision.push(b - a);
  prefill.push(c - b);
  decode.push(d - c);
}
await be.release();
const decodeTps = tokens / (median(decode) / 1000);
console.log(`model ${model}${values.dtype ? ` (${values.dtype})` : ""}${tag}`);
console.log(`  ${logLine}`);
console.log(`  load ${(loadMs / 1000).toFixed(1)} s; median of ${runs} runs:${tag}`);
console.log(`  vision ${median(vision).toFixed(1)} ms${tag}`);
console.log(
  `  prefill ${n} tokens ${median(prefill).toFixed(1)} ms = ` +
    `${(n / (median(prefill) / 1000)).toFixed(0)} tokens/s (target < 100 ms)${tag}`,
);
console.log(
  `  decode ${tokens} tokens ${decodeTps.toFixed(1)} tokens/s; weights ` +
    `${(weightBytes / 1e9).toFixed(3)} GB → ${((weightBytes * decodeTps) / 1e9).toFixed(1)} GB/s ` +
    `of weight reads (the issue's target: at least 25 % of the GPU's memory bandwidth)${tag}`,
);

// The attention kernel's achieved bandwidth and FLOP rate, in a child (its own device).
const kernels = new URL("./webgpu_kernels.ts", import.meta.url).pathname;
const child = await new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-read", kernels, "--only", "attention", "--scale", String(values.scale)],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!child.success) console.error(`webgpu_kernels.ts attention exited ${child.code}`);
