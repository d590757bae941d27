/**
 * Image + prompt jobs through a backend, a batch at a time: load and pre-process the images,
 * build and left-pad the prompts, encode the images, generate, detokenise.
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { InputError } from "../errors.ts";
import { preprocessImage } from "../image/preprocess.ts";
import type { PreprocessConfig } from "../image/preprocess_config.ts";
import { batchPrompts } from "../prompt/batch.ts";
import { buildPrompt } from "../prompt/build.ts";
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
  /** Why generation stopped. */
  readonly stop: StopReason;
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
  /** Masks a job's logits before each choice (see GenerateOptions.constrain). */
  readonly constrain?: (index: number, generated: readonly number[], logits: Float32Array) => void;
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

/** Runs `jobs` in order, `batchSize` at a time, yielding each result as its batch finishes. */
export async function* runJobs(
  backend: Backend,
  tokenizer: Tokenizer,
  jobs: readonly Job[],
  opts: RunOptions,
): AsyncGenerator<JobResult> {
  const cfg = backend.config;
  if (tokenizer.imageId !== cfg.imageTokenIndex) {
    throw new InputError(
      `tokenizer's <image> id ${tokenizer.imageId} differs from config.json's ` +
        `image_token_index ${cfg.imageTokenIndex}`,
    );
  }
  const size = cfg.vision.imageSize;
  const per = Math.max(1, opts.batchSize ?? 1);
  const sampling = opts.sampling ?? GREEDY;
  for (let start = 0; start < jobs.length; start += per) {
    const indices = jobs.slice(start, start + per).map((_, i) => start + i);
    const b = indices.length;
    const pixels = new Float32Array(b * 3 * size * size);
    const prep: number[] = [];
    const originals: { width: number; height: number; rgb?: Uint8Array }[] = [];
    for (const [r, i] of indices.entries()) {
      const t = performance.now();
      const img = await preprocessImage(jobs[i].image, size, {
        maxPixels: opts.maxPixels,
        keepRgb: opts.keepRgb,
        config: opts.preprocess,
      });
      pixels.set(img.pixelValues, r * 3 * size * size);
      originals.push({ width: img.width, height: img.height, rgb: img.rgb });
      prep.push(performance.now() - t);
    }
    const rows = indices.map((i) => buildPrompt(tokenizer, cfg.numImageTokens, jobs[i].prompt));
    const batch = batchPrompts(rows, cfg.padTokenId);
    opts.onBatchStart?.(indices);
    const tv = performance.now();
    const features = await backend.encodeImages(pixels, b);
    const vision = performance.now() - tv;
    const res = await generate(backend, batch, features, {
      maxTokens: opts.maxTokens,
      eosIds: opts.eosIds,
      padId: cfg.padTokenId,
      sampling,
      rngs: isSampling(sampling) ? indices.map((i) => seededRng(opts.seed ?? 0, i)) : undefined,
      onToken: opts.onToken && ((r, tok) => opts.onToken!(indices[r], tok)),
      constrain: opts.constrain && ((r, ids, l) => opts.constrain!(indices[r], ids, l)),
      withProbs: opts.withProbs,
    });
    for (const [r, i] of indices.entries()) {
      yield {
        index: i,
        job: jobs[i],
        text: tokenizer.decode(res.tokens[r], true),
        tokens: res.tokens[r],
        probs: res.probs[r],
        stop: res.stop[r],
        ...originals[r],
        timings: {
          preprocess: prep[r],
          vision,
          prefill: res.prefillMs,
          decode: res.decodeMs,
        },
      };
    }
  }
}
