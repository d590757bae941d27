/**
 * Flags and model loading shared by the commands that run a model (caption, answer, and later
 * detect and segment).
 * @module
 */

import * as fs from "node:fs";
import type { Backend } from "../lib/backend/backend.ts";
import { type ModelInfo, openModelDir, pickPrecision } from "../lib/backend/model_dir.ts";
import { openOnnxWeights } from "../lib/backend/onnx_weights.ts";
import { openCheckpointModel } from "../lib/backend/model_source.ts";
import { WebGpuBackend } from "../lib/backend/webgpu.ts";
import { type Precision, PRECISIONS } from "../lib/model/precision.ts";
import { OnnxBackend } from "../lib/backend/onnx.ts";
import { modelFromCache } from "../lib/convert/cache.ts";
import { cacheFolder } from "../lib/convert/cache_entries.ts";
import { cacheSourceFormat } from "../lib/convert/cache_key.ts";
import { UsageError } from "../lib/errors.ts";
import { DEFAULT_MAX_PIXELS } from "../lib/image/load.ts";
import type { SamplingOptions } from "../lib/generate/sampling.ts";
import { loadTokenizer } from "../lib/tokenizer/load.ts";
import type { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { type FlagSpec, type FlagValues, intFlag, stringFlag } from "./command.ts";
import { parseServerUrl, SERVER_ENV } from "./server_url.ts";

/** Environment variable read when `--model` is not given. */
export const MODEL_ENV = "PALIGEMMA_MODEL";

/** `--threads` may be at most this many times the cores (more only slows ONNX Runtime down). */
export const MAX_THREADS_PER_CORE = 4;

/** Default of `--max-tokens`. */
export const DEFAULT_MAX_TOKENS = 64;

/** The backends `--backend` names. */
export const BACKENDS = ["onnx", "webgpu"] as const;

/** One of `BACKENDS`. */
export type BackendName = typeof BACKENDS[number];

/** node:util parseArgs options of the model flags. */
export const MODEL_FLAG_SPEC: FlagSpec = {
  model: { type: "string" },
  tokenizer: { type: "string" },
  config: { type: "string" },
  dtype: { type: "string" },
  backend: { type: "string" },
  threads: { type: "string" },
  "max-tokens": { type: "string" },
  "batch-size": { type: "string" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  seed: { type: "string" },
  "max-pixels": { type: "string" },
  json: { type: "boolean" },
  server: { type: "string" },
};

/** Help lines of the model flags. */
export const MODEL_FLAGS_HELP =
  `  --model MODEL        converted ONNX model folder (see 'pg convert'), or a checkpoint: an HF
                       folder (safetensors) or a big_vision .npz, converted into the model
                       cache on first use and reused after (see 'pg cache'); or set ${MODEL_ENV}
  --dtype NAME         fp32, fp16, q8 or q4: which converted graphs to load (default: the most
                       accurate one present); for a checkpoint, the precision to convert it to
                       (default fp32; each precision is its own cache entry)
  --tokenizer FILE     tokenizer.model for a checkpoint --model (needed for a big_vision .npz)
  --config FILE        config.json whose values replace a checkpoint --model's (see 'pg convert')
  --backend NAME       onnx (default: ONNX Runtime on the CPU) or webgpu (our WGSL kernels on
                       the GPU through WebGPU; reads an HF folder or a big_vision .npz as it
                       is, no conversion; see README 'WebGPU backend')
  --threads N          ONNX Runtime intra-op threads (default: one per core; at most
                       ${MAX_THREADS_PER_CORE} per core)
  --max-tokens N       stop after N generated tokens (default ${DEFAULT_MAX_TOKENS}); past the
                       model's context generation stops there with stop "context"
  --batch-size N       images per batch, left-padded (default 1)
  --temperature T      sample with temperature T (default 0: greedy)
  --top-k K            sample among the K most likely tokens (implies --temperature 1)
  --top-p P            sample from the smallest set reaching probability P (implies
                       --temperature 1)
  --seed N             seed for sampling (default 0); each image has its own stream
  --max-pixels N       refuse images of more than N pixels (default ${DEFAULT_MAX_PIXELS}),
                       checked from the header before decoding
  --json               one JSON object per image per line on stdout (NDJSON): image, prompt,
                       text (exact), tokens, stop (eos, max_tokens, context), timings_ms
                       {load, preprocess, vision, prefill, decode, total}; logs go to stderr.
                       Plain output is one line per image: newlines, tabs and backslashes in
                       the text are written as \\n, \\t and \\\\`;

/** The model flags, parsed and checked. */
export interface ModelArgs {
  /** The command, for the lines it writes on stderr. */
  readonly command: string;
  /** Model folder, or a checkpoint to convert into the cache. */
  readonly model: string;
  /** tokenizer.model for a checkpoint `model`. */
  readonly tokenizer?: string;
  /** config.json for a checkpoint `model`. */
  readonly config?: string;
  /** Backend to run on. */
  readonly backend: BackendName;
  /** Precision asked for, or undefined for the best present. */
  readonly dtype?: Precision;
  /** Intra-op threads, or undefined for ORT's default. */
  readonly threads?: number;
  /** Most new tokens per image. */
  readonly maxTokens: number;
  /** Images per batch. */
  readonly batchSize: number;
  /** Token choice. */
  readonly sampling: SamplingOptions;
  /** Sampling seed. */
  readonly seed: number;
  /** NDJSON output. */
  readonly json: boolean;
  /** Images with more pixels than this are refused. */
  readonly maxPixels: number;
  /** `--server` (or PG_SERVER): the model runs in that `pg serve`. */
  readonly server?: string;
}

/** Reads a finite number flag within [min, max] (or (min, max] when `minExclusive`), else `fallback`. */
export function numberFlag(
  values: FlagValues,
  name: string,
  fallback: number,
  min: number,
  max: number,
  minExclusive = false,
): number {
  const s = stringFlag(values, name);
  if (s === undefined) return fallback;
  const n = Number(s);
  const low = minExclusive ? n <= min : n < min;
  if (s.trim() === "" || !Number.isFinite(n) || low || n > max) {
    const range = minExclusive ? `greater than ${min} and at most ${max}` : `from ${min} to ${max}`;
    throw new UsageError(`--${name} expects a number ${range}, got '${s}'`);
  }
  return n;
}

/** Parses and checks the model flags of `command`. */
export function parseModelArgs(command: string, values: FlagValues): ModelArgs {
  const model = stringFlag(values, "model") ?? Deno.env.get(MODEL_ENV);
  if (model === undefined || model === "") {
    throw new UsageError(`${command}: --model DIR is required (or set ${MODEL_ENV})`);
  }
  const backend = stringFlag(values, "backend") ?? "onnx";
  const tokenizer = stringFlag(values, "tokenizer");
  if (/\.npz$/i.test(model) && tokenizer === undefined) {
    throw new UsageError(
      `${command}: ${model} is a big_vision checkpoint, which carries no tokenizer: pass ` +
        "--tokenizer tokenizer.model",
    );
  }
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(`--backend expects ${BACKENDS.join(" or ")}, got '${backend}'`);
  }
  const dtype = stringFlag(values, "dtype");
  if (dtype !== undefined && !(PRECISIONS as readonly string[]).includes(dtype)) {
    throw new UsageError(`--dtype expects ${PRECISIONS.join(", ")}, got '${dtype}'`);
  }
  const cores = navigator.hardwareConcurrency || 1;
  const threads = stringFlag(values, "threads") === undefined
    ? undefined
    : intFlag(values, "threads", 1, 1, MAX_THREADS_PER_CORE * cores);
  const topK = intFlag(values, "top-k", 0, 0);
  const topP = numberFlag(values, "top-p", 1, 0, 1, true);
  const filtering = values["top-k"] !== undefined || values["top-p"] !== undefined;
  const temperature = numberFlag(values, "temperature", filtering ? 1 : 0, 0, 1e6);
  return {
    command,
    model,
    backend: backend as BackendName,
    tokenizer,
    config: stringFlag(values, "config"),
    dtype: dtype as Precision | undefined,
    threads,
    maxTokens: intFlag(values, "max-tokens", DEFAULT_MAX_TOKENS, 1, 1 << 20),
    batchSize: intFlag(values, "batch-size", 1, 1, 4096),
    sampling: { temperature, topK, topP },
    seed: intFlag(values, "seed", 0, 0),
    json: values.json === true,
    maxPixels: intFlag(values, "max-pixels", DEFAULT_MAX_PIXELS, 1),
    server: serverFlag(values),
  };
}

/** `--server`, else a non-empty PG_SERVER, checked; undefined to run here. */
function serverFlag(values: FlagValues): string | undefined {
  const flag = stringFlag(values, "server");
  const env = Deno.env.get(SERVER_ENV);
  const server = flag ?? (env === "" ? undefined : env);
  if (server !== undefined) parseServerUrl(server, flag !== undefined ? "--server" : SERVER_ENV);
  return server;
}

/** A loaded model and its tokenizer. */
export interface LoadedModel {
  /** The model's facts (config, pre-processing, stop ids, tokenizer path). */
  readonly dir: ModelInfo;
  /** The backend over it. */
  readonly backend: Backend;
  /** Its tokenizer. */
  readonly tokenizer: Tokenizer;
  /** Milliseconds spent loading. */
  readonly loadMs: number;
  /**
   * Milliseconds from the start of the load until each part was ready: `tokenizer`, and per graph
   * for the ONNX backend (they overlap: the parts load at the same time).
   */
  readonly phases?: Readonly<Record<string, number>>;
}

/**
 * The model folder `args.model` means: itself, or for a checkpoint its model cache entry,
 * converted now on first use (progress on stderr).
 */
export async function modelFolder(args: ModelArgs): Promise<string> {
  if (cacheSourceFormat(args.model) === undefined) {
    const flag = args.tokenizer !== undefined ? "--tokenizer" : "--config";
    const extra = args.tokenizer !== undefined || args.config !== undefined;
    if (extra && fs.existsSync(args.model)) {
      throw new UsageError(
        `${args.command}: ${flag} applies only when --model is a checkpoint (an HF folder or ` +
          `a big_vision .npz), and ${args.model} is not one`,
      );
    }
    return args.model;
  }
  const cached = await modelFromCache({
    root: cacheFolder((name) => Deno.env.get(name)),
    source: args.model,
    precision: args.dtype ?? "fp32",
    tokenizerModel: args.tokenizer,
    configFile: args.config,
    log: (line) => console.error(`${args.command}: ${line}`),
    onAssumed: () =>
      console.error(
        `${args.command}: warning: ${args.model} does not store the query scale or soft-caps; ` +
          "assuming the published PaliGemma 2 values; pass --config config.json to set them",
      ),
  });
  return cached.path;
}

/**
 * Opens the model and its tokenizer on the backend `--backend` names. ONNX: the model folder
 * (converting a checkpoint into the cache first, see `modelFolder`). WebGPU: an HF folder or a
 * big_vision `.npz` read as it is; a converted folder is refused (its weights are ONNX graphs).
 */
export async function loadModel(args: ModelArgs): Promise<LoadedModel> {
  if (args.backend === "webgpu") return await loadWebGpu(args);
  const folder = await modelFolder(args);
  const t = performance.now();
  const dir = await openModelDir(folder);
  // The backend starts its worker sessions first; the tokenizer is built meanwhile.
  const loading = OnnxBackend.load(dir, {
    dtype: args.dtype,
    threads: args.threads,
    verbose: Deno.env.get("PG_DEBUG") === "1",
  });
  let tokenizerMs = 0;
  const [tokenizer, backend] = await Promise.allSettled([
    loadTokenizer(dir.tokenizer).then((tok) => {
      tokenizerMs = performance.now() - t;
      return tok;
    }),
    loading,
  ]);
  if (tokenizer.status === "rejected") {
    if (backend.status === "fulfilled") await backend.value.release();
    throw tokenizer.reason;
  }
  if (backend.status === "rejected") throw backend.reason;
  const be = backend.value;
  const phases = {
    tokenizer: tokenizerMs,
    ...(be instanceof OnnxBackend ? be.loadPhases : {}),
  };
  return { dir, backend: be, tokenizer: tokenizer.value, loadMs: performance.now() - t, phases };
}

/**
 * The WebGPU backend over a checkpoint read directly, or over a converted folder's weights read
 * back from its graphs (lib/backend/onnx_weights.ts).
 */
async function loadWebGpu(args: ModelArgs): Promise<LoadedModel> {
  const log = (line: string) => console.error(`${args.command}: ${line}`);
  if (cacheSourceFormat(args.model) === undefined) {
    await modelFolder(args); // refuses --tokenizer and --config with a folder
    const t = performance.now();
    const dir = await openModelDir(args.model);
    const dtype = pickPrecision(dir, args.dtype);
    const tokenizer = await loadTokenizer(dir.tokenizer);
    const backend = await WebGpuBackend.load(openOnnxWeights(dir, dtype), { log, stored: dtype });
    return { dir, backend, tokenizer, loadMs: performance.now() - t };
  }
  if (args.dtype !== undefined && args.dtype !== "fp32") {
    throw new UsageError(
      `--backend webgpu keeps a checkpoint's weights in their stored precision; --dtype ${args.dtype} applies to ` +
        "a converted folder (pg convert --dtype)",
    );
  }
  const t = performance.now();
  const ck = await openCheckpointModel(args.model, {
    tokenizer: args.tokenizer,
    configFile: args.config,
    onAssumed: () =>
      console.error(
        `${args.command}: warning: ${args.model} does not store the query scale or soft-caps; ` +
          "assuming the published PaliGemma 2 values; pass --config config.json to set them",
      ),
  });
  try {
    const tokenizer = await loadTokenizer(ck.info.tokenizer);
    const backend = await WebGpuBackend.load(ck.source, { log });
    return { dir: ck.info, backend, tokenizer, loadMs: performance.now() - t };
  } finally {
    ck.close();
  }
}
