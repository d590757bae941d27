/**
 * Dynamic batching: rows (one image and its prompt each) from any number of requests wait in one
 * queue per model; whenever the model is free, the rows that arrived together (up to `maxBatch`,
 * sharing the token budget and the sampling settings) run as one left-padded batch with the
 * prefix-LM mask, exactly as `pg caption --batch-size N` runs them, so a row's result is the one a
 * single run gives. A row whose client went away is dropped from the queue, or, in a running
 * batch, ended at the next step.
 * @module
 */

import { generate } from "../generate/generate.ts";
import { PromptTooLong } from "../generate/pipeline.ts";
import { seededRng } from "../generate/rng.ts";
import { isSampling, type SamplingOptions } from "../generate/sampling.ts";
import { batchPrompts } from "../prompt/batch.ts";
import type { PromptInput } from "../prompt/build.ts";
import { forceEnd, grammarConstraint, type GrammarSpec, type RowConstraint } from "./constraint.ts";
import type { ModelSlot, ServedModel } from "./model_slot.ts";
import type { ErrorBody, GenerateResult } from "./protocol.ts";

/** One image to run. */
export interface Row {
  /** Prompt text. */
  readonly prompt: string;
  /** Sampling stream (the job's position in its client's list). */
  readonly index: number;
  /** CHW float32 pixel values at the model's input size. */
  readonly pixels: Float32Array;
  /** Most new tokens. */
  readonly maxTokens: number;
  /** Token choice. */
  readonly sampling: SamplingOptions;
  /** Sampling seed. */
  readonly seed: number;
  /** Return token probabilities. */
  readonly withProbs: boolean;
  /** Constrained decoding. */
  readonly grammar?: GrammarSpec;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

/** A row's result or its error. */
export type RowReply = { readonly result: GenerateResult } | { readonly error: ErrorBody };

/** Options of a Batcher. */
export interface BatcherOptions {
  /** Most rows per batch. */
  readonly maxBatch: number;
  /** Milliseconds to wait for more rows before starting a batch on an idle model. */
  readonly waitMs: number;
  /** Log line sink. */
  readonly log: (line: string) => void;
  /** The one-line message and exit code of an error (the CLI's wording). */
  readonly word: (err: unknown) => { message: string; exitCode: number };
}

interface Queued {
  readonly row: Row;
  readonly resolve: (reply: RowReply) => void;
}

interface Ready extends Queued {
  readonly prompt: PromptInput;
  readonly mask?: RowConstraint;
}

/** Counters, for the health endpoint and the tests. */
export interface BatcherStats {
  /** Batches run. */
  batches: number;
  /** Rows run. */
  rows: number;
  /** Largest batch run. */
  largest: number;
  /** Rows dropped from the queue because their client went away. */
  dropped: number;
  /** Rows ended early in a running batch because their client went away. */
  ended: number;
}

/** The queue of one model and the loop that runs its batches. */
export class Batcher {
  private queue: Queued[] = [];
  private running = false;
  /** Counters since start. */
  readonly stats: BatcherStats = { batches: 0, rows: 0, largest: 0, dropped: 0, ended: 0 };

  /** A batcher over `slot`. */
  constructor(private readonly slot: ModelSlot, private readonly opts: BatcherOptions) {}

  /** Rows waiting. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Queues `row`; resolves with its result once its batch ran (never rejects). */
  submit(row: Row): Promise<RowReply> {
    return new Promise((resolve) => {
      const item = { row, resolve };
      this.queue.push(item);
      row.signal.addEventListener("abort", () => {
        const at = this.queue.indexOf(item);
        if (at < 0) return;
        this.queue.splice(at, 1);
        this.stats.dropped++;
        resolve({ error: { kind: "cancelled", message: "the client went away" } });
      }, { once: true });
      if (!this.running) this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      if (this.opts.waitMs > 0) await new Promise((r) => setTimeout(r, this.opts.waitMs));
      while (this.queue.length > 0) {
        let model: ServedModel;
        try {
          model = await this.slot.acquire();
        } catch (err) {
          const line = this.opts.word(err);
          const error = { kind: "model_failed", message: line.message, exit_code: line.exitCode };
          for (const q of this.queue.splice(0)) q.resolve({ error });
          break;
        }
        try {
          const batch = this.take(model);
          if (batch.length > 0) await this.runBatch(model, batch);
        } finally {
          this.slot.release();
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Takes the next batch off the queue: the oldest row and the queued rows that fit with it. */
  private take(model: ServedModel): Ready[] {
    const context = model.backend.contextLength;
    const size = model.backend.config.vision.imageSize;
    const batch: Ready[] = [];
    const rest: Queued[] = [];
    for (const q of this.queue) {
      let prompt: PromptInput;
      let mask: RowConstraint | undefined;
      try {
        prompt = this.slot.prompt(model, q.row.prompt);
        const g = q.row.grammar;
        mask = g && grammarConstraint(g, model.tokenizer, model.dir.eosIds, q.row.maxTokens);
      } catch (err) {
        q.resolve({ error: { kind: "bad_request", message: this.opts.word(err).message } });
        continue;
      }
      if (q.row.pixels.length !== 3 * size * size) {
        const message = `"pixels": expected ${3 * size * size} float32 values ` +
          `(3x${size}x${size}), got ${q.row.pixels.length}`;
        q.resolve({ error: { kind: "bad_request", message, exit_code: 2 } });
        continue;
      }
      const length = prompt.inputIds.length;
      if (context - length < 1) {
        const message = new PromptTooLong(length, context).message;
        q.resolve({ error: { kind: "prompt_too_long", message, exit_code: 2 } });
        continue;
      }
      const item = { ...q, prompt, mask };
      if (batch.length < this.opts.maxBatch && (batch.length === 0 || fits(batch, item, context))) {
        batch.push(item);
      } else rest.push(q);
    }
    this.queue = rest;
    return batch;
  }

  private async runBatch(model: ServedModel, batch: Ready[]): Promise<void> {
    const { backend, tokenizer } = model;
    const cfg = backend.config;
    const size = cfg.vision.imageSize;
    const per = 3 * size * size;
    const b = batch.length;
    this.stats.batches++;
    this.stats.rows += b;
    this.stats.largest = Math.max(this.stats.largest, b);
    const first = batch[0].row;
    const eos = model.dir.eosIds[0] ?? tokenizer.eosId;
    try {
      const pixels = new Float32Array(b * per);
      for (const [r, q] of batch.entries()) pixels.set(q.row.pixels, r * per);
      const prompts = batchPrompts(batch.map((q) => q.prompt), cfg.padTokenId);
      const maxTokens = Math.min(first.maxTokens, backend.contextLength - prompts.length);
      const ended = new Set<number>();
      const tv = performance.now();
      const features = await backend.encodeImages(pixels, b);
      const vision = performance.now() - tv;
      const res = await generate(backend, prompts, features, {
        maxTokens,
        eosIds: model.dir.eosIds,
        padId: cfg.padTokenId,
        sampling: first.sampling,
        rngs: isSampling(first.sampling)
          ? batch.map((q) => seededRng(q.row.seed, q.row.index))
          : undefined,
        withProbs: batch.some((q) => q.row.withProbs),
        constrain: (r, ids, vocab) => {
          if (batch[r].row.signal.aborted) {
            if (!ended.has(r)) this.stats.ended++;
            ended.add(r);
            return forceEnd(eos, vocab);
          }
          return batch[r].mask?.(ids, vocab) ?? null;
        },
      });
      for (const [r, q] of batch.entries()) {
        if (q.row.signal.aborted) {
          q.resolve({ error: { kind: "cancelled", message: "the client went away" } });
          continue;
        }
        let text: string;
        try {
          text = tokenizer.decode(res.tokens[r], true);
        } catch (err) {
          q.resolve({ error: { kind: "decode_failed", message: this.opts.word(err).message } });
          continue;
        }
        const stopped = res.stop[r];
        q.resolve({
          result: {
            text,
            tokens: res.tokens[r],
            probs: q.row.withProbs ? res.probs[r] : [],
            stop: stopped === "max_tokens" && maxTokens < q.row.maxTokens ? "context" : stopped,
            timings: { vision, prefill: res.prefillMs, decode: res.decodeMs },
            batch_size: b,
          },
        });
      }
    } catch (err) {
      const line = this.opts.word(err);
      this.opts.log(`a batch of ${b} failed: ${line.message}`);
      for (const q of batch) q.resolve({ error: { kind: "model_failed", message: line.message } });
    }
  }
}

/**
 * Whether `item` may join `batch`: same token budget and sampling, and a budget that the longest
 * prompt's context still allows every row (so that no row stops earlier than it would alone).
 */
function fits(batch: readonly Ready[], item: Ready, context: number): boolean {
  const a = batch[0].row;
  const b = item.row;
  if (a.maxTokens !== b.maxTokens) return false;
  const s = a.sampling;
  const t = b.sampling;
  if (s.temperature !== t.temperature || s.topK !== t.topK || s.topP !== t.topP) return false;
  const lengths = [...batch, item].map((q) => q.prompt.inputIds.length);
  const longest = Math.max(...lengths);
  return a.maxTokens <= context - longest || lengths.every((l) => l === lengths[0]);
}
