/**
 * Image + prompt jobs through a backend, a batch at a time: load and pre-process the images,
 * build and left-pad the prompts, encode the images, generate, detokenise.
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { InputError } from "../errors.ts";
import { type PreprocessedImage, preprocessImage } from "../image/preprocess.ts";
import type { PreprocessConfig } from "../image/preprocess_config.ts";
import { batchPrompts } from "../prompt/batch.ts";
import { buildPrompt, type PromptInput } from "../prompt/build.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { generate, type StopReason } from "./generate.ts";
import { seededRng } from "./rng.ts";
import { GREEDY, isSampling, type SamplingOptions } from "./sampling.ts";

/** One image and the prompt (task prefix) to run on it. */
export interface Job {
  /** Image file path. */
  readonly image: string;
  /** Prompt text, e.g. `caption en`. */
  readonly prompt: string;
}

/** Milliseconds spent on a job; batch-wide stages report the whole batch's time. */
export interface JobTimings {
  /** Loading and resizing this image. */
  readonly preprocess: number;
  /** The vision encoder over the job's batch. */
  readonly vision: number;
  /** Prompt embedding and prefill of the job's batch (time to first token). */
  readonly prefill: number;
  /** Decode steps of the job's batch. */
  readonly decode: number;
}

/** What went wrong with one job: its image, its prompt, or turning its tokens into text. */
export type JobErrorKind = "bad_image" | "prompt_too_long" | "decode_failed";

/** A job that failed on its own; the other jobs of its batch still run. */
export interface JobFailure {
  /** Position of the job in the list given. */
  readonly index: number;
  /** The job. */
  readonly job: Job;
  /** Which step failed. */
  readonly kind: JobErrorKind;
  /** What was thrown (word it for the user with the CLI's wording). */
  readonly error: unknown;
}

/** A job's result or its failure, in the order of the jobs given. */
export type JobOutcome = JobResult | JobFailure;

/** Whether `o` is a failure. */
export function isFailure(o: JobOutcome): o is JobFailure {
  return "kind" in o;
}

/** The outcome of one job. */
export interface JobResult {
  /** Position of the job in the list given. */
  readonly index: number;
  /** The job. */
  readonly job: Job;
  /** Generated text, special tokens removed. */
  readonly text: string;
  /** Generated ids, without the end-of-sequence id. */
  readonly tokens: number[];
  /** Probability of each of `tokens` at temperature 1 (empty unless `withProbs`). */
  readonly probs: number[];
  /** Why generation stopped; `context` when the model's context ended it before `maxTokens`. */
  readonly stop: StopReason | "context";
  /** Width of the original image (after EXIF orientation). */
  readonly width: number;
  /** Height of the original image (after EXIF orientation). */
  readonly height: number;
  /** The decoded original image (HWC RGB), only with `RunOptions.keepRgb`. */
  readonly rgb?: Uint8Array;
  /** Where the time went. */
  readonly timings: JobTimings;
}

/** Options of `runJobs`. */
export interface RunOptions {
  /** Images per batch (default 1). */
  readonly batchSize?: number;
  /** Most new tokens per job. */
  readonly maxTokens: number;
  /** Ids that end generation. */
  readonly eosIds: readonly number[];
  /** Token choice (default greedy). */
  readonly sampling?: SamplingOptions;
  /** Seed for sampling; job i draws from its own stream, whatever its batch (default 0). */
  readonly seed?: number;
  /** Called with each new token as it is chosen (job index, token id). */
  readonly onToken?: (index: number, token: number) => void;
  /** The tokens a job may take next, as a bitmask (see GenerateOptions.constrain). */
  readonly constrain?: (
    index: number,
    generated: readonly number[],
    vocab: number,
  ) => Uint32Array | null;
  /** Record each token's probability (see GenerateOptions.withProbs). */
  readonly withProbs?: boolean;
  /** Called when a job's batch starts generating (its images are encoded). */
  readonly onBatchStart?: (indices: readonly number[]) => void;
  /** Refuse images with more pixels than this (default: lib/image's 100 megapixels). */
  readonly maxPixels?: number;
  /** Keep each decoded original image and return it as `JobResult.rgb`. */
  readonly keepRgb?: boolean;
  /** Image pre-processing (the model folder's `ModelDir.preprocess`; default HF PaliGemma's). */
  readonly preprocess?: PreprocessConfig;
}

/** Tokens a prompt of `promptLength` tokens leaves for generation in `backend`'s context. */
export function tokensLeft(backend: Backend, promptLength: number): number {
  return backend.contextLength - promptLength;
}

/**
 * Runs `jobs` in order, `batchSize` at a time, yielding each outcome in job order as its batch
 * finishes. A job whose image cannot be read, whose prompt does not fit in the context or whose
 * tokens cannot be decoded yields a JobFailure; the other jobs of its batch still run. Rows whose
 * prompt leaves fewer than `maxTokens` positions stop at the context (`stop: "context"`).
 */
export async function* runJobs(
  backend: Backend,
  tokenizer: Tokenizer,
  jobs: readonly Job[],
  opts: RunOptions,
): AsyncGenerator<JobOutcome> {
  const cfg = backend.config;
  if (tokenizer.imageId !== cfg.imageTokenIndex) {
    throw new InputError(
      `tokenizer's <image> id ${tokenizer.imageId} differs from config.json's ` +
        `image_token_index ${cfg.imageTokenIndex}`,
    );
  }
  const size = cfg.vision.imageSize;
  const per = Math.max(1, opts.batchSize ?? 1);
  // Jobs usually share one prompt: tokenize each text once.
  const prompts = new Map<string, PromptInput>();
  for (let start = 0; start < jobs.length; start += per) {
    const failed = new Map<number, JobFailure>();
    const fail = (i: number, kind: JobErrorKind, error: unknown) =>
      failed.set(i, { index: i, job: jobs[i], kind, error });
    const loaded: Omit<BatchRow, "prompt">[] = [];
    for (let i = start; i < Math.min(jobs.length, start + per); i++) {
      const t = performance.now();
      try {
        const img = await preprocessImage(jobs[i].image, size, {
          maxPixels: opts.maxPixels,
          keepRgb: opts.keepRgb,
          config: opts.preprocess,
        });
        loaded.push({ index: i, img, ms: performance.now() - t });
      } catch (err) {
        fail(i, "bad_image", err);
      }
    }
    const rows: BatchRow[] = [];
    for (const l of loaded) {
      const text = jobs[l.index].prompt;
      let prompt = prompts.get(text);
      if (prompt === undefined) {
        prompt = buildPrompt(tokenizer, cfg.numImageTokens, text);
        prompts.set(text, prompt);
      }
      const left = tokensLeft(backend, prompt.inputIds.length);
      if (left < 1) {
        fail(
          l.index,
          "prompt_too_long",
          new PromptTooLong(prompt.inputIds.length, backend.contextLength),
        );
      } else rows.push({ ...l, prompt });
    }
    const results = new Map<number, JobResult>();
    if (rows.length > 0) {
      for (const r of await runBatch(backend, tokenizer, jobs, rows, opts)) {
        if (isFailure(r)) failed.set(r.index, r);
        else results.set(r.index, r);
      }
    }
    for (let i = start; i < Math.min(jobs.length, start + per); i++) {
      yield (failed.get(i) ?? results.get(i))!;
    }
  }
}

/** One job ready to run: its loaded image (and the milliseconds that took) and its prompt. */
interface BatchRow {
  readonly index: number;
  readonly img: PreprocessedImage;
  readonly ms: number;
  readonly prompt: PromptInput;
}

/** Encodes, generates and decodes one batch of loaded images with their prompts. */
async function runBatch(
  backend: Backend,
  tokenizer: Tokenizer,
  jobs: readonly Job[],
  rows: readonly BatchRow[],
  opts: RunOptions,
): Promise<JobOutcome[]> {
  const cfg = backend.config;
  const size = cfg.vision.imageSize;
  const sampling = opts.sampling ?? GREEDY;
  const b = rows.length;
  const indices = rows.map((r) => r.index);
  const pixels = new Float32Array(b * 3 * size * size);
  for (const [r, row] of rows.entries()) pixels.set(row.img.pixelValues, r * 3 * size * size);
  const batch = batchPrompts(rows.map((r) => r.prompt), cfg.padTokenId);
  const maxTokens = Math.min(opts.maxTokens, tokensLeft(backend, batch.length));
  opts.onBatchStart?.(indices);
  const tv = performance.now();
  const features = await backend.encodeImages(pixels, b);
  const vision = performance.now() - tv;
  const res = await generate(backend, batch, features, {
    maxTokens,
    eosIds: opts.eosIds,
    padId: cfg.padTokenId,
    sampling,
    rngs: isSampling(sampling) ? indices.map((i) => seededRng(opts.seed ?? 0, i)) : undefined,
    onToken: opts.onToken && ((r, tok) => opts.onToken!(indices[r], tok)),
    constrain: opts.constrain && ((r, ids, v) => opts.constrain!(indices[r], ids, v)),
    withProbs: opts.withProbs,
  });
  return rows.map((row, r): JobOutcome => {
    const i = row.index;
    let text: string;
    try {
      text = tokenizer.decode(res.tokens[r], true);
    } catch (err) {
      return { index: i, job: jobs[i], kind: "decode_failed", error: err };
    }
    const stopped = res.stop[r];
    return {
      index: i,
      job: jobs[i],
      text,
      tokens: res.tokens[r],
      probs: res.probs[r],
      stop: stopped === "max_tokens" && maxTokens < opts.maxTokens ? "context" : stopped,
      width: row.img.width,
      height: row.img.height,
      rgb: row.img.rgb,
      timings: {
        preprocess: row.ms,
        vision,
        prefill: res.prefillMs,
        decode: res.decodeMs,
      },
    };
  });
}

/** A prompt longer than the model's context (no position left to generate in). */
export class PromptTooLong extends InputError {
  /** Creates the error for a prompt of `tokens` tokens and a context of `context`. */
  constructor(readonly tokens: number, readonly context: number) {
    super(
      `the prompt is ${tokens} tokens, which leaves no room in the model's context of ${context}`,
    );
    this.name = "PromptTooLong";
  }
}
