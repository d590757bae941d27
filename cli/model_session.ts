/**
 * The model step of the image commands behind one interface: a model loaded in this process
 * (`LocalSession`), or one kept loaded by `pg serve` and reached with `--server`
 * (cli/remote_session.ts). Flag parsing, inputs, image decoding, output files and checks stay in
 * the command either way, so a thin client's output is the local one.
 * @module
 */

import type { LocSegIds } from "../lib/detect/objects.ts";
import type { Job, JobOutcome, RunOptions } from "../lib/generate/pipeline.ts";
import { runJobs } from "../lib/generate/pipeline.ts";
import { buildPrompt } from "../lib/prompt/build.ts";
import { grammarConstraint, type GrammarSpec } from "../lib/serve/constraint.ts";
import type { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { type MaskDecoder, openMaskDecoder } from "../lib/vqvae/session.ts";
import { type LoadedModel, loadModel, type ModelArgs } from "./model_args.ts";

/** Options of `ModelSession.run`: the pipeline's, with constrained decoding given as data. */
export interface SessionRunOptions extends Omit<RunOptions, "constrain" | "eosIds"> {
  /** Restrict generation to this answer grammar (`--constrained`). */
  readonly grammar?: GrammarSpec;
}

/** A model ready to run image jobs, wherever it is loaded. */
export interface ModelSession {
  /** The model folder (as the process that loaded it sees it), for log lines. */
  readonly path: string;
  /** The tokenizer file, for messages. */
  readonly tokenizerPath: string;
  /** Backend name, for log lines. */
  readonly backendName: string;
  /** Milliseconds the model took to load. */
  readonly loadMs: number;
  /** Ids that end generation. */
  readonly eosIds: readonly number[];
  /** Where the loc and seg tokens start in the vocabulary. */
  readonly ids: LocSegIds;
  /** The model's context, in tokens. */
  readonly contextLength: number;
  /** Image tokens of each prompt. */
  readonly numImageTokens: number;
  /** Tokens of the run's prompt (image tokens included). */
  readonly promptLength: number;
  /** The tokenizer, when it is loaded in this process (used to stream text to a terminal). */
  readonly tokenizer?: Tokenizer;
  /** Runs `jobs`, yielding each outcome in job order (see lib/generate/pipeline.ts runJobs). */
  run(jobs: readonly Job[], opts: SessionRunOptions): AsyncGenerator<JobOutcome>;
  /** The mask decoder of `segment`: the file `vae` when given, else the model folder's. */
  maskDecoder(vae?: string): Promise<MaskDecoder>;
  /** Frees the model (a remote model stays loaded in its server). */
  release(): Promise<void>;
}

/** A model loaded in this process. */
export class LocalSession implements ModelSession {
  /** The model folder. */
  readonly path: string;
  /** The tokenizer file. */
  readonly tokenizerPath: string;
  /** The backend's name. */
  readonly backendName: string;
  /** Load time in milliseconds. */
  readonly loadMs: number;
  /** Ids that end generation. */
  readonly eosIds: readonly number[];
  /** Loc/seg id bases. */
  readonly ids: LocSegIds;
  /** Context length. */
  readonly contextLength: number;
  /** Image tokens per prompt. */
  readonly numImageTokens: number;
  /** Tokens of the run's prompt. */
  readonly promptLength: number;
  /** The loaded tokenizer. */
  readonly tokenizer: Tokenizer;

  /** Wraps `model`, with `prompt` the prompt the run will give every image. */
  constructor(readonly model: LoadedModel, prompt: string) {
    const cfg = model.backend.config;
    this.path = model.dir.path;
    this.tokenizerPath = model.dir.tokenizer;
    this.backendName = model.backend.name;
    this.loadMs = model.loadMs;
    this.eosIds = model.dir.eosIds;
    this.tokenizer = model.tokenizer;
    this.ids = { locBase: model.tokenizer.locBase, segBase: model.tokenizer.segBase };
    this.contextLength = model.backend.contextLength;
    this.numImageTokens = cfg.numImageTokens;
    this.promptLength = buildPrompt(model.tokenizer, cfg.numImageTokens, prompt).inputIds.length;
  }

  /** Loads the model of `args` here. */
  static async open(args: ModelArgs, prompt: string): Promise<LocalSession> {
    return new LocalSession(await loadModel(args), prompt);
  }

  /** Runs the jobs through lib/generate's pipeline. */
  run(jobs: readonly Job[], opts: SessionRunOptions): AsyncGenerator<JobOutcome> {
    const { grammar, ...rest } = opts;
    const mask = grammar &&
      grammarConstraint(grammar, this.tokenizer, this.eosIds, opts.maxTokens);
    return runJobs(this.model.backend, this.tokenizer, jobs, {
      ...rest,
      eosIds: this.eosIds,
      preprocess: rest.preprocess ?? this.model.dir.preprocess,
      constrain: mask && ((_i, ids, vocab) => mask(ids, vocab)),
    });
  }

  /** Opens `vae`, or the model folder's decoder. */
  maskDecoder(vae?: string): Promise<MaskDecoder> {
    return openMaskDecoder(this.path, vae, this.model.backend.gpu);
  }

  /** Releases the backend. */
  async release(): Promise<void> {
    await this.model.backend.release();
  }
}
