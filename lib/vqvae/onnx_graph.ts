/**
 * Writes `vqvae_decoder.onnx`: input `codes` int64 [batch, 16] → output `masks` float32
 * [batch, 64, 64], the same maths as the tests' reference tests/vqvae/cpu_reference.ts (Gather,
 * Reshape, Transpose, Conv, ConvTranspose, Relu, Add). Weights are stored inline (about 3 MB);
 * written atomically.
 * @module
 */

import { basename, dirname, join } from "node:path";
import { describeFsError, FsError } from "../errors.ts";
import { OnnxModelWriter } from "../onnx/builder.ts";
import { DataType } from "../onnx/proto.ts";
import type { ConvWeights, VqvaeWeights } from "./weights.ts";

/** File name of the decoder graph inside a model folder. */
export const VQVAE_ONNX = "vqvae_decoder.onnx";

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function conv(
  g: OnnxModelWriter,
  x: string,
  p: ConvWeights,
  name: string,
  pad: number,
): Promise<string> {
  const w = await g.weight(`${name}.weight`, DataType.FLOAT, p.shape, bytes(p.weight));
  const b = await g.weight(`${name}.bias`, DataType.FLOAT, [p.bias.length], bytes(p.bias));
  return g.op("Conv", [x, w, b], {
    kernel_shape: [p.shape[2], p.shape[3]],
    pads: [pad, pad, pad, pad],
    strides: [1, 1],
  });
}

async function convTranspose(
  g: OnnxModelWriter,
  x: string,
  p: ConvWeights,
  name: string,
): Promise<string> {
  const w = await g.weight(`${name}.weight`, DataType.FLOAT, p.shape, bytes(p.weight));
  const b = await g.weight(`${name}.bias`, DataType.FLOAT, [p.bias.length], bytes(p.bias));
  return g.op("ConvTranspose", [x, w, b], {
    kernel_shape: [4, 4],
    pads: [1, 1, 1, 1],
    strides: [2, 2],
  });
}

/** Builds the decoder graph into an open writer. */
export async function buildVqvaeGraph(g: OnnxModelWriter, wts: VqvaeWeights): Promise<void> {
  const codes = g.input("codes", DataType.INT64, ["batch", 16]);
  const table = await g.weight(
    "_vq_vae._embedding",
    DataType.FLOAT,
    [wts.codes, wts.dim],
    bytes(wts.embedding),
  );
  const rows = g.op("Gather", [table, codes], { axis: 0 });
  const grid = g.op("Reshape", [rows, g.constI64([-1, 4, 4, wts.dim])]);
  let x = g.op("Transpose", [grid], { perm: [0, 3, 1, 2] });
  x = g.op("Relu", [await conv(g, x, wts.conv0, "decoder.0", 0)]);
  for (const [bi, block] of wts.res.entries()) {
    const p = `decoder.${2 + bi}.net`;
    let y = g.op("Relu", [await conv(g, x, block.conv0, `${p}.0`, 1)]);
    y = g.op("Relu", [await conv(g, y, block.conv1, `${p}.2`, 1)]);
    y = await conv(g, y, block.conv2, `${p}.4`, 0);
    x = g.op("Add", [y, x]);
  }
  for (const [i, up] of wts.up.entries()) {
    x = g.op("Relu", [await convTranspose(g, x, up, `decoder.${4 + 2 * i}`)]);
  }
  x = await conv(g, x, wts.out, "decoder.12", 0);
  const masks = g.op("Reshape", [x, g.constI64([-1, 64, 64])]);
  g.output(masks, "masks", DataType.FLOAT, ["batch", 64, 64]);
}

/** Writes the decoder graph to `path` (temporary name, then renamed). */
export async function writeVqvaeOnnx(wts: VqvaeWeights, path: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${crypto.randomUUID().slice(0, 8)}`);
  // Failures on the temporary file are reported under the file's final name.
  const named = (err: unknown) => err instanceof FsError && err.path === tmp ? err.at(path) : err;
  let g: OnnxModelWriter;
  try {
    g = await OnnxModelWriter.create(tmp, { externalData: false, graphName: "vqvae_decoder" });
  } catch (err) {
    throw named(describeFsError(err, tmp, "creating"));
  }
  try {
    await buildVqvaeGraph(g, wts);
    await g.finish();
    try {
      await Deno.rename(tmp, path);
    } catch (err) {
      throw describeFsError(err, path, "moving into place");
    }
  } catch (err) {
    await g.abort();
    throw named(err);
  }
}
