/**
 * The ONNX Runtime (CPU, onnxruntime-node) backend over a converted model folder. The KV cache is
 * kept as the `present.*` tensors ORT returned and fed back unchanged as `past_key_values.*`; the
 * decoder only computes logits for the last position (`num_logits_to_keep`).
 * @module
 */

import * as ort from "onnxruntime-node";
import { basename, dirname, join } from "node:path";
import { ROPE_POSITIONS } from "../convert/decoder_graph.ts";
import { InputError } from "../errors.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import type { DecodeInput, ImageFeatures, KvCache, PrefillInput, StepOutput } from "./backend.ts";
import { CpuPickBackend } from "./cpu_pick.ts";
import type { Precision } from "../model/precision.ts";
import { type GraphName, type ModelDir, pickPrecision } from "./model_dir.ts";
import { OutdatedGraph } from "./model_errors.ts";
import { openLocalSession, openWorkerSession, type SessionHandle } from "./onnx_session.ts";

/** Options of `OnnxBackend.load`. */
export interface OnnxBackendOptions {
  /** Precision to load (default: the best the folder holds). */
  readonly dtype?: Precision;
  /** Intra-op threads (default: ORT's choice, one per core). */
  readonly threads?: number;
  /** Let ONNX Runtime print its own warnings (default: only fatal errors, which are thrown too). */
  readonly verbose?: boolean;
  /**
   * Create and run the vision encoder and the decoder each in a worker thread of its own, so that
   * their creation (pre-packing their weights, seconds each at full size) runs at the same time as
   * each other and as this thread (default: when the decoder's files hold over
   * `WORKER_MIN_BYTES`).
   */
  readonly workers?: boolean;
}

/** Graph files (with their external data) at least this large get worker sessions by default. */
export const WORKER_MIN_BYTES = 256 * 1024 * 1024;

/** Bytes of a graph file plus the external data files beside it that share its name. */
function graphBytes(path: string): number {
  const dir = dirname(path);
  const name = basename(path);
  let total = 0;
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.startsWith(name)) total += Deno.statSync(join(dir, e.name)).size;
    }
  } catch {
    return 0; // unreadable here: the session's own open reports it
  }
  return total;
}

/** The cache of this backend: `past_key_values.*` feeds by name. */
class OnnxKvCache implements KvCache {
  constructor(
    readonly batchSize: number,
    readonly length: number,
    readonly feeds: Readonly<Record<string, ort.Tensor>>,
  ) {}
}

function int64(values: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]);
  return new ort.Tensor("int64", data, dims);
}

function float32(t: ort.Tensor, what: string): Float32Array {
  if (t.type !== "float32") {
    throw new InputError(`${what}: expected float32 output, got ${t.type}`);
  }
  return t.data as Float32Array;
}

/** ONNX Runtime backend; create with `OnnxBackend.load`. */
export class OnnxBackend extends CpuPickBackend {
  /** Logits width. */
  readonly vocabSize: number;
  /** Positions the converted decoder's RoPE tables cover (1-based, so one less than their rows). */
  readonly contextLength = ROPE_POSITIONS - 1;
  private readonly layers: number;
  /**
   * Milliseconds from the start of `load` until each graph's session was ready (worker sessions
   * are created at the same time, so these overlap).
   */
  loadPhases: Readonly<Record<string, number>> = {};

  private constructor(
    readonly name: string,
    readonly config: PaliGemmaConfig,
    readonly dtype: Precision,
    private readonly vision: SessionHandle,
    private readonly embed: SessionHandle,
    private readonly decoder: SessionHandle,
  ) {
    super();
    this.layers = config.text.numLayers;
    this.vocabSize = config.text.vocabSize;
    const need = [
      "inputs_embeds",
      "attention_mask",
      "position_ids",
      "num_logits_to_keep",
      "past_key_values.0.key",
    ];
    const missing = need.filter((n) => !decoder.inputNames.includes(n));
    if (missing.length > 0) {
      throw new OutdatedGraph("decoder_model_merged", missing);
    }
  }

  /** Opens the three graphs of `dir` at the chosen precision. */
  static async load(dir: ModelDir, opts: OnnxBackendOptions = {}): Promise<OnnxBackend> {
    const dtype = pickPrecision(dir, opts.dtype);
    ort.env.logLevel = opts.verbose ? "warning" : "fatal";
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ["cpu"],
      logSeverityLevel: opts.verbose ? 2 : 4,
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      interOpNumThreads: 1,
      ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    };
    // The embedding lookup is a Gather: one thread, no worker pool whose idle spinning would take
    // a core from the decoder that runs right after it at every step.
    const single: ort.InferenceSession.SessionOptions = {
      ...options,
      intraOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    };
    const workers = opts.workers ??
      graphBytes(dir.graph("decoder_model_merged", dtype)) >= WORKER_MIN_BYTES;
    const open = async (g: GraphName, inWorker: boolean) => {
      const path = dir.graph(g, dtype);
      const o = g === "embed_tokens" ? single : options;
      try {
        return await (inWorker
          ? openWorkerSession(path, o, ort.env.logLevel)
          : openLocalSession(path, o));
      } catch (err) {
        const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
        throw new InputError(`${path}: ONNX Runtime cannot load it (${why})`);
      }
    };
    // Worker sessions are started first: they are created while this thread creates the
    // embedding session (and whatever the caller does next, such as building the tokenizer).
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const timed = async (g: GraphName, inWorker: boolean) => {
      const s = await open(g, inWorker);
      phases[g] = performance.now() - t0;
      return s;
    };
    const opening = [
      timed("decoder_model_merged", workers),
      timed("vision_encoder", workers),
      timed("embed_tokens", false),
    ];
    const settled = await Promise.allSettled(opening);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed !== undefined) {
      await Promise.all(settled.map((r) => r.status === "fulfilled" ? r.value.release() : null));
      throw failed.reason;
    }
    const [decoder, vision, embed] = settled.map((r) =>
      (r as PromiseFulfilledResult<SessionHandle>).value
    );
    const threads = opts.threads ? `${opts.threads} threads` : "default threads";
    try {
      const be = new OnnxBackend(
        `onnx (${dtype}, ${threads}${workers ? ", worker sessions" : ""})`,
        dir.config,
        dtype,
        vision,
        embed,
        decoder,
      );
      be.loadPhases = phases;
      return be;
    } catch (err) {
      await Promise.all([vision.release(), embed.release(), decoder.release()]);
      throw err;
    }
  }

  /** Runs `vision_encoder`: pixel_values [B,3,S,S] → image_features [B,N,D]. */
  async encodeImages(pixelValues: Float32Array, batchSize: number): Promise<ImageFeatures> {
    const s = this.config.vision.imageSize;
    if (pixelValues.length !== batchSize * 3 * s * s) {
      throw new RangeError(`encodeImages: expected ${batchSize}x3x${s}x${s} pixel values`);
    }
    const r = await this.vision.run({
      pixel_values: new ort.Tensor("float32", pixelValues, [batchSize, 3, s, s]),
    });
    const t = r.image_features;
    const [, tokens, dim] = t.dims;
    return { batchSize, tokens, dim, data: float32(t, "vision_encoder image_features") };
  }

  /** Runs `embed_tokens` on [B,S] ids. */
  private async embedIds(ids: Int32Array, b: number, s: number): Promise<Float32Array> {
    const r = await this.embed.run({ input_ids: int64(ids, [b, s]) });
    return float32(r.inputs_embeds, "embed_tokens inputs_embeds");
  }

  /** Writes row b's image features over row b's `<image>` tokens, in order. */
  private mergeImage(embeds: Float32Array, input: PrefillInput, image: ImageFeatures): void {
    const { batchSize: b, length: n, inputIds } = input;
    const d = this.config.text.hiddenSize;
    if (image.batchSize !== b || image.dim !== d) {
      throw new RangeError(
        `prefill: ${image.batchSize} images of width ${image.dim} for ${b} rows of width ${d}`,
      );
    }
    const imageId = this.config.imageTokenIndex;
    for (let r = 0; r < b; r++) {
      let k = 0;
      for (let i = 0; i < n; i++) {
        if (inputIds[r * n + i] !== imageId) continue;
        if (k === image.tokens) break;
        const src = (r * image.tokens + k++) * d;
        embeds.set(image.data.subarray(src, src + d), (r * n + i) * d);
      }
      if (k !== image.tokens) {
        throw new RangeError(`prefill: row ${r} has ${k} <image> tokens, expected ${image.tokens}`);
      }
    }
  }

  /** Empty `past_key_values.*` for a batch of `b` rows, typed and shaped from the graph. */
  private emptyCache(b: number): OnnxKvCache {
    const t = this.config.text;
    const feeds: Record<string, ort.Tensor> = {};
    const empty = new ort.Tensor("float32", new Float32Array(0), [b, t.numKvHeads, 0, t.headDim]);
    for (let i = 0; i < this.layers; i++) {
      feeds[`past_key_values.${i}.key`] = empty;
      feeds[`past_key_values.${i}.value`] = empty;
    }
    return new OnnxKvCache(b, 0, feeds);
  }

  private async runDecoder(
    embeds: Float32Array,
    b: number,
    s: number,
    mask: Int32Array,
    positions: Int32Array,
    cache: OnnxKvCache,
    keep: number,
  ): Promise<StepOutput> {
    const total = cache.length + s;
    if (mask.length !== b * total || positions.length !== b * s) {
      throw new RangeError(`decoder: mask or positions do not match ${b} rows of ${total}`);
    }
    const feedsIn: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor("float32", embeds, [b, s, this.config.text.hiddenSize]),
      attention_mask: int64(mask, [b, total]),
      position_ids: int64(positions, [b, s]),
      num_logits_to_keep: new ort.Tensor("int64", BigInt64Array.of(BigInt(keep)), []),
      ...cache.feeds,
    };
    // Every feed is this backend's own (the cache is consumed by this step): a worker session may
    // take their buffers instead of copying them.
    const consumed = new Set(Object.values(feedsIn));
    const r = await this.decoder.run(feedsIn, consumed);
    const feeds: Record<string, ort.Tensor> = {};
    for (let i = 0; i < this.layers; i++) {
      feeds[`past_key_values.${i}.key`] = r[`present.${i}.key`];
      feeds[`past_key_values.${i}.value`] = r[`present.${i}.value`];
    }
    const logits = r.logits;
    return {
      logits: float32(logits, "decoder_model_merged logits"),
      kept: logits.dims[1],
      cache: new OnnxKvCache(b, total, feeds),
    };
  }

  /** Embeds the prompt, merges the image features and runs the decoder with an empty cache. */
  async prefillLogits(input: PrefillInput): Promise<StepOutput> {
    const { batchSize: b, length: n } = input;
    const embeds = await this.embedIds(input.inputIds, b, n);
    if (input.image) this.mergeImage(embeds, input, input.image);
    return await this.runDecoder(
      embeds,
      b,
      n,
      input.attentionMask,
      input.positionIds,
      this.emptyCache(b),
      input.logitsToKeep ?? 1,
    );
  }

  /** Embeds one token per row and runs the decoder on it with the cache. */
  async decodeLogits(input: DecodeInput): Promise<StepOutput> {
    const cache = input.cache;
    if (!(cache instanceof OnnxKvCache)) throw new TypeError("decode: cache from another backend");
    const b = cache.batchSize;
    const embeds = await this.embedIds(input.tokens, b, 1);
    return await this.runDecoder(
      embeds,
      b,
      1,
      input.attentionMask,
      input.positionIds,
      cache,
      1,
    );
  }

  /** Releases the three sessions. */
  async release(): Promise<void> {
    await Promise.all([this.vision.release(), this.embed.release(), this.decoder.release()]);
  }
}
