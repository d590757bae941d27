/**
 * `convert --vae` / `--vae-only`: big_vision's `vae-oid.npz` → `vqvae_decoder.onnx` in a model
 * folder.
 * @module
 */

import { join } from "node:path";
import { ensureDir } from "../atomic.ts";
import { VQVAE_ONNX, writeVqvaeOnnx } from "./onnx_graph.ts";
import { loadVqvaeWeights, type VqvaeWeights } from "./weights.ts";

/** Writes `vqvae_decoder.onnx` for already-loaded weights into `dir`; returns its path. */
export async function writeVqvaeInto(weights: VqvaeWeights, dir: string): Promise<string> {
  await ensureDir(dir);
  const path = join(dir, VQVAE_ONNX);
  await writeVqvaeOnnx(weights, path);
  return path;
}

/** Reads `npzPath` (vae-oid.npz) and writes `vqvae_decoder.onnx` into `dir`; returns its path. */
export async function convertVqvae(npzPath: string, dir: string): Promise<string> {
  return await writeVqvaeInto(await loadVqvaeWeights(npzPath), dir);
}
