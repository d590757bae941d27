/**
 * Test helper: runs a converted model folder's three graphs with onnxruntime-node the way
 * transformers.js does (embed, vision, scatter image features, decoder with a KV cache).
 * @module
 */

import * as ort from "onnxruntime-node";
import { join } from "node:path";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";

/** Decoder outputs of one call. */
export interface DecodeResult {
  /** Logits [B, keep, V]. */
  readonly logits: Float32Array;
  /** Kept positions per row. */
  readonly keep: number;
  /** present.{i}.{key,value} in layer order, key then value. */
  readonly present: ort.Tensor[];
}

/** The three sessions of one precision of a converted folder. */
export class OnnxModel {
  private constructor(
    readonly cfg: PaliGemmaConfig,
    readonly vision: ort.InferenceSession,
    readonly embed: ort.InferenceSession,
    readonly decoder: ort.InferenceSession,
  ) {}

  /** Loads `onnx/*{suffix}.onnx` from `dir`. */
  static async load(dir: string, suffix: string, cfg: PaliGemmaConfig): Promise<OnnxModel> {
    const open = (n: string) =>
      ort.InferenceSession.create(join(dir, "onnx", `${n}${suffix}.onnx`), {
        intraOpNumThreads: 2,
      });
    return new OnnxModel(
      cfg,
      await open("vision_encoder"),
      await open("embed_tokens"),
      await open("decoder_model_merged"),
    );
  }

  /** image_features [B, N, D] for pixel_values [B,3,S,S]. */
  async imageFeatures(pixels: Float32Array, batch: number): Promise<Float32Array> {
    const s = this.cfg.vision.imageSize;
    const r = await this.vision.run({
      pixel_values: new ort.Tensor("float32", pixels, [batch, 3, s, s]),
    });
    return r.image_features.data as Float32Array;
  }

  /** inputs_embeds [B, S, D] for equal-length rows of ids. */
  async embedIds(ids: number[][]): Promise<Float32Array> {
    const flat = BigInt64Array.from(ids.flat().map(BigInt));
    const r = await this.embed.run({
      input_ids: new ort.Tensor("int64", flat, [ids.length, ids[0].length]),
    });
    return r.inputs_embeds.data as Float32Array;
  }

  /** Embeddings with the image features written over the `<image>` tokens, row by row in order. */
  async mergedEmbeds(ids: number[][], pixels: Float32Array | null): Promise<Float32Array> {
    const d = this.cfg.text.hiddenSize;
    const e = await this.embedIds(ids);
    if (!pixels) return e;
    const feats = await this.imageFeatures(pixels, ids.length);
    let next = 0;
    ids.flat().forEach((id, i) => {
      if (id === this.cfg.imageTokenIndex) e.set(feats.subarray(next++ * d, next * d), i * d);
    });
    return e;
  }

  /** One decoder call; `past` null means an empty cache. */
  async decode(
    embeds: Float32Array,
    batch: number,
    mask: number[][],
    positions: number[][],
    past: ort.Tensor[] | null,
    keep = 0,
  ): Promise<DecodeResult> {
    const t = this.cfg.text;
    const seq = positions[0].length;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor("float32", embeds, [batch, seq, t.hiddenSize]),
      attention_mask: new ort.Tensor("int64", BigInt64Array.from(mask.flat().map(BigInt)), [
        batch,
        mask[0].length,
      ]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from(positions.flat().map(BigInt)), [
        batch,
        seq,
      ]),
      num_logits_to_keep: new ort.Tensor("int64", BigInt64Array.from([BigInt(keep)]), []),
    };
    for (let i = 0; i < t.numLayers; i++) {
      for (const [j, kv] of ["key", "value"].entries()) {
        feeds[`past_key_values.${i}.${kv}`] = past?.[2 * i + j] ??
          new ort.Tensor("float32", new Float32Array(0), [batch, t.numKvHeads, 0, t.headDim]);
      }
    }
    const r = await this.decoder.run(feeds);
    const present: ort.Tensor[] = [];
    for (let i = 0; i < t.numLayers; i++) {
      present.push(r[`present.${i}.key`], r[`present.${i}.value`]);
    }
    return { logits: r.logits.data as Float32Array, keep: r.logits.dims[1], present };
  }

  /** Releases the sessions. */
  async release(): Promise<void> {
    await Promise.all([this.vision.release(), this.embed.release(), this.decoder.release()]);
  }
}

/** max |a - b| / max |b|. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Index of the largest value in each row of width `w`. */
export function argmaxRows(a: ArrayLike<number>, w: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / w; r++) {
    let best = 0;
    for (let i = 1; i < w; i++) if (a[r * w + i] > a[r * w + best]) best = i;
    out.push(best);
  }
  return out;
}
