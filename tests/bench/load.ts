/**
 * Load-time benchmark (a script, not a test) on a converted full-size model folder: where `pg`'s
 * model load goes. Each case runs in a fresh process (so every session starts cold in memory; the
 * page cache is warmed by a first read of every file):
 *
 * - `read`: reading the precision's graph files (.onnx + external data) in 64 MiB pieces, the
 *   floor a load cannot beat;
 * - `tokenizer`: `loadTokenizer` on the folder's tokenizer;
 * - `session:<graph>:<level>`: one `InferenceSession.create` of one graph with the backend's
 *   options at graph optimisation level `level` (all, extended, basic, disabled), with its ORT
 *   profile's `model_loading_uri` and `session_initialization` split;
 * - `backend`: `OnnxBackend.load` (what `pg` runs), then one warm-up and one timed vision +
 *   prefill of 266 tokens (TTFT) and `--steps` greedy decode steps;
 * - `loadModel`: cli/model_args.ts `loadModel` (folder, tokenizer and backend) end to end;
 * - `transformersjs`: transformers.js's AutoProcessor + PaliGemmaForConditionalGeneration on the
 *   same folder and dtype.
 *
 * Several MODEL_DIRs are measured case by case in turn (before / after in one run).
 *
 *   deno run -A tests/bench/load.ts MODEL_DIR... [--dtype q8] [--cases read,tokenizer,...]
 *     [--threads 2] [--steps 32] [--repeat 1]
 * @module
 */

import { benchInput } from "./bench_input.ts";
import { parseArgs } from "node:util";
import os from "node:os";
import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { AutoProcessor, env, PaliGemmaForConditionalGeneration } from "@huggingface/transformers";
import * as ort from "onnxruntime-node";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { type GraphName, GRAPHS, openModelDir } from "../../lib/backend/model_dir.ts";
import type { Precision } from "../../lib/model/precision.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import { loadModel, parseModelArgs } from "../../cli/model_args.ts";
import { graphFiles, readFiles } from "../../cli/page_cache.ts";

/** One child's figures: a name → milliseconds (or another number) map. */
type Figures = Record<string, number>;

function suffix(dtype: Precision): string {
  return { fp32: "", fp16: "_fp16", q8: "_quantized", q4: "_q4" }[dtype];
}

/** The backend's session options (lib/backend/onnx.ts) at one optimisation level. */
function sessionOptions(
  graph: GraphName,
  level: string,
  threads: number,
): ort.InferenceSession.SessionOptions {
  const single = graph === "embed_tokens";
  return {
    executionProviders: ["cpu"],
    logSeverityLevel: 4,
    graphOptimizationLevel: level as ort.InferenceSession.SessionOptions["graphOptimizationLevel"],
    executionMode: "sequential",
    interOpNumThreads: 1,
    intraOpNumThreads: single ? 1 : threads,
    ...(single ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
  };
}

/** Sums the durations (ms) of the ORT profile's events by name. */
function profileSplit(path: string): Figures {
  const events = JSON.parse(fs.readFileSync(path, "utf8")) as { name: string; dur: number }[];
  const out: Figures = {};
  for (const e of events) {
    if (e.name === "model_loading_uri" || e.name === "session_initialization") {
      out[e.name] = (out[e.name] ?? 0) + e.dur / 1000;
    }
  }
  fs.rmSync(path);
  return out;
}

async function session(dir: string, dtype: Precision, spec: string, threads: number) {
  const [, graph, level, entries] = spec.split(":");
  const path = join(dir, "onnx", `${graph}${suffix(dtype)}.onnx`);
  const prefix = join(os.tmpdir(), `pg-load-${Deno.pid}`);
  const base = sessionOptions(graph as GraphName, level, threads);
  // Extra session config entries, "key=value+key=value" (keys without the "session." prefix).
  const config = Object.fromEntries(
    (entries ?? "").split("+").filter((e) => e).map((e) => e.split("=")),
  );
  const opts = {
    ...base,
    extra: { session: { ...(base.extra as { session?: object } | undefined)?.session, ...config } },
    enableProfiling: true,
    profileFilePrefix: prefix,
  };
  const t = performance.now();
  const s = await ort.InferenceSession.create(path, opts);
  const ms = performance.now() - t;
  s.endProfiling();
  const file = fs.readdirSync(os.tmpdir()).find((f) => f.startsWith(`pg-load-${Deno.pid}`));
  const split = file ? profileSplit(join(os.tmpdir(), file)) : {};
  await s.release();
  return { ms, ...split };
}

/** Where the `optimize:` cases write their optimised graphs (env PG_OPT_DIR). */
const OPT_DIR = Deno.env.get("PG_OPT_DIR") ?? "/root/pg-bench/opt";

/**
 * `optimize:<graph>:<level>[:prepacked]`: writes ORT's optimised graph (external data beside it)
 * to OPT_DIR; `optimized:<graph>` loads that file with optimisation off.
 */
async function optimize(dir: string, dtype: Precision, spec: string, threads: number) {
  const [kind, graph, level, prepacked] = spec.split(":");
  const name = `${graph}${suffix(dtype)}.onnx`;
  const out = join(OPT_DIR, name);
  const base = sessionOptions(
    graph as GraphName,
    kind === "optimized" ? "disabled" : level,
    threads,
  );
  const opts: ort.InferenceSession.SessionOptions = kind === "optimized" ? base : {
    ...base,
    optimizedModelFilePath: out,
    extra: {
      session: {
        ...(base.extra as { session?: object } | undefined)?.session,
        optimized_model_external_initializers_file_name: `${name}_data`,
        optimized_model_external_initializers_min_size_in_bytes: "1024",
        ...(prepacked ? { save_external_prepacked_constant_initializers: "1" } : {}),
      },
    },
  };
  fs.mkdirSync(OPT_DIR, { recursive: true });
  const t = performance.now();
  const s = await ort.InferenceSession.create(
    kind === "optimized" ? out : join(dir, "onnx", name),
    opts,
  );
  const ms = performance.now() - t;
  await s.release();
  return { ms };
}

async function backend(dir: string, dtype: Precision, threads: number, steps: number) {
  const model = await openModelDir(dir);
  let t = performance.now();
  const be = await OnnxBackend.load(model, { dtype, threads });
  const loadMs = performance.now() - t;
  const cfg = model.config;
  const { pixels, ids } = benchInput(cfg);
  const n = ids.length;
  const ttft = async () => {
    const t0 = performance.now();
    const image = await be.encodeImages(pixels, 1);
    const out = await be.prefillLogits({
      batchSize: 1,
      length: n,
      inputIds: ids,
      attentionMask: new Int32Array(n).fill(1),
      positionIds: Int32Array.from({ length: n }, (_, i) => i + 1),
      image,
      logitsToKeep: 1,
    });
    return { ms: performance.now() - t0, out };
  };
  t = performance.now();
  await ttft();
  const firstRunMs = performance.now() - t;
  const timed = await ttft();
  let { cache, logits } = timed.out;
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    let best = 0;
    for (let j = 1; j < be.vocabSize; j++) if (logits[j] > logits[best]) best = j;
    const t0 = performance.now();
    const r = await be.decodeLogits({
      cache,
      tokens: Int32Array.of(best),
      positionIds: Int32Array.of(n + i + 1),
      attentionMask: new Int32Array(cache.length + 1).fill(1),
    });
    times.push(performance.now() - t0);
    cache = r.cache;
    logits = r.logits;
  }
  await be.release();
  const median = times.toSorted((a, b) => a - b)[times.length >> 1];
  return { loadMs, firstRunMs, ttftMs: timed.ms, decodeMedianMs: median };
}

async function child(dir: string, dtype: Precision, spec: string, threads: number, steps: number) {
  if (spec === "read") return await readFiles(graphFiles(await openModelDir(dir), dtype));
  if (spec === "tokenizer") {
    const model = await openModelDir(dir);
    const t = performance.now();
    await loadTokenizer(model.tokenizer);
    return { ms: performance.now() - t };
  }
  if (spec.startsWith("session:")) return await session(dir, dtype, spec, threads);
  if (spec.startsWith("optimize")) return await optimize(dir, dtype, spec, threads);
  if (spec === "backend") return await backend(dir, dtype, threads, steps);
  if (spec === "loadModel") {
    const args = parseModelArgs("bench", { model: dir, dtype, threads: String(threads) });
    const t = performance.now();
    const m = await loadModel(args);
    const ms = performance.now() - t;
    await m.backend.release();
    return { ms, loadMs: m.loadMs, ...m.phases };
  }
  if (spec === "transformersjs") {
    // transformers.js 4 on the same folder: processor (tokenizer) and the three sessions.
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dirname(dir);
    const t = performance.now();
    await AutoProcessor.from_pretrained(basename(dir), { local_files_only: true });
    const m = await PaliGemmaForConditionalGeneration.from_pretrained(basename(dir), {
      dtype,
      device: "cpu",
      local_files_only: true,
    });
    const ms = performance.now() - t;
    await m.dispose();
    return { ms };
  }
  throw new Error(`unknown case ${spec}`);
}

async function main() {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      child: { type: "string" },
      dtype: { type: "string", default: "q8" },
      cases: { type: "string" },
      threads: { type: "string", default: "2" },
      steps: { type: "string", default: "32" },
      repeat: { type: "string", default: "1" },
    },
  });
  const dir = positionals[0];
  if (!dir) throw new Error("usage: load.ts MODEL_DIR [--dtype q8] [--cases ...]");
  const dtype = values.dtype as Precision;
  const threads = Number(values.threads);
  const steps = Number(values.steps);
  if (values.child) {
    console.log(JSON.stringify(await child(dir, dtype, values.child, threads, steps)));
    return;
  }
  const cases = values.cases?.split(",") ?? [
    "read",
    "tokenizer",
    ...GRAPHS.flatMap((g) => [`session:${g}:all`, `session:${g}:disabled`]),
    "backend",
    "loadModel",
  ];
  console.log(`# load benchmark ${new Date().toISOString()}`);
  console.log(
    `machine: ${os.cpus()[0]?.model}, ${navigator.hardwareConcurrency} cores, ` +
      `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; models ${positionals.join(", ")} (${dtype}), ` +
      `${threads} threads`,
  );
  console.log(`load average before: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  // Several folders (e.g. before and after a convert change) are measured case by case in turn,
  // so that both see the same stretch of this shared machine.
  for (const d of positionals) await readFiles(graphFiles(await openModelDir(d), dtype)); // warm the page cache
  for (let r = 0; r < Number(values.repeat); r++) {
    for (const c of cases) {
      for (const d of positionals) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", import.meta.filename!, d, "--child", c, ...childFlags(values)],
          stderr: "inherit",
        }).output();
        const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
        const figures = out.success ? JSON.parse(text) as Figures : { failed: out.code };
        const shown = Object.entries(figures).map(([k, v]) =>
          `${k} ${k === "bytes" ? (v / 1e9).toFixed(2) + " GB" : v.toFixed(0)}`
        );
        console.log(`| ${c} | ${d} | ${shown.join(", ")} | ${new Date().toISOString()} |`);
      }
    }
  }
  console.log(`load average after: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

function childFlags(v: Record<string, unknown>): string[] {
  return ["dtype", "threads", "steps"].flatMap((k) => [`--${k}`, String(v[k])]);
}

if (import.meta.main) await main();
