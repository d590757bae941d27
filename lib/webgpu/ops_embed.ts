/**
 * Embedding lookup from a table in any device weight format (kernels/embedding_q.wgsl): the
 * token-embedding table stays in its stored precision (f32, f16, q8, q4) and serves the tied LM
 * head too.
 * @module
 */

import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";
import { variantPipeline } from "./variants.ts";
import { type GpuWeight, rowBytes } from "./weights.ts";

/** Arguments of `embedRows`. */
export interface EmbedRowsArgs {
  /** [V, D] table (n = V rows, k = D). */
  readonly table: GpuWeight;
  /** u32 [rows] ids (ids >= V give zero rows). */
  readonly ids: GpuTensor;
  /** f32 [rows, D] output. */
  readonly out: GpuTensor;
  /** Rows to gather. */
  readonly rows: number;
}

const FMT = { f32: 0, f16: 1, q8: 2, q4: 3 } as const;

/** Records out[i, :] = table[ids[i], :] (dequantized to f32). */
export async function embedRows(r: GpuRunner, x: EmbedRowsArgs): Promise<void> {
  const w = x.table;
  const { rows } = x;
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError("embedRows rows must be positive");
  if (x.ids.length < rows) throw new RangeError(`embedRows: ${x.ids.length} ids for ${rows} rows`);
  if (x.out.length < rows * w.k) throw new RangeError(`embedRows: output too small`);
  const quant = w.format === "q8" || w.format === "q4";
  const bytes = rowBytes(w);
  if (bytes % 4 !== 0) throw new RangeError(`embedRows: a ${w.format} row of ${w.k} is ${bytes} B`);
  const bs = quant ? w.blockSize ?? 32 : 32;
  const blocks = quant ? Math.ceil(w.k / bs) : 0;
  const zl = quant && w.zeros ? w.zeroLayout ?? (w.format === "q4" ? "nibbles" : "bytes") : "none";
  const zp = zl === "nibbles" ? 4 : zl === "bytes" ? 8 : 0;
  const zs = zp === 4 ? Math.ceil(blocks / 2) : blocks;
  const pipeline = await variantPipeline(r, "embedding_q", { FMT: FMT[w.format], ZP: zp, BS: bs });
  const p = new ParamWriter().u32(rows).u32(w.k).u32(w.n).u32(bytes / 4).u32(blocks).u32(zs)
    .u32(0).u32(0);
  const d = r.dummy;
  const buffers = [w.data, w.scales ?? d, w.zeros ?? d, x.ids, x.out];
  r.record(pipeline, "embedding_q", buffers, p, grid(Math.ceil((rows * w.k) / 256)));
}
