/**
 * A converted model folder's weights read back from its ONNX graphs' initializers, as canonical
 * HF tensors (float32, Linear weights [out, in]), so the WebGPU backend runs the same folder the
 * ONNX backend runs, at any precision: fp32 and fp16 weights are transposed back, q8/q4 blocks
 * (MatMulNBits layout, lib/convert/quantize.ts) and DynamicQuantizeMatMul columns are dequantized,
 * and the decoder's RMSNorm scales, stored as (1 + w) / input-scaling divisor, become w again (the
 * MLP input scaling stays folded into the gate/up columns, so the product is unchanged).
 * Beside the float32 view, `storedMatrices` gives the Linear weights in their stored precision
 * (f16 halves in [out, in] order, or the q8/q4 MatMulNBits blocks as they are), so a device
 * backend keeps them at the folder's size.
 * @module
 */

import * as fs from "node:fs";
import { dirname, join } from "node:path";
import { toFloat32 } from "../checkpoint/dtype.ts";
import type { TensorRef } from "../checkpoint/tensor.ts";
import { blockCount, dequantizeRows, type QuantBits } from "../convert/quantize.ts";
import type { ConvertSource } from "../convert/source.ts";
import { InputError } from "../errors.ts";
import { isTied } from "../model/config.ts";
import type { Precision } from "../model/precision.ts";
import { LM_HEAD, PROJECTOR_PREFIX, TEXT_PREFIX, VISION_PREFIX } from "../model/names.ts";
import { DataType, onnx } from "../onnx/proto.ts";
import { type GraphName, GRAPHS, type ModelDir } from "./model_dir.ts";

/** A Linear weight [n, k] in its stored precision (HF [out, in] row order). */
export type StoredMatrix =
  | {
    readonly format: "f16";
    /** n·k little-endian IEEE halves, row-major [n, k]. */
    readonly halves: Uint8Array;
  }
  | {
    readonly format: "q8" | "q4";
    /** Codes [n, blocks, blockSize·bits/8] (4-bit: even k in the low nibble). */
    readonly codes: Uint8Array;
    /** Scales [n·blocks]. */
    readonly scales: Float32Array;
    /** Zero points, absent when symmetric. */
    readonly zeros?: Uint8Array;
    /** MatMulNBits nibbles ([n, ceil(blocks/2)]) or one byte per block ([n, blocks]). */
    readonly zeroLayout: "nibbles" | "bytes";
    readonly blockSize: number;
  };

/** A converted folder's canonical tensors plus its Linear weights in stored precision. */
export interface OnnxWeightsSource extends ConvertSource {
  /**
   * Readers of the stored form of Linear weights (canonical `.weight` names) that are not float32;
   * a weight without an entry is read from `tensors`.
   */
  readonly storedMatrices: ReadonlyMap<string, () => StoredMatrix | null>;
}

/** Transposes [rows, cols] 16-bit values (halves) to [cols, rows]. */
function transpose16(bytes: Uint8Array, rows: number, cols: number): Uint8Array {
  const a = new Uint16Array(bytes.buffer, bytes.byteOffset, rows * cols);
  const out = new Uint16Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  }
  return new Uint8Array(out.buffer);
}

/** The fields of an initializer this reader uses. */
interface Initializer {
  readonly name: string;
  readonly dims: readonly (number | { toNumber(): number })[];
  readonly dataType: number;
  readonly rawData?: Uint8Array;
  readonly floatData?: readonly number[];
  readonly externalData?: readonly { key: string; value: string }[];
  readonly dataLocation?: number;
}

/** One graph's initializers by name, with the folder its external data is relative to. */
interface GraphWeights {
  readonly path: string;
  readonly byName: ReadonlyMap<string, Initializer>;
}

function dimsOf(t: Initializer): number[] {
  return t.dims.map((d) => (typeof d === "number" ? d : d.toNumber()));
}

/** The initializer's bytes (inline, float_data or external data). */
function bytesOf(g: GraphWeights, t: Initializer): Uint8Array {
  if (t.dataLocation === 1 || (t.externalData?.length ?? 0) > 0) {
    const kv = new Map((t.externalData ?? []).map((e) => [e.key, e.value]));
    const file = join(dirname(g.path), kv.get("location") ?? "");
    const offset = Number(kv.get("offset") ?? 0);
    const length = Number(kv.get("length") ?? 0);
    const fd = fs.openSync(file, "r");
    try {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n <= 0) throw new InputError(`${file}: external data of ${t.name} is cut short`);
        done += n;
      }
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }
  if (t.rawData && t.rawData.length > 0) {
    // A copy: protobufjs may hand out a Buffer view at any offset into the file's bytes.
    const out = new Uint8Array(t.rawData.length);
    out.set(t.rawData);
    return out;
  }
  if (t.floatData && t.floatData.length > 0) {
    const f = Float32Array.from(t.floatData);
    return new Uint8Array(f.buffer);
  }
  return new Uint8Array(0);
}

function readGraph(path: string): GraphWeights {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (err) {
    throw new InputError(`${path}: cannot read (${err instanceof Error ? err.message : err})`);
  }
  const model = onnx.ModelProto.decode(bytes) as unknown as {
    graph?: { initializer?: Initializer[] };
  };
  const byName = new Map<string, Initializer>();
  for (const t of model.graph?.initializer ?? []) byName.set(t.name, t);
  return { path, byName };
}

/** Float values of a float initializer (FLOAT or FLOAT16). */
function floats(g: GraphWeights, t: Initializer): Float32Array {
  const b = bytesOf(g, t);
  if (t.dataType === DataType.FLOAT) return toFloat32(b, "F32");
  if (t.dataType === DataType.FLOAT16) return toFloat32(b, "F16");
  throw new InputError(`${g.path}: initializer ${t.name} is not a float tensor`);
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  }
  return out;
}

/** Unpacks MatMulNBits zero points ([rows, ceil(blocks/2)] nibbles for 4 bits) to one byte each. */
function unpackZeros(z: Uint8Array, rows: number, blocks: number, bits: QuantBits): Uint8Array {
  if (bits === 8) return z.slice(0, rows * blocks);
  const per = Math.ceil(blocks / 2);
  const out = new Uint8Array(rows * blocks);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      out[r * blocks + b] = (z[r * per + (b >> 1)] >> ((b & 1) * 4)) & 15;
    }
  }
  return out;
}

/** A tensor computed when read. */
function lazy(name: string, shape: readonly number[], make: () => Float32Array): TensorRef {
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    name,
    dtype: "F32",
    shape,
    byteLength: n * 4,
    read(offset = 0, length = n * 4 - offset) {
      const f = make();
      if (f.length !== n) {
        throw new InputError(`${name}: ${f.length} values read back, expected ${n}`);
      }
      return Promise.resolve(new Uint8Array(f.buffer, f.byteOffset + offset, length));
    },
  };
}

/**
 * The canonical weights of `dir`'s graphs at `dtype` (see the module doc); refused with
 * InputError when an expected initializer is missing or of another kind.
 */
export function openOnnxWeights(dir: ModelDir, dtype: Precision): OnnxWeightsSource {
  const cfg = dir.config;
  const matrices = new Map<string, () => StoredMatrix | null>();
  const graphs = new Map<GraphName, GraphWeights>();
  for (const g of GRAPHS) graphs.set(g, readGraph(dir.graph(g, dtype)));
  const tensors = new Map<string, TensorRef>();
  const find = (g: GraphName, name: string): Initializer | undefined =>
    graphs.get(g)!.byName.get(name);
  const need = (g: GraphName, name: string): Initializer => {
    const t = find(g, name);
    if (!t) throw new InputError(`${graphs.get(g)!.path}: no initializer ${name}`);
    return t;
  };
  const plain = (g: GraphName, stored: string, canonical: string, shape: number[], add = 0) => {
    tensors.set(
      canonical,
      lazy(canonical, shape, () => {
        const f = floats(graphs.get(g)!, need(g, stored));
        if (add !== 0) { for (let i = 0; i < f.length; i++) f[i] += add; }
        return f;
      }),
    );
  };
  /** A Linear weight [n, k] as `linear()` or the LM head stored it. */
  const linear = (
    g: GraphName,
    stored: string,
    canonical: string,
    n: number,
    k: number,
    head = false,
  ) => {
    const gw = graphs.get(g)!;
    // The LM head's blocks are `lm_head.q8`, its float weight `lm_head.weight`.
    const base = head ? "lm_head" : stored;
    tensors.set(
      canonical,
      lazy(canonical, [n, k], () => {
        const f = find(g, head ? "lm_head.weight" : stored);
        // MatMul weights are stored [k, n]; the LM head (Gemm with transB) keeps [n, k].
        if (f) return head ? floats(gw, f) : transpose(floats(gw, f), k, n);
        const u8 = find(g, `${stored}.u8`);
        if (u8) {
          const codes = bytesOf(gw, u8);
          const scales = floats(gw, need(g, `${stored}.scales`));
          const out = new Float32Array(n * k);
          for (let r = 0; r < n; r++) {
            for (let c = 0; c < k; c++) out[r * k + c] = (codes[c * n + r] - 128) * scales[r];
          }
          return out;
        }
        for (const bits of [8, 4] as const) {
          const q = find(g, `${base}.q${bits}`);
          if (!q) continue;
          const [, blocks, blob] = dimsOf(q);
          const blockSize = (blob * 8) / bits;
          if (blockCount(k, blockSize) !== blocks) {
            throw new InputError(`${gw.path}: ${base}.q${bits} has ${blocks} blocks for ${k}`);
          }
          const zt = find(g, `${base}.zero_points`);
          const zeros = zt ? unpackZeros(bytesOf(gw, zt), n, blocks, bits) : undefined;
          return dequantizeRows(
            {
              codes: bytesOf(gw, q),
              scales: floats(gw, need(g, `${base}.scales`)),
              ...(zeros ? { zeros } : {}),
            },
            n,
            k,
            { bits, blockSize, asymmetric: zeros !== undefined },
          );
        }
        throw new InputError(`${gw.path}: no initializer for ${stored} (float, .u8, .q8 or .q4)`);
      }),
    );
    matrices.set(canonical, (): StoredMatrix | null => {
      const f = find(g, head ? "lm_head.weight" : stored);
      if (f) {
        if (f.dataType !== DataType.FLOAT16) return null;
        const halves = bytesOf(gw, f);
        return { format: "f16", halves: head ? halves : transpose16(halves, k, n) };
      }
      for (const bits of [8, 4] as const) {
        const q = find(g, `${base}.q${bits}`);
        if (!q) continue;
        const [, blocks, blob] = dimsOf(q);
        const zt = find(g, `${base}.zero_points`);
        return {
          format: bits === 8 ? "q8" : "q4",
          codes: bytesOf(gw, q).subarray(0, n * blocks * blob),
          scales: floats(gw, need(g, `${base}.scales`)).subarray(0, n * blocks),
          ...(zt ? { zeros: bytesOf(gw, zt) } : {}),
          zeroLayout: bits === 4 ? "nibbles" : "bytes",
          blockSize: (blob * 8) / bits,
        };
      }
      return null;
    });
  };

  // Vision tower and projector: stored under their canonical names, biases as `<weight>.bias`.
  const v = cfg.vision;
  const dv = v.hiddenSize;
  const V = VISION_PREFIX;
  const grid = Math.floor(v.imageSize / v.patchSize);
  plain(
    "vision_encoder",
    `${V}embeddings.patch_embedding.weight`,
    `${V}embeddings.patch_embedding.weight`,
    [dv, 3, v.patchSize, v.patchSize],
  );
  plain(
    "vision_encoder",
    `${V}embeddings.patch_embedding.bias`,
    `${V}embeddings.patch_embedding.bias`,
    [dv],
  );
  plain(
    "vision_encoder",
    `${V}embeddings.position_embedding.weight`,
    `${V}embeddings.position_embedding.weight`,
    [grid * grid, dv],
  );
  const vlin = (name: string, n: number, k: number) => {
    linear("vision_encoder", `${name}.weight`, `${name}.weight`, n, k);
    plain("vision_encoder", `${name}.weight.bias`, `${name}.bias`, [n]);
  };
  for (let i = 0; i < v.numLayers; i++) {
    const p = `${V}encoder.layers.${i}.`;
    for (const ln of ["layer_norm1", "layer_norm2"]) {
      plain("vision_encoder", `${p}${ln}.weight`, `${p}${ln}.weight`, [dv]);
      plain("vision_encoder", `${p}${ln}.bias`, `${p}${ln}.bias`, [dv]);
    }
    for (const a of ["q_proj", "k_proj", "v_proj", "out_proj"]) vlin(`${p}self_attn.${a}`, dv, dv);
    vlin(`${p}mlp.fc1`, v.intermediateSize, dv);
    vlin(`${p}mlp.fc2`, dv, v.intermediateSize);
  }
  plain("vision_encoder", `${V}post_layernorm.weight`, `${V}post_layernorm.weight`, [dv]);
  plain("vision_encoder", `${V}post_layernorm.bias`, `${V}post_layernorm.bias`, [dv]);
  vlin(`${PROJECTOR_PREFIX}linear`, cfg.projectionDim, dv);

  // Decoder: RMSNorm scales stored as (1 + w) / divisor.
  const t = cfg.text;
  const d = t.hiddenSize;
  const hd = t.headDim;
  const T = TEXT_PREFIX;
  const g2 = t.variant === "gemma2";
  const norms = g2
    ? [
      "input_layernorm",
      "post_attention_layernorm",
      "pre_feedforward_layernorm",
      "post_feedforward_layernorm",
    ]
    : ["input_layernorm", "post_attention_layernorm"];
  for (let i = 0; i < t.numLayers; i++) {
    const p = `${T}layers.${i}.`;
    for (const nm of norms) {
      plain("decoder_model_merged", `${p}${nm}.weight`, `${p}${nm}.weight`, [d], -1);
    }
    const lin = (k: string, n: number, kk: number) =>
      linear("decoder_model_merged", `${p}${k}.weight`, `${p}${k}.weight`, n, kk);
    lin("self_attn.q_proj", t.numHeads * hd, d);
    lin("self_attn.k_proj", t.numKvHeads * hd, d);
    lin("self_attn.v_proj", t.numKvHeads * hd, d);
    lin("self_attn.o_proj", d, t.numHeads * hd);
    lin("mlp.gate_proj", t.intermediateSize, d);
    lin("mlp.up_proj", t.intermediateSize, d);
    lin("mlp.down_proj", d, t.intermediateSize);
  }
  plain("decoder_model_merged", `${T}norm.weight`, `${T}norm.weight`, [d], -1);

  // Embedding table (its first vocab rows; the graph may pad up to the <image> id).
  const EMBED = `${T}embed_tokens.weight`;
  const vocab = t.vocabSize;
  const eg = graphs.get("embed_tokens")!;
  tensors.set(
    EMBED,
    lazy(EMBED, [vocab, d], () => {
      const f = find("embed_tokens", EMBED);
      if (f) return floats(eg, f).slice(0, vocab * d);
      for (const bits of [8, 4] as const) {
        const q = find("embed_tokens", `${EMBED}.q${bits}`);
        if (!q) continue;
        const [rows, , blob] = dimsOf(q);
        const blockSize = (blob * 8) / bits;
        const zt = find("embed_tokens", `${EMBED}.zero_points`);
        const zeros = zt ? bytesOf(eg, zt) : undefined;
        const all = dequantizeRows(
          {
            codes: bytesOf(eg, q),
            scales: floats(eg, need("embed_tokens", `${EMBED}.scales`)),
            ...(zeros ? { zeros } : {}),
          },
          rows,
          d,
          { bits, blockSize, asymmetric: zeros !== undefined },
        );
        return all.slice(0, vocab * d);
      }
      throw new InputError(`${eg.path}: no initializer for ${EMBED}`);
    }),
  );
  matrices.set(EMBED, (): StoredMatrix | null => {
    const f = find("embed_tokens", EMBED);
    if (f) {
      return f.dataType === DataType.FLOAT16
        ? { format: "f16", halves: bytesOf(eg, f).subarray(0, 2 * vocab * d) }
        : null;
    }
    for (const bits of [8, 4] as const) {
      const q = find("embed_tokens", `${EMBED}.q${bits}`);
      if (!q) continue;
      const [, blocks, blob] = dimsOf(q);
      const zt = find("embed_tokens", `${EMBED}.zero_points`);
      return {
        format: bits === 8 ? "q8" : "q4",
        codes: bytesOf(eg, q).subarray(0, vocab * blocks * blob),
        scales: floats(eg, need("embed_tokens", `${EMBED}.scales`)).subarray(0, vocab * blocks),
        ...(zt ? { zeros: bytesOf(eg, zt).subarray(0, vocab * blocks) } : {}),
        zeroLayout: "bytes",
        blockSize: (blob * 8) / bits,
      };
    }
    return null;
  });
  if (!isTied(cfg)) linear("decoder_model_merged", "lm_head.weight", LM_HEAD, vocab, d, true);
  return { path: dir.path, config: cfg, tensors, storedMatrices: matrices };
}
