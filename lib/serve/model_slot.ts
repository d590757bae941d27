/**
 * One model a server keeps: loaded at start and on demand, shared by the requests that use it,
 * unloaded after `idleMs` with no request (then loaded again by the next one).
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { ModelInfo } from "../backend/model_dir.ts";
import { buildPrompt, type PromptInput } from "../prompt/build.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type MaskDecoder, openMaskDecoder } from "../vqvae/session.ts";

/** A loaded model (the shape of cli/model_args.ts LoadedModel). */
export interface ServedModel {
  /** The folder. */
  readonly dir: ModelInfo;
  /** The backend over it. */
  readonly backend: Backend;
  /** Its tokenizer. */
  readonly tokenizer: Tokenizer;
  /** Milliseconds the load took. */
  readonly loadMs: number;
}

/** A model slot: the name clients use, how to load it, and its idle timeout. */
export interface SlotOptions {
  /** The `--model` value the server was given. */
  readonly name: string;
  /** `--dtype` the server was given, if any. */
  readonly dtype?: string;
  /** Loads the model. */
  readonly load: () => Promise<ServedModel>;
  /** Unload after this many milliseconds without a request (0: never). */
  readonly idleMs: number;
  /** Log line sink (stderr). */
  readonly log: (line: string) => void;
}

/** A model that is loaded lazily, shared, and unloaded when idle. */
export class ModelSlot {
  private model?: Promise<ServedModel>;
  private decoder?: Promise<MaskDecoder>;
  private users = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private readonly prompts = new Map<string, PromptInput>();
  /** Times the model was loaded (the first load included). */
  loads = 0;

  /** A slot for `opts.name`; nothing is loaded yet. */
  constructor(readonly opts: SlotOptions) {}

  /** Whether the model is loaded (or loading). */
  get loaded(): boolean {
    return this.model !== undefined;
  }

  /**
   * The model, loading it if needed; the caller must `release()` once done with it. A failed load
   * is not kept: the next call tries again.
   */
  async acquire(): Promise<ServedModel> {
    this.users++;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.model === undefined) {
      this.loads++;
      const pending = this.opts.load();
      this.model = pending;
      pending.then(
        (m) => this.opts.log(`${m.dir.path} loaded in ${(m.loadMs / 1000).toFixed(2)} s`),
        () => {
          if (this.model === pending) this.model = undefined;
        },
      );
    }
    try {
      return await this.model;
    } catch (err) {
      this.release();
      throw err;
    }
  }

  /** Ends one use; the last one arms the idle timer. */
  release(): void {
    this.users = Math.max(0, this.users - 1);
    if (this.users > 0 || this.opts.idleMs <= 0 || this.model === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.users === 0) {
        this.opts.log(`${this.opts.name}: unloaded after ${this.opts.idleMs / 1000} s idle`);
        this.unload();
      }
    }, this.opts.idleMs);
  }

  /** The tokenized prompt `text` (cached while the model stays loaded). */
  prompt(model: ServedModel, text: string): PromptInput {
    let p = this.prompts.get(text);
    if (p === undefined) {
      p = buildPrompt(model.tokenizer, model.backend.config.numImageTokens, text);
      if (this.prompts.size > 256) this.prompts.clear();
      this.prompts.set(text, p);
    }
    return p;
  }

  /** The model folder's VQ-VAE decoder (opened on first use, kept while loaded). */
  maskDecoder(model: ServedModel): Promise<MaskDecoder> {
    if (this.decoder === undefined) {
      const pending = openMaskDecoder(model.dir.path, undefined, model.backend.gpu);
      this.decoder = pending;
      pending.catch(() => {
        if (this.decoder === pending) this.decoder = undefined;
      });
    }
    return this.decoder;
  }

  /** Frees the model now (in-flight users keep their reference until they finish). */
  async unload(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const model = this.model;
    const decoder = this.decoder;
    this.model = undefined;
    this.decoder = undefined;
    this.prompts.clear();
    await (await decoder?.catch(() => undefined))?.close();
    await (await model?.catch(() => undefined))?.backend.release();
  }
}
