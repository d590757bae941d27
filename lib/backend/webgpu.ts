/**
 * The WebGPU backend (Deno's `navigator.gpu`, our WGSL kernels in `kernels/`): weights straight
 * from a checkpoint's canonical tensors in their stored precision (lib/webgpu/model_weights.ts),
 * the KV cache preallocated on the device, GEMV / GEMM / FlashAttention (lib/webgpu/model.ts),
 * and the token choice on the device (kernels/sample.wgsl: greedy, or temperature / top-k / top-p
 * from the rows' seeded uniform draws, with the grammar bitmask): only ids, flags and
 * probabilities are read back; a row whose candidates overflow the kernel is picked on the CPU
 * (lib/backend/cpu_pick.ts, the ONNX backend's code).
 * @module
 */

import { ROPE_POSITIONS } from "../convert/decoder_graph.ts";
import type { ConvertSource } from "../convert/source.ts";
import { InputError } from "../errors.ts";
import { isSampling } from "../generate/sampling.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import { findGpuAdapter, requestGpuDevice } from "../webgpu/device.ts";
import { type GpuKvCache, GpuPaliGemma } from "../webgpu/model.ts";
import { checkModelFits, uploadWeights } from "../webgpu/model_weights.ts";
import {
  decodeSamples,
  SAMPLE_NONE_ALLOWED,
  SAMPLE_OVERFLOW,
  sampleScratchLength,
  sampleTokens,
} from "../webgpu/ops_sample.ts";
import { GpuRunner, type GpuTensor } from "../webgpu/runner.ts";
import { type GemmPrecision, gemmTile } from "../webgpu/ops_gemm.ts";
import { hasShaderF16, isSoftwareAdapter, workgroupSize } from "../webgpu/variants.ts";
import type { GpuWeightFormat } from "../webgpu/weights.ts";
import type {
  Backend,
  DecodeInput,
  ImageFeatures,
  KvCache,
  PickedStep,
  PrefillInput,
  StepOutput,
  TokenPick,
} from "./backend.ts";
import { bitmaskWords, pickFromLogits } from "./cpu_pick.ts";

/** No WebGPU adapter on this machine (cli/wording.ts adds which flag to use instead). */
export class NoGpuAdapter extends InputError {
  /** Creates the error. */
  constructor() {
    super(
      "WebGPU: no GPU adapter available (navigator.gpu.requestAdapter() returned null); " +
        "use the ONNX backend or a machine with a WebGPU driver",
    );
    this.name = "NoGpuAdapter";
  }
}

/** Options of `WebGpuBackend.load`. */
export interface WebGpuBackendOptions {
  /** Receives the one line saying which device and path were chosen. */
  readonly log?: (line: string) => void;
  /** Precision the weights were stored in (a converted folder's q8 / q4 / fp16; default fp32). */
  readonly stored?: string;
  /** Caps the bytes one weight buffer may hold below the adapter's limits (tests the chunking). */
  readonly maxBufferBytes?: number;
  /**
   * The GEMM's inner-loop arithmetic: "auto" (default: f16 where the adapter has shader-f16 and
   * the weights are stored below f32, else f32), or forced; "f16-logic" runs the f16 kernel's
   * code with f32 types (tests it on adapters without shader-f16).
   */
  readonly arithmetic?: "auto" | GemmPrecision;
  /** Key ranges of decode attention (split-KV); default: chosen from the cache length. */
  readonly splitKv?: number;
  /**
   * KV cache storage: "auto" (default: f16 when the weights are stored below f32, else f32),
   * or forced.
   */
  readonly kvCache?: "auto" | "f32" | "f16";
}

/** The GEMM arithmetic for `formats` of stored weights on a device with or without shader-f16. */
export function chooseArithmetic(
  asked: "auto" | GemmPrecision,
  shaderF16: boolean,
  formats: Iterable<GpuWeightFormat>,
): GemmPrecision {
  if (asked !== "auto") return asked;
  // f32 checkpoints keep f32 arithmetic (their parity is 1e-3 of float32 references).
  return shaderF16 && [...formats].some((f) => f !== "f32") ? "f16" : "f32";
}

/** This backend's cache handle: the device cache plus the per-batch step buffers. */
class WebGpuCache implements KvCache {
  constructor(readonly gpu: GpuKvCache, readonly step: StepBuffers) {}
  /** Frees the device buffers. */
  destroy(): void {
    this.gpu.destroy();
    for (const t of Object.values(this.step)) t.buffer.destroy();
  }
  get batchSize(): number {
    return this.gpu.batchSize;
  }
  get length(): number {
    return this.gpu.length;
  }
}

/** Buffers one decode step of a batch reuses: no allocation per token. */
interface StepBuffers {
  readonly positions: GpuTensor;
  readonly logits: GpuTensor;
  /** u32 [B, ceil(V / 32)] grammar bitmask of the step. */
  readonly bits: GpuTensor;
  /** f32 [B] uniform draws of the step (sampling). */
  readonly uniforms: GpuTensor;
  /** Scratch of kernels/sample.wgsl. */
  readonly scratch: GpuTensor;
  /** u32 [B, 4] picks: token, probability bits, flags, candidates (ops_sample.ts). */
  readonly picks: GpuTensor;
}

/** Positions the cache grows by when a batch outlives its reservation. */
const GROW = 256;

/** WebGPU backend; create with `WebGpuBackend.load`. */
export class WebGpuBackend implements Backend {
  readonly vocabSize: number;
  /** Positions, as the ONNX backend (RoPE is computed in the kernel, the limit is shared). */
  readonly contextLength = ROPE_POSITIONS - 1;
  readonly dtype: string;
  /** Image features still on the device, by the object handed out. */
  readonly #features = new WeakMap<ImageFeatures, GpuTensor>();
  #released = false;
  /** Rows whose token the device kernel handed to the CPU (SAMPLE_OVERFLOW / none allowed). */
  cpuPickedRows = 0;
  /** The batch being generated: one at a time; a new prefill frees the previous one. */
  #live: WebGpuCache | null = null;

  private constructor(
    readonly name: string,
    readonly config: PaliGemmaConfig,
    private readonly runner: GpuRunner,
    private readonly model: GpuPaliGemma,
    stored: string,
    readonly storage: ReadonlyMap<GpuWeightFormat, number>,
    /** Bytes of weights on the device. */
    readonly weightBytes: number,
  ) {
    this.vocabSize = config.text.vocabSize;
    this.dtype = stored;
  }

  /** The device, for the models that run beside this one (the VQ-VAE decoder). */
  get gpu(): GpuRunner {
    return this.runner;
  }

  /**
   * Opens the default adapter and uploads `src`'s weights. Throws InputError (exit 3) when there
   * is no adapter, when the adapter lacks what the kernels need, or when a weight does not fit
   * the adapter's buffer limits (the message names the limit).
   */
  static async load(src: ConvertSource, opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const adapter = await findGpuAdapter();
    if (!adapter) throw new NoGpuAdapter();
    const lim = adapter.limits;
    const need: [keyof GPUSupportedLimits, number][] = [
      ["maxComputeInvocationsPerWorkgroup", 256],
      ["maxComputeWorkgroupSizeX", 256],
      ["maxStorageBuffersPerShaderStage", 8],
      ["maxComputeWorkgroupStorageSize", 4096],
    ];
    for (const [k, n] of need) {
      if ((lim[k] as number) < n) {
        throw new InputError(`WebGPU: the adapter's ${k} is ${lim[k]}, the kernels need ${n}`);
      }
    }
    const cap = opts.maxBufferBytes ?? Infinity;
    const limits = {
      maxBufferSize: Math.min(lim.maxBufferSize, cap),
      maxStorageBufferBindingSize: Math.min(lim.maxStorageBufferBindingSize, cap),
    };
    checkModelFits(src.config, limits);
    const runner = new GpuRunner(await requestGpuDevice(adapter));
    try {
      const weights = await uploadWeights(runner, src, limits);
      const f16 = hasShaderF16(runner);
      const arithmetic = chooseArithmetic(opts.arithmetic ?? "auto", f16, weights.formats.keys());
      if (arithmetic === "f16" && !f16) {
        throw new InputError("WebGPU: f16 arithmetic needs the adapter's shader-f16 feature");
      }
      const model = new GpuPaliGemma(runner, src.config, weights, arithmetic);
      model.splitKv = opts.splitKv ?? 0;
      const reduced = [...weights.formats.keys()].some((f) => f !== "f32");
      const kv = opts.kvCache ?? "auto";
      model.kvF16 = (kv === "auto" ? reduced : kv === "f16") &&
        src.config.text.headDim % 2 === 0;
      const info = adapter.info;
      const what = info.description || info.device || info.vendor || "unknown adapter";
      const gb = (weights.bytes / 2 ** 30).toFixed(2);
      const stored = opts.stored ?? "fp32";
      const storage = [...weights.formats].map(([f, n]) => `${n} ${f}`).join(", ");
      const name = `webgpu (${stored}, ${what})`;
      const tile = gemmTile(runner);
      opts.log?.(
        `webgpu: ${what}${isSoftwareAdapter(runner) ? " (software adapter)" : ""}; ${stored}: ` +
          `matrices stored as ${storage}; GEMM arithmetic ${arithmetic} (shader-f16 ${
            f16 ? "available" : "not available"
          }); KV cache ${model.kvF16 ? "f16" : "f32"}; GEMV ${
            workgroupSize(runner, 256)
          } threads, GEMM tile ${4 * tile.ty}×${
            4 * tile.tx
          }×${tile.tk}; ${gb} GiB of weights; maxStorageBufferBindingSize ` +
          `${(lim.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`,
      );
      return new WebGpuBackend(
        name,
        src.config,
        runner,
        model,
        stored,
        weights.formats,
        weights.bytes,
      );
    } catch (err) {
      runner.destroy();
      throw err;
    }
  }

  /** Runs SigLIP + projector on the device; the features stay there for the prefill too. */
  async encodeImages(pixelValues: Float32Array, batchSize: number): Promise<ImageFeatures> {
    const s = this.config.vision.imageSize;
    if (pixelValues.length !== batchSize * 3 * s * s) {
      throw new RangeError(`encodeImages: expected ${batchSize}x3x${s}x${s} pixel values`);
    }
    const feats = await this.model.encode(pixelValues, batchSize);
    const tokens = this.config.numImageTokens;
    const dim = this.config.projectionDim;
    const data = await this.runner.read(feats, batchSize * tokens * dim);
    const out: ImageFeatures = { batchSize, tokens, dim, data };
    this.#features.set(out, feats);
    return out;
  }

  /** The device copy of `image` (uploaded when it came from elsewhere or was used already). */
  #imageOnDevice(image: ImageFeatures): { t: GpuTensor; owned: boolean } {
    // The device copy serves one prefill, then is freed (a later prefill uploads `data` again).
    const t = this.#features.get(image);
    this.#features.delete(image);
    return { t: t ?? this.runner.tensor(image.data, "image_features"), owned: true };
  }

  #stepBuffers(b: number): StepBuffers {
    const r = this.runner;
    return {
      positions: r.zeros(b, "step_positions"),
      logits: r.zeros(b * this.vocabSize, "step_logits"),
      bits: r.zeros(b * bitmaskWords(this.vocabSize), "step_bits"),
      uniforms: r.zeros(b, "step_uniforms"),
      scratch: r.zeros(sampleScratchLength(r, b, this.vocabSize), "step_sample_scratch"),
      picks: r.zeros(4 * b, "step_picks"),
    };
  }

  async #prefill(
    input: PrefillInput,
    keep: number,
  ): Promise<{ logits: GpuTensor; kept: number; cache: WebGpuCache }> {
    const { batchSize: b, length: n } = input;
    if (
      input.image &&
      (input.image.batchSize !== b || input.image.dim !== this.config.text.hiddenSize)
    ) {
      throw new RangeError(
        `prefill: ${input.image.batchSize} images of width ${input.image.dim} for ${b} rows`,
      );
    }
    this.#live?.destroy();
    this.#live = null;
    const capacity = Math.min(this.contextLength + 1, n + (input.reserve ?? GROW));
    const gpu = this.model.newCache(b, Math.max(capacity, n + 1));
    const img = input.image ? this.#imageOnDevice(input.image) : null;
    try {
      const logits = await this.model.prefill(
        gpu,
        input.inputIds,
        n,
        input.attentionMask,
        input.positionIds,
        img?.t ?? null,
        this.config.numImageTokens,
        keep,
      );
      const kept = keep <= 0 || keep > n ? n : keep;
      this.#live = new WebGpuCache(gpu, this.#stepBuffers(b));
      return { logits, kept, cache: this.#live };
    } catch (err) {
      gpu.destroy();
      throw err;
    } finally {
      if (img?.owned) img.t.buffer.destroy();
    }
  }

  async #decode(input: DecodeInput): Promise<WebGpuCache> {
    const cache = input.cache;
    if (!(cache instanceof WebGpuCache)) throw new TypeError("decode: cache from another backend");
    const b = cache.batchSize;
    if (input.attentionMask.length !== b * (cache.length + 1)) {
      throw new RangeError(`decode: mask does not match ${b} rows of ${cache.length + 1}`);
    }
    let gpu = cache.gpu;
    if (gpu.length + 1 > gpu.capacity) {
      gpu = await this.model.grow(gpu, Math.min(this.contextLength + 1, gpu.capacity + GROW));
    }
    this.runner.write(cache.step.positions, input.positionIds);
    await this.model.decode(
      gpu,
      input.tokens,
      cache.step.positions,
      input.attentionMask,
      cache.step.logits,
    );
    if (gpu === cache.gpu) return cache;
    const grown = new WebGpuCache(gpu, cache.step);
    if (this.#live === cache) this.#live = grown;
    return grown;
  }

  /**
   * Uploads what the device's token choice needs (grammar bitmask, uniform draws) before the
   * step is recorded, so writing them does not split the step's submission; returns whether a
   * mask applies.
   */
  #stagePick(step: StepBuffers, b: number, pick: TokenPick): boolean {
    const v = this.vocabSize;
    if (isSampling(pick.sampling)) {
      if (!pick.draws || pick.draws.length < b) {
        throw new RangeError(`pick: sampling needs ${b} uniform draws`);
      }
      this.runner.write(step.uniforms, Float32Array.from(pick.draws.subarray(0, b)));
    }
    const masked = pick.allowed?.some((m) => m !== null) ?? false;
    if (masked) {
      const words = bitmaskWords(v);
      const all = new Uint32Array(b * words);
      for (let r = 0; r < b; r++) {
        const m = pick.allowed![r];
        if (m) all.set(m.subarray(0, words), r * words);
        else all.fill(0xffffffff, r * words, (r + 1) * words);
      }
      this.runner.write(step.bits, all);
    }
    return masked;
  }

  /**
   * Picks each row's token from `logits` [b, V] on the device (kernels/sample.wgsl); a row the
   * kernel flags (candidates over its capacity, or no allowed id) is picked on the CPU from its
   * logits, as the ONNX backend picks.
   */
  async #pick(
    logits: GpuTensor,
    cache: WebGpuCache,
    pick: TokenPick,
    masked: boolean,
  ): Promise<PickedStep> {
    const b = cache.batchSize;
    const v = this.vocabSize;
    const step = cache.step;
    await sampleTokens(this.runner, {
      logits,
      rows: b,
      vocab: v,
      out: step.picks,
      scratch: step.scratch,
      sampling: pick.sampling,
      uniforms: isSampling(pick.sampling) ? step.uniforms : undefined,
      mask: masked ? step.bits : undefined,
    });
    const got = decodeSamples(await this.runner.readU32(step.picks, 4 * b), b);
    const tokens = Int32Array.from(got, (g) => g.token);
    const probs = pick.withProbs ? Float64Array.from(got, (g) => g.prob) : null;
    const cpu = got.flatMap((g, r) => g.flags & (SAMPLE_OVERFLOW | SAMPLE_NONE_ALLOWED) ? [r] : []);
    if (cpu.length > 0) {
      this.cpuPickedRows += cpu.length;
      const host = await this.runner.read(logits, b * v);
      for (const r of cpu) {
        const one = pickFromLogits(host.subarray(r * v, (r + 1) * v), 1, v, {
          sampling: pick.sampling,
          draws: pick.draws ? Float64Array.of(pick.draws[r]) : undefined,
          allowed: pick.allowed ? [pick.allowed[r]] : undefined,
          withProbs: pick.withProbs,
        });
        tokens[r] = one.tokens[0];
        if (probs && one.probs) probs[r] = one.probs[0];
      }
    }
    return { tokens, probs, cache };
  }

  /** Prefill over a left-padded batch, then the choice of each row's first token. */
  async prefill(input: PrefillInput, pick: TokenPick): Promise<PickedStep> {
    const out = await this.#prefill(input, 1);
    try {
      const masked = this.#stagePick(out.cache.step, input.batchSize, pick);
      return await this.#pick(out.logits, out.cache, pick, masked);
    } finally {
      out.logits.buffer.destroy();
    }
  }

  /** One decode step, then the choice of each row's next token. */
  async decode(input: DecodeInput, pick: TokenPick): Promise<PickedStep> {
    const given = input.cache;
    if (!(given instanceof WebGpuCache)) throw new TypeError("decode: cache from another backend");
    const masked = this.#stagePick(given.step, given.batchSize, pick);
    const cache = await this.#decode(input);
    return await this.#pick(cache.step.logits, cache, pick, masked);
  }

  /** Prefill returning the last `logitsToKeep` positions' logits (0 = all). */
  async prefillLogits(input: PrefillInput): Promise<StepOutput> {
    const out = await this.#prefill(input, input.logitsToKeep ?? 1);
    try {
      const b = input.batchSize;
      const logits = await this.runner.read(out.logits, b * out.kept * this.vocabSize);
      return { logits, kept: out.kept, cache: out.cache };
    } finally {
      out.logits.buffer.destroy();
    }
  }

  /** Decode step returning the logits. */
  async decodeLogits(input: DecodeInput): Promise<StepOutput> {
    const cache = await this.#decode(input);
    const logits = await this.runner.read(cache.step.logits, cache.batchSize * this.vocabSize);
    return { logits, kept: 1, cache };
  }

  /** Frees the device (weights, caches and scratch buffers with it). */
  release(): Promise<void> {
    if (!this.#released) {
      this.#released = true;
      this.#live?.destroy();
      this.model.destroy();
      this.runner.destroy();
    }
    return Promise.resolve();
  }
}
