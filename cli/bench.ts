/**
 * `bench`: load a converted model once, then time the whole image → tokens path a few times
 * through the same pipeline `caption` uses (greedy, no stop at `<eos>`), and report load time,
 * vision encoder, prefill, time to first token, decode speed and peak memory.
 * @module
 */

import process from "node:process";
import { join } from "node:path";
import sharp from "sharp";
import { openModelDir, pickPrecision } from "../lib/backend/model_dir.ts";
import { isFailure, runJobs } from "../lib/generate/pipeline.ts";
import { UsageError } from "../lib/errors.ts";
import { buildPrompt } from "../lib/prompt/build.ts";
import { captionPrefix } from "../lib/prompt/tasks.ts";
import { type Command, intFlag, parseFlags, stringFlag } from "./command.ts";
import {
  type LoadedModel,
  loadModel,
  MODEL_ENV,
  MODEL_FLAG_SPEC,
  type ModelArgs,
  modelFolder,
  parseModelArgs,
} from "./model_args.ts";
import { evictFromPageCache, modelFiles, readFiles } from "./page_cache.ts";
import { writeOut } from "./stdout.ts";

/** Default of `--tokens`. */
const DEFAULT_TOKENS = 64;
/** Default of `--runs`. */
const DEFAULT_RUNS = 3;

const HELP = `Usage: pg bench [DIR] [--model DIR] [options]

Loads a converted model (or a checkpoint, converted into the model cache on first use; see
'pg cache') once, then runs image → first token → --tokens tokens (greedy, no stop at <eos>)
--runs times after --warmup untimed runs, and reports the median, min and max of each
stage: preprocess (image load and resize), vision (encoder), prefill, time to first token
(preprocess + vision + prefill), decode time and decode tokens/s (tokens after the first), plus
load time (cold and warm, beside the time to just read the files the load reads) and the
process's peak resident memory. Progress goes to stderr.

Options:
  DIR, --model DIR     converted ONNX model folder, or an HF folder or big_vision .npz to run
                       from the cache (or set ${MODEL_ENV}; DIR and --model win over it;
                       give one of the two)
  --dtype NAME         fp32, fp16, q8 or q4 (default: the most accurate one present; for a
                       checkpoint, the precision to convert it to, default fp32)
  --tokenizer FILE     tokenizer.model for a checkpoint (needed for a big_vision .npz)
  --config FILE        config.json whose values replace a checkpoint's (see 'pg convert')
  --backend NAME       onnx (default) or webgpu (an HF folder or .npz read as it is; see README)
  --threads N          ONNX Runtime intra-op threads (default: one per core)
  --image FILE         image to encode (default: a generated grey test image)
  --prompt TEXT        prompt (default 'caption en')
  --tokens N           tokens generated per run, at least 2 (default ${DEFAULT_TOKENS})
  --runs N             timed runs (default ${DEFAULT_RUNS})
  --warmup N           untimed runs first (default 1)
  --loads N            load the model N times (released in between; default 1) and report the
                       median of the warm loads (every load after the first, or the only one)
  --cold               drop the model's files from the page cache first (posix_fadvise, no root
                       needed; Linux) and report the first load as the cold load, the time to
                       read the files cold and warm beside it; with --loads 1 a second (warm)
                       load is made anyway
  --json               one JSON object on stdout instead of the table

Examples:
  pg bench ~/models/pg2-224 --dtype q8
  pg bench ~/models/paligemma2-3b-mix-224 --dtype q8
  pg bench --model ~/models/pg2-224 --tokens 128 --runs 5 --json >> bench.ndjson
  pg bench ~/models/pg2-224 --dtype q4 --cold --loads 3`;

/** Milliseconds of one timed run. */
interface RunTimes {
  readonly preprocess: number;
  readonly vision: number;
  readonly prefill: number;
  readonly ttft: number;
  readonly decode: number;
  readonly decodeTokensPerS: number;
}

const STAGES: readonly (keyof RunTimes)[] = [
  "preprocess",
  "vision",
  "prefill",
  "ttft",
  "decode",
  "decodeTokensPerS",
];

/** Peak resident memory of this process in bytes: getrusage's high-water mark, or the sampled one. */
function peakRss(sampled: number): number {
  const maxRssKb = process.resourceUsage?.().maxRSS ?? 0;
  return Math.max(maxRssKb * 1024, sampled);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const round = (x: number, places = 2) => Math.round(x * 10 ** places) / 10 ** places;

/** Writes a plain grey square PNG of `size` pixels into `dir` and returns its path. */
async function greyImage(dir: string, size: number): Promise<string> {
  const path = join(dir, "bench.png");
  await sharp({
    create: { width: size, height: size, channels: 3, background: { r: 128, g: 128, b: 128 } },
  }).png().toFile(path);
  return path;
}

/** Loads of one bench: each load's milliseconds (the first cold with --cold), the last model. */
interface LoadTimes {
  readonly loadMs: number[];
  readonly read: { bytes: number; coldMs: number | null; warmMs: number };
  readonly model: LoadedModel;
}

/**
 * Reads the files the load reads (cold first with `cold`: dropped from the page cache), then loads
 * the model `loads` times (the first after dropping the files again with `cold`), releasing every
 * model but the last.
 */
async function timeLoads(
  folder: string,
  opts: ModelArgs,
  loads: number,
  cold: boolean,
): Promise<LoadTimes> {
  const dir = await openModelDir(folder);
  const files = modelFiles(dir, pickPrecision(dir, opts.dtype));
  let coldMs: number | null = null;
  if (cold) {
    evictFromPageCache(files);
    coldMs = (await readFiles(files)).ms;
  }
  const warm = await readFiles(files);
  console.error(
    `bench: reading the ${files.length} files the load reads (${
      (warm.bytes / 1e9).toFixed(2)
    } GB): ` +
      (coldMs === null ? "" : `${coldMs.toFixed(0)} ms cold, `) + `${warm.ms.toFixed(0)} ms warm`,
  );
  if (cold) evictFromPageCache(files);
  const loadMs: number[] = [];
  let model: LoadedModel | undefined;
  for (let i = 0; i < loads; i++) {
    if (model !== undefined) await model.backend.release();
    console.error(`bench: loading ${opts.model}${cold && i === 0 ? " (cold)" : ""}`);
    model = await loadModel({ ...opts, model: folder, tokenizer: undefined, config: undefined });
    loadMs.push(model.loadMs);
    const phases = Object.entries(model.phases ?? {}).map(([k, v]) => `${k} ${v.toFixed(0)}`);
    console.error(
      `bench: loaded in ${model.loadMs.toFixed(0)} ms (${model.backend.name}; ready after ms: ${
        phases.join(", ")
      })`,
    );
  }
  return { loadMs, read: { bytes: warm.bytes, coldMs, warmMs: warm.ms }, model: model! };
}

/** The load lines of the human-readable report. */
function loadRows(report: Record<string, unknown>): string[] {
  const ms = (k: string) => `${(report[k] as number).toFixed(0)} ms`;
  const read = `read ${((report.read_bytes as number) / 1e9).toFixed(2)} GB`;
  const rows = [];
  if (report.load_cold_ms !== null) {
    rows.push(`load cold    ${ms("load_cold_ms")} (${read} cold: ${ms("read_cold_ms")})`);
  }
  rows.push(
    `load warm    ${ms("load_warm_ms")} (${read} warm: ${ms("read_warm_ms")}; median of ${
      (report.loads_ms as number[]).length - (report.load_cold_ms !== null ? 1 : 0)
    })`,
  );
  return rows;
}

/** The human-readable report. */
function table(report: Record<string, unknown>, runs: readonly RunTimes[]): string {
  const rows: string[] = [
    `model        ${report.model}, ${report.backend}`,
    `image        ${report.image}`,
    `prompt       ${JSON.stringify(report.prompt)}: ${report.prompt_tokens} tokens` +
    ` (${report.image_tokens} image tokens)`,
    `generated    ${report.tokens} tokens per run, ${runs.length} runs` +
    ` after ${report.warmup} warm-up`,
    ...loadRows(report),
    "",
    `${"".padEnd(18)}${"median".padStart(10)}${"min".padStart(10)}${"max".padStart(10)}`,
  ];
  const label: Record<keyof RunTimes, string> = {
    preprocess: "preprocess (ms)",
    vision: "vision (ms)",
    prefill: "prefill (ms)",
    ttft: "first token (ms)",
    decode: "decode (ms)",
    decodeTokensPerS: "decode (tok/s)",
  };
  for (const k of STAGES) {
    const xs = runs.map((r) => r[k]);
    const cells = [median(xs), Math.min(...xs), Math.max(...xs)].map((x) =>
      x.toFixed(1).padStart(10)
    );
    rows.push(`${label[k].padEnd(18)}${cells.join("")}`);
  }
  rows.push("", `peak RSS     ${(report.peak_rss_mb as number).toFixed(1)} MB`);
  return rows.join("\n") + "\n";
}

/** `bench`: measure load, vision, prefill and decode speed of a converted model. */
export const benchCommand: Command = {
  name: "bench",
  summary: "measure load, prefill and decode speed",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseFlags("bench", args, {
      model: MODEL_FLAG_SPEC.model,
      tokenizer: MODEL_FLAG_SPEC.tokenizer,
      config: MODEL_FLAG_SPEC.config,
      dtype: MODEL_FLAG_SPEC.dtype,
      backend: MODEL_FLAG_SPEC.backend,
      threads: MODEL_FLAG_SPEC.threads,
      image: { type: "string" },
      prompt: { type: "string" },
      tokens: { type: "string" },
      runs: { type: "string" },
      warmup: { type: "string" },
      loads: { type: "string" },
      cold: { type: "boolean" },
      json: { type: "boolean" },
    });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return 0;
    }
    if (positionals.length > 1) {
      throw new UsageError(
        `bench: expected at most one model folder, got ${positionals.length} arguments`,
      );
    }
    if (positionals.length === 1 && values.model !== undefined) {
      throw new UsageError("bench: give the model folder either as DIR or as --model, not both");
    }
    const opts = parseModelArgs("bench", { ...values, model: positionals[0] ?? values.model });
    const tokens = intFlag(values, "tokens", DEFAULT_TOKENS, 2, 1 << 16);
    const runs = intFlag(values, "runs", DEFAULT_RUNS, 1, 10_000);
    const warmup = intFlag(values, "warmup", 1, 0, 10_000);
    const cold = values.cold === true;
    const loads = Math.max(intFlag(values, "loads", 1, 1, 1000), cold ? 2 : 1);
    const prompt = stringFlag(values, "prompt") ?? captionPrefix("en");
    const imageFlag = stringFlag(values, "image");

    let sampled = 0;
    const sample = () => sampled = Math.max(sampled, Deno.memoryUsage().rss);
    const timer = setInterval(sample, 20);
    const tmp = imageFlag === undefined ? await Deno.makeTempDir({ prefix: "pg-bench-" }) : "";
    try {
      const folder = await modelFolder(opts);
      const timing = await timeLoads(folder, opts, loads, cold);
      const model = timing.model;
      sample();
      const cfg = model.backend.config;
      const image = imageFlag ?? await greyImage(tmp, cfg.vision.imageSize);
      const promptTokens = buildPrompt(model.tokenizer, cfg.numImageTokens, prompt).inputIds.length;
      const times: RunTimes[] = [];
      try {
        for (let i = 0; i < warmup + runs; i++) {
          const timed = i >= warmup;
          const job = [{ image, prompt }];
          const opt = {
            maxTokens: tokens,
            eosIds: [],
            maxPixels: opts.maxPixels,
            preprocess: model.dir.preprocess,
          };
          for await (const r of runJobs(model.backend, model.tokenizer, job, opt)) {
            if (isFailure(r)) throw r.error;
            const t = r.timings;
            const decodeTokensPerS = t.decode > 0 ? (r.tokens.length - 1) / (t.decode / 1000) : 0;
            const run: RunTimes = {
              ...t,
              ttft: t.preprocess + t.vision + t.prefill,
              decodeTokensPerS,
            };
            const what = timed ? `run ${i - warmup + 1}/${runs}` : `warm-up ${i + 1}/${warmup}`;
            console.error(
              `bench: ${what}: first token ${run.ttft.toFixed(1)} ms, ` +
                `${decodeTokensPerS.toFixed(1)} tokens/s`,
            );
            if (timed) times.push(run);
          }
          sample();
        }
      } finally {
        await model.backend.release();
      }
      const stat = (k: keyof RunTimes) => round(median(times.map((r) => r[k])));
      const report = {
        model: opts.model,
        backend: model.backend.name,
        dtype: model.backend.dtype,
        threads: opts.threads ?? null,
        image: imageFlag ?? `generated ${cfg.vision.imageSize}x${cfg.vision.imageSize} grey`,
        prompt,
        prompt_tokens: promptTokens,
        image_tokens: cfg.numImageTokens,
        tokens,
        runs,
        warmup,
        load_ms: round(timing.loadMs[0]),
        load_cold_ms: cold ? round(timing.loadMs[0]) : null,
        load_warm_ms: round(median(cold ? timing.loadMs.slice(1) : timing.loadMs)),
        loads_ms: timing.loadMs.map((x) => round(x)),
        load_phases_ms: Object.fromEntries(
          Object.entries(model.phases ?? {}).map(([k, v]) => [k, round(v)]),
        ),
        read_bytes: timing.read.bytes,
        read_cold_ms: timing.read.coldMs === null ? null : round(timing.read.coldMs),
        read_warm_ms: round(timing.read.warmMs),
        preprocess_ms: stat("preprocess"),
        vision_ms: stat("vision"),
        prefill_ms: stat("prefill"),
        ttft_ms: stat("ttft"),
        decode_ms: stat("decode"),
        decode_tokens_per_s: stat("decodeTokensPerS"),
        peak_rss_mb: round(peakRss(sampled) / (1 << 20), 1),
        runs_ms: times.map((r) => ({
          preprocess: round(r.preprocess),
          vision: round(r.vision),
          prefill: round(r.prefill),
          ttft: round(r.ttft),
          decode: round(r.decode),
          decode_tokens_per_s: round(r.decodeTokensPerS),
        })),
      };
      writeOut(values.json === true ? JSON.stringify(report) + "\n" : table(report, times));
    } finally {
      clearInterval(timer);
      if (tmp !== "") await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
    return 0;
  },
};
