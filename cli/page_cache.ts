/**
 * The files a model load reads, the time to read them, and dropping them from the page cache (for
 * `bench --cold` and the peer benchmarks): `posix_fadvise(POSIX_FADV_DONTNEED)` on each file,
 * which needs no root, through libc (Linux only).
 * @module
 */

import { basename, dirname, join } from "node:path";
import { GRAPHS, type ModelDir } from "../lib/backend/model_dir.ts";
import type { Precision } from "../lib/model/precision.ts";
import { TOKENIZER_CACHE } from "../lib/tokenizer/cache.ts";
import { UsageError } from "../lib/errors.ts";

/** The files of `dir`'s graphs at `dtype`: each `.onnx` and the external data beside it. */
export function graphFiles(dir: ModelDir, dtype: Precision): string[] {
  const files: string[] = [];
  for (const g of GRAPHS) {
    const path = dir.graph(g, dtype);
    const name = basename(path);
    for (const e of Deno.readDirSync(dirname(path))) {
      if (e.isFile && e.name.startsWith(name)) files.push(join(dirname(path), e.name));
    }
  }
  return files;
}

/** The files loading `dir` at `dtype` reads: each graph, its external data, the tokenizer. */
export function modelFiles(dir: ModelDir, dtype: Precision): string[] {
  const files = graphFiles(dir, dtype);
  const tokDir = dirname(dir.tokenizer);
  for (const f of ["tokenizer.json", TOKENIZER_CACHE, "tokenizer_config.json", "tokenizer.model"]) {
    const p = join(tokDir, f);
    try {
      if (Deno.statSync(p).isFile) files.push(p);
    } catch { /* absent */ }
  }
  return [...new Set(files)].sort();
}

/** Bytes read and milliseconds taken to read `files` whole, in 64 MiB pieces. */
export async function readFiles(files: readonly string[]): Promise<{ bytes: number; ms: number }> {
  const buf = new Uint8Array(64 << 20);
  let bytes = 0;
  const t = performance.now();
  for (const f of files) {
    using file = await Deno.open(f);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      bytes += n;
    }
  }
  return { bytes, ms: performance.now() - t };
}

const POSIX_FADV_DONTNEED = 4;
const O_RDONLY = 0;

/**
 * Drops `files` from the page cache (clean pages of files no process maps), so that the next read
 * comes from the disk. Throws `UsageError` where libc's posix_fadvise is not available.
 */
export function evictFromPageCache(files: readonly string[]): void {
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
      posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`--cold needs Linux's posix_fadvise (libc.so.6: ${why})`);
  }
  try {
    for (const f of files) {
      const fd = lib.symbols.open(new TextEncoder().encode(`${f}\0`), O_RDONLY);
      if (fd < 0) throw new UsageError(`${f}: cannot open it to drop it from the page cache`);
      const rc = lib.symbols.posix_fadvise(fd, 0n, 0n, POSIX_FADV_DONTNEED);
      lib.symbols.close(fd);
      if (rc !== 0) throw new UsageError(`${f}: posix_fadvise failed (error ${rc})`);
    }
  } finally {
    lib.close();
  }
}
