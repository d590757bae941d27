/**
 * Mask decoding for the commands, always through ONNX Runtime: `vqvae_decoder.onnx`, or (a decoder
 * file given as an npz) the same graph built from `vae-oid.npz` on the fly. Gives 64×64 float masks for
 * 16-code sequences. (tests/vqvae/cpu_reference.ts, a TypeScript decoder, is the tests' reference.)
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { InputError } from "../errors.ts";
import { VQVAE_ONNX, writeVqvaeOnnx } from "./onnx_graph.ts";
import { checkCodes, loadVqvaeWeights } from "./weights.ts";
import type { GpuRunner } from "../webgpu/runner.ts";
import { WebGpuMaskDecoder } from "./webgpu.ts";

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

/** A VQ-VAE decoder file given explicitly that does not exist. */
export class NoDecoderFile extends InputError {
  /** Creates the error for the missing `path`. */
  constructor(readonly path: string) {
    super(`${path}: no such VQ-VAE decoder file`);
    this.name = "NoDecoderFile";
  }
}

/** A model folder without `vqvae_decoder.onnx`, when no decoder file was given. */
export class NoMaskDecoder extends InputError {
  /** Creates the error for the model folder `modelDir`. */
  constructor(readonly modelDir: string) {
    super(
      `${modelDir}: no ${VQVAE_ONNX} in the model folder; convert vae-oid.npz into it ` +
        `or give a decoder file`,
    );
    this.name = "NoMaskDecoder";
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}

/**
 * The decoder for `segment`: the file `vae` when given (a `.onnx` graph, or a `.npz` whose graph
 * is built on the fly; NoDecoderFile when missing), else `vqvae_decoder.onnx` in the model folder
 * (NoMaskDecoder when missing). With `gpu` (the model's WebGPU device) a `.npz` decoder runs on
 * that device; an `.onnx` graph always runs on ONNX Runtime.
 */
export async function openMaskDecoder(
  modelDir: string,
  vae?: string,
  gpu?: GpuRunner,
): Promise<MaskDecoder> {
  if (vae !== undefined) {
    if (!fs.existsSync(vae)) throw new NoDecoderFile(vae);
    if (vae.endsWith(".onnx")) return await OnnxMaskDecoder.load(vae);
    if (gpu) return new WebGpuMaskDecoder(gpu, await loadVqvaeWeights(vae));
    return await OnnxMaskDecoder.fromNpz(vae);
  }
  const path = join(modelDir, VQVAE_ONNX);
  if (!fs.existsSync(path)) throw new NoMaskDecoder(modelDir);
  return await OnnxMaskDecoder.load(path);
}
