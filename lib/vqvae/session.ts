/**
 * Mask decoding for the commands, always through ONNX Runtime: `vqvae_decoder.onnx`, or (`--vae`
 * with an npz) the same graph built from `vae-oid.npz` on the fly. Gives 64×64 float masks for
 * 16-code sequences. (tests/vqvae/cpu_reference.ts, a TypeScript decoder, is the tests' reference.)
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { InputError } from "../errors.ts";
import { VQVAE_ONNX, writeVqvaeOnnx } from "./onnx_graph.ts";
import { checkCodes, loadVqvaeWeights } from "./weights.ts";

/** Something that turns seg code sequences into 64×64 masks. */
export interface MaskDecoder {
  /** Decodes each 16-code sequence to a row-major 64×64 float mask. */
  decode(codes: readonly (readonly number[])[]): Promise<Float32Array[]>;
  /** Frees the runtime session, if any. */
  close(): Promise<void>;
}

/** `vqvae_decoder.onnx` run by ONNX Runtime. */
export class OnnxMaskDecoder implements MaskDecoder {
  private constructor(private readonly session: ort.InferenceSession) {}

  /** Opens the graph at `path`. */
  static async load(path: string, threads?: number): Promise<OnnxMaskDecoder> {
    try {
      const opts: ort.InferenceSession.SessionOptions = threads
        ? { intraOpNumThreads: threads }
        : {};
      return new OnnxMaskDecoder(await ort.InferenceSession.create(path, opts));
    } catch (err) {
      throw new InputError(`${path}: cannot load the VQ-VAE decoder graph (${firstLine(err)})`);
    }
  }

  /**
   * Reads `vae-oid.npz`, writes its decoder graph to a temporary folder with the ONNX graph
   * writer, opens it and removes the folder.
   */
  static async fromNpz(npzPath: string, threads?: number): Promise<OnnxMaskDecoder> {
    const weights = await loadVqvaeWeights(npzPath);
    const tmp = await Deno.makeTempDir({ prefix: "pg-vqvae-" });
    try {
      const path = join(tmp, VQVAE_ONNX);
      await writeVqvaeOnnx(weights, path);
      return await OnnxMaskDecoder.load(path, threads);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  }

  /** Runs all sequences as one batch. */
  async decode(codes: readonly (readonly number[])[]): Promise<Float32Array[]> {
    if (codes.length === 0) return [];
    const flat = new BigInt64Array(codes.length * 16);
    codes.forEach((seq, i) => {
      checkCodes(seq);
      seq.forEach((c, j) => flat[i * 16 + j] = BigInt(c));
    });
    const r = await this.session.run({
      codes: new ort.Tensor("int64", flat, [codes.length, 16]),
    });
    const data = r.masks.data as Float32Array;
    return codes.map((_, i) => data.slice(i * 4096, (i + 1) * 4096));
  }

  /** Releases the session. */
  async close(): Promise<void> {
    await this.session.release();
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}

/**
 * The decoder for `segment`: `--vae FILE` (a `.onnx` graph, or a `.npz` whose graph is built on
 * the fly), else
 * `vqvae_decoder.onnx` in the model folder; a clear error when neither exists.
 */
export async function openMaskDecoder(modelDir: string, vae?: string): Promise<MaskDecoder> {
  if (vae !== undefined) {
    if (!fs.existsSync(vae)) throw new InputError(`--vae ${vae}: no such file`);
    return vae.endsWith(".onnx")
      ? await OnnxMaskDecoder.load(vae)
      : await OnnxMaskDecoder.fromNpz(vae);
  }
  const path = join(modelDir, VQVAE_ONNX);
  if (!fs.existsSync(path)) {
    throw new InputError(
      `${modelDir}: no ${VQVAE_ONNX} in the model folder; run ` +
        `'pg convert --vae-only vae-oid.npz ${modelDir}' or pass --vae vae-oid.npz`,
    );
  }
  return await OnnxMaskDecoder.load(path);
}
