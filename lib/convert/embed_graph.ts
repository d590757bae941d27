/**
 * The `embed_tokens` graph: `input_ids` [B,S] → `inputs_embeds` [B,S,D], a plain table lookup
 * (Gemma's sqrt(D) scale is applied in the decoder). The table is streamed in row chunks; q8/q4
 * tables hold block-quantised rows that the graph dequantises after the lookup.
 * @module
 */

import { fromFloat32 } from "../checkpoint/dtype.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import type { OnnxModelWriter } from "../onnx/builder.ts";
import { DataType } from "../onnx/proto.ts";
import { f32Bytes, type WeightFormat } from "./layers.ts";
import { blockCount, quantizeRows } from "./quantize.ts";
import { type ConvertSource, readRowChunks } from "./source.ts";

/** Canonical name of the token embedding table. */
export const EMBED = "language_model.model.embed_tokens.weight";

/**
 * Rows of the exported table: the checkpoint's rows, plus zero rows up to the `<image>` id when the
 * checkpoint lacks it (big_vision tables stop at 257152; the decoder never sees those rows,
 * because image features replace them).
 */
export function embedRows(cfg: PaliGemmaConfig): number {
  return Math.max(cfg.text.vocabSize, cfg.imageTokenIndex + 1);
}

/** The embedding table as float32 row chunks, padded with zero rows to `embedRows`. */
export async function* embedChunks(src: ConvertSource): AsyncGenerator<Float32Array> {
  const { vocabSize: vocab, hiddenSize: d } = src.config.text;
  yield* readRowChunks(src, EMBED, [vocab, d], embedChunkRows(d));
  const extra = embedRows(src.config) - vocab;
  if (extra > 0) yield new Float32Array(extra * d);
}

/** Rows per chunk when streaming a table of width `d` (about 64 MB of float32). */
export function embedChunkRows(d: number): number {
  return Math.max(1, Math.floor((16 << 20) / d));
}

/** Builds the embedding graph into `g`. */
export async function buildEmbedGraph(
  g: OnnxModelWriter,
  src: ConvertSource,
  fmt: WeightFormat,
  progress: (done: number, total: number) => void = () => {},
): Promise<void> {
  const d = src.config.text.hiddenSize;
  const vocab = embedRows(src.config);
  const ids = g.input("input_ids", DataType.INT64, ["batch_size", "sequence_length"]);
  async function* chunks(): AsyncGenerator<Float32Array> {
    let done = 0;
    for await (const c of embedChunks(src)) {
      yield c;
      done += c.length / d;
      progress(done, vocab);
    }
  }
  let out: string;
  if (!fmt.quant) {
    const half = fmt.precision === "fp16";
    const bytes = async function* (): AsyncGenerator<Uint8Array> {
      for await (const c of chunks()) yield half ? fromFloat32(c, "F16") : f32Bytes(c);
    };
    const type = half ? DataType.FLOAT16 : DataType.FLOAT;
    const table = await g.weight(EMBED, type, [vocab, d], bytes());
    out = g.op("Gather", [table, ids], { axis: 0 });
    if (half) out = g.op("Cast", [out], { to: DataType.FLOAT });
  } else {
    const scheme = fmt.quant.table;
    const { bits, blockSize } = scheme;
    const blocks = blockCount(d, blockSize);
    const blob = (blockSize * bits) / 8;
    const scales = new Float32Array(vocab * blocks);
    const zeros = scheme.asymmetric ? new Uint8Array(vocab * blocks) : null;
    let row = 0;
    const codes = async function* (): AsyncGenerator<Uint8Array> {
      for await (const c of chunks()) {
        const rows = c.length / d;
        const q = quantizeRows(c, rows, d, scheme);
        scales.set(q.scales, row * blocks);
        if (zeros && q.zeros) zeros.set(q.zeros, row * blocks);
        row += rows;
        yield q.codes;
      }
    };
    const table = await g.weight(
      `${EMBED}.q${bits}`,
      DataType.UINT8,
      [vocab, blocks, blob],
      codes(),
    );
    const sc = await g.weight(`${EMBED}.scales`, DataType.FLOAT, [vocab, blocks], f32Bytes(scales));
    const picked = g.op("Gather", [table, ids], { axis: 0 });
    let codesF: string;
    if (bits === 8) {
      codesF = g.op("Cast", [picked], { to: DataType.FLOAT });
    } else {
      const wide = g.op("Cast", [picked], { to: DataType.INT32 });
      const sixteen = g.small(DataType.INT32, [], new Uint8Array(new Int32Array([16]).buffer));
      const hi = g.op("Div", [wide, sixteen]);
      const lo = g.op("Sub", [wide, g.op("Mul", [hi, sixteen])]);
      const axis = g.constI64([-1]);
      const pair = g.op("Concat", [g.op("Unsqueeze", [lo, axis]), g.op("Unsqueeze", [hi, axis])], {
        axis: -1,
      });
      const unpacked = g.op("Reshape", [pair, g.constI64([0, 0, blocks, blockSize])]);
      codesF = g.op("Cast", [unpacked], { to: DataType.FLOAT });
    }
    let zero = g.constF32([1 << (bits - 1)], []);
    if (zeros) {
      const zt = await g.weight(`${EMBED}.zero_points`, DataType.UINT8, [vocab, blocks], zeros);
      const picked = g.op("Gather", [zt, ids], { axis: 0 });
      zero = g.op("Unsqueeze", [g.op("Cast", [picked], { to: DataType.FLOAT }), g.constI64([-1])]);
    }
    const centred = g.op("Sub", [codesF, zero]);
    const s = g.op("Unsqueeze", [g.op("Gather", [sc, ids], { axis: 0 }), g.constI64([-1])]);
    out = g.op("Reshape", [g.op("Mul", [centred, s]), g.constI64([0, 0, -1])]);
    if (blocks * blockSize !== d) {
      out = g.op("Slice", [out, g.constI64([0]), g.constI64([d]), g.constI64([2])]);
    }
  }
  g.output(out, "inputs_embeds", DataType.FLOAT, ["batch_size", "sequence_length", d]);
}
