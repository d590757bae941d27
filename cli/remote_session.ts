/**
 * A model kept loaded by `pg serve`, used as a ModelSession: this process reads and pre-processes
 * each image exactly as a local run does (so a bad image gives the same error record), sends the
 * pixel values and the generation options, and gets back the tokens. Several images are in flight
 * at once so that the server can batch them; leaving the run early aborts what is in flight.
 * @module
 */

import { InputError } from "../lib/errors.ts";
import type { LocSegIds } from "../lib/detect/objects.ts";
import type { Job, JobErrorKind, JobOutcome } from "../lib/generate/pipeline.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import {
  base64ToFloats,
  floatsToBase64,
  type GenerateRequest,
  type GenerateResult,
  type Json,
  type SessionInfo,
} from "../lib/serve/protocol.ts";
import { type MaskDecoder, openMaskDecoder } from "../lib/vqvae/session.ts";
import type { ModelArgs } from "./model_args.ts";
import type { ModelSession, SessionRunOptions } from "./model_session.ts";
import { ServerClient, ServerError } from "./server_client.ts";
import { formatAddress, type ServerAddress } from "./server_url.ts";

/** Least number of images a client keeps in flight (more with a larger `--batch-size`). */
export const MIN_IN_FLIGHT = 4;

const JOB_KINDS: readonly string[] = ["bad_image", "prompt_too_long", "decode_failed"];

/** A model served by `pg serve`. */
export class RemoteSession implements ModelSession {
  /** The model folder on the server. */
  readonly path: string;
  /** The tokenizer file on the server. */
  readonly tokenizerPath: string;
  /** Backend name, with where it runs. */
  readonly backendName: string;
  /** The server's load time. */
  readonly loadMs: number;
  /** End-of-sequence ids. */
  readonly eosIds: readonly number[];
  /** Loc/seg id bases. */
  readonly ids: LocSegIds;
  /** Context length. */
  readonly contextLength: number;
  /** Image tokens per prompt. */
  readonly numImageTokens: number;
  /** Tokens of the run's prompt. */
  readonly promptLength: number;

  private constructor(
    private readonly client: ServerClient,
    private readonly args: ModelArgs,
    private readonly info: SessionInfo,
  ) {
    this.path = info.path;
    this.tokenizerPath = info.tokenizer_path;
    this.backendName = `${info.backend} in pg serve at ${formatAddress(client.address)}`;
    this.loadMs = info.load_ms;
    this.eosIds = info.eos_ids;
    this.ids = { locBase: info.loc_base, segBase: info.seg_base };
    this.contextLength = info.context_length;
    this.numImageTokens = info.num_image_tokens;
    this.promptLength = info.prompt_length;
  }

  /** Opens the model of `args` on the server at `address` for a run with `prompt`. */
  static async open(
    address: ServerAddress,
    args: ModelArgs,
    prompt: string,
  ): Promise<RemoteSession> {
    const client = new ServerClient(address);
    try {
      const info = await client.post("/v1/session", {
        model: args.model,
        dtype: args.dtype,
        prompt,
      });
      return new RemoteSession(client, args, info as unknown as SessionInfo);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** Runs the jobs on the server, a few in flight, yielding outcomes in job order. */
  async *run(jobs: readonly Job[], opts: SessionRunOptions): AsyncGenerator<JobOutcome> {
    const window = Math.max(MIN_IN_FLIGHT, opts.batchSize ?? 1);
    const abort = new AbortController();
    const pending: Promise<JobOutcome>[] = [];
    let next = 0;
    const start = () => {
      const i = next++;
      const p = this.one(i, jobs[i], opts, abort.signal);
      p.catch(() => {}); // awaited in order below
      pending.push(p);
    };
    try {
      while (next < jobs.length && pending.length < window) start();
      while (pending.length > 0) {
        const outcome = await pending.shift()!;
        if (next < jobs.length) start();
        yield outcome;
      }
    } finally {
      abort.abort();
    }
  }

  private async one(
    index: number,
    job: Job,
    opts: SessionRunOptions,
    signal: AbortSignal,
  ): Promise<JobOutcome> {
    const t = performance.now();
    let img;
    try {
      img = await preprocessImage(job.image, this.info.image_size, {
        maxPixels: opts.maxPixels,
        keepRgb: opts.keepRgb,
        config: this.info.preprocess,
      });
    } catch (err) {
      return { index, job, kind: "bad_image", error: err };
    }
    const preprocess = performance.now() - t;
    const request: GenerateRequest = {
      model: this.args.model,
      dtype: this.args.dtype,
      prompt: job.prompt,
      index,
      pixels: floatsToBase64(img.pixelValues),
      max_tokens: opts.maxTokens,
      sampling: opts.sampling ?? { temperature: 0, topK: 0, topP: 1 },
      seed: opts.seed ?? 0,
      with_probs: opts.withProbs === true,
      grammar: opts.grammar,
    };
    let reply: Json;
    try {
      reply = await this.client.post("/v1/generate", request, signal);
    } catch (err) {
      if (err instanceof ServerError && JOB_KINDS.includes(err.kind)) {
        return { index, job, kind: err.kind as JobErrorKind, error: err };
      }
      throw err;
    }
    const r = (reply as unknown as { result: GenerateResult }).result;
    if (r === undefined || !Array.isArray(r.tokens)) {
      throw new InputError(`pg serve sent a reply without a result for ${job.image}`);
    }
    return {
      index,
      job,
      text: r.text,
      tokens: r.tokens,
      probs: r.probs,
      stop: r.stop,
      width: img.width,
      height: img.height,
      rgb: img.rgb,
      timings: {
        preprocess,
        vision: r.timings.vision,
        prefill: r.timings.prefill,
        decode: r.timings.decode,
      },
    };
  }

  /** `vae` opened here when given, else the served model folder's decoder, run by the server. */
  async maskDecoder(vae?: string): Promise<MaskDecoder> {
    if (vae !== undefined) return await openMaskDecoder(this.path, vae);
    const decoder = new RemoteMaskDecoder(this.client, this.args);
    await decoder.decode([]);
    return decoder;
  }

  /** Closes the connection (the model stays loaded in the server). */
  release(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}

/** The served model's VQ-VAE decoder. */
class RemoteMaskDecoder implements MaskDecoder {
  constructor(private readonly client: ServerClient, private readonly args: ModelArgs) {}

  async decode(codes: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const reply = await this.client.post("/v1/masks", {
      model: this.args.model,
      dtype: this.args.dtype,
      codes,
    });
    const masks = (reply as { masks?: Json }).masks;
    if (!Array.isArray(masks) || masks.length !== codes.length) {
      throw new InputError("pg serve sent a masks reply of the wrong length");
    }
    return masks.map((m, i) => base64ToFloats(String(m), `masks[${i}]`));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
