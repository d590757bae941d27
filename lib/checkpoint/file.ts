/**
 * Positional file reads (pread) and buffered, atomically renamed file writes.
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeFsError as describeDenoError, InputError } from "../errors.ts";
import { DTYPE_BYTES, numel, type WritableTensor } from "./tensor.ts";

const NODE_CODES: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "is a directory",
  ENOTDIR: "a parent is not a directory",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
};

/** Turns Deno and node:fs errors into one-line InputErrors naming `path`; passes others through. */
export function describeFsError(err: unknown, path: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && Object.hasOwn(NODE_CODES, code)) {
    return new InputError(`${path}: ${NODE_CODES[code]}`);
  }
  return describeDenoError(err, path);
}

/** Largest single read(2) Linux performs; longer reads are split. */
const MAX_IO = 0x7fff0000;

/** One positional read on a numeric fd. */
function preadOnce(fd: number, buf: Uint8Array, at: number, length: number, pos: number) {
  return new Promise<number>((resolve, reject) => {
    fs.read(fd, buf, at, length, pos, (err, n) => err ? reject(err) : resolve(n));
  });
}

/** One positional write on a numeric fd. */
function pwriteOnce(fd: number, buf: Uint8Array, at: number, length: number, pos: number) {
  return new Promise<number>((resolve, reject) => {
    fs.write(fd, buf, at, length, pos, (err, n) => err ? reject(err) : resolve(n));
  });
}

/** A read-only file read by offset, safe for concurrent reads. */
export class RandomAccessFile {
  private constructor(
    /** Path the file was opened from. */
    readonly path: string,
    private fd: number | undefined,
    /** Size in bytes when opened. */
    readonly size: number,
  ) {}

  /** Opens `path` for reading; missing files and directories become InputErrors. */
  static open(path: string): Promise<RandomAccessFile> {
    try {
      const fd = fs.openSync(path, "r");
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        fs.closeSync(fd);
        throw new InputError(`${path}: is not a regular file`);
      }
      return Promise.resolve(new RandomAccessFile(path, fd, st.size));
    } catch (err) {
      throw describeFsError(err, path);
    }
  }

  /**
   * Reads exactly `length` bytes at `position` into a new array (or into `into`).
   * A short read (file truncated) is an InputError naming the file and `what`.
   */
  async read(
    position: number,
    length: number,
    what?: string,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    if (this.fd === undefined) throw new InputError(`${this.path}: read after close`);
    const out = into ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = await preadOnce(this.fd, out, done, Math.min(length - done, MAX_IO), position + done);
      } catch (err) {
        throw describeFsError(err, this.path);
      }
      if (n === 0) {
        const label = what ? `, ${what}` : "";
        throw new InputError(
          `${this.path}${label}: file is truncated (needed bytes ${position}..${
            position + length
          }, got only up to ${position + done})`,
        );
      }
      done += n;
    }
    return out;
  }

  /** Closes the file handle (idempotent). */
  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Size of the write-coalescing buffer. */
const WRITE_BUFFER = 1 << 20;

/**
 * Writes a file sequentially under a temporary name in the same folder, with positional
 * patches allowed; `commit()` renames it into place, `abort()` removes it.
 */
export class AtomicFileWriter {
  private buffer = new Uint8Array(WRITE_BUFFER);
  private buffered = 0;
  private flushedTo = 0;
  private closed = false;

  private constructor(
    /** Final path. */
    readonly path: string,
    /** Temporary path written until commit. */
    readonly tempPath: string,
    private readonly fd: number,
  ) {}

  /** Creates the temporary file next to `path`. */
  static create(path: string): AtomicFileWriter {
    const rand = Math.floor(Math.random() * 0xffffffff).toString(16);
    const temp = join(dirname(path), `.${basename(path)}.${Deno.pid}.${rand}.tmp`);
    try {
      return new AtomicFileWriter(path, temp, fs.openSync(temp, "wx"));
    } catch (err) {
      throw describeFsError(err, path);
    }
  }

  /** Bytes written so far (the position of the next `write`). */
  get position(): number {
    return this.flushedTo + this.buffered;
  }

  /** Appends `bytes`. */
  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length >= WRITE_BUFFER) {
      await this.flush();
      await this.writeAt(bytes, this.flushedTo);
      this.flushedTo += bytes.length;
      return;
    }
    if (this.buffered + bytes.length > WRITE_BUFFER) await this.flush();
    this.buffer.set(bytes, this.buffered);
    this.buffered += bytes.length;
  }

  /** Overwrites bytes at `position`, which must lie before the current position. */
  async patch(bytes: Uint8Array, position: number): Promise<void> {
    await this.flush();
    if (position + bytes.length > this.flushedTo) throw new RangeError("patch past end of file");
    await this.writeAt(bytes, position);
  }

  /** Writes buffered bytes to the file. */
  async flush(): Promise<void> {
    if (this.buffered === 0) return;
    await this.writeAt(this.buffer.subarray(0, this.buffered), this.flushedTo);
    this.flushedTo += this.buffered;
    this.buffered = 0;
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const len = Math.min(bytes.length - done, MAX_IO);
      try {
        done += await pwriteOnce(this.fd, bytes, done, len, position + done);
      } catch (err) {
        throw describeFsError(err, this.tempPath);
      }
    }
  }

  /** Flushes, closes and renames the temporary file to the final path. */
  async commit(): Promise<void> {
    await this.flush();
    this.closed = true;
    fs.closeSync(this.fd);
    try {
      fs.renameSync(this.tempPath, this.path);
    } catch (err) {
      try {
        fs.unlinkSync(this.tempPath);
      } catch {
        // already gone
      }
      throw describeFsError(err, this.path);
    }
  }

  /** Closes and removes the temporary file (safe to call after a failure or commit). */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      fs.closeSync(this.fd);
    } finally {
      try {
        fs.unlinkSync(this.tempPath);
      } catch {
        // already gone
      }
    }
  }
}

/** Runs `body` on a new AtomicFileWriter for `path`, committing on success, aborting on error. */
export async function writeAtomically(
  path: string,
  body: (out: AtomicFileWriter) => Promise<void>,
): Promise<void> {
  const out = AtomicFileWriter.create(path);
  try {
    await body(out);
    await out.commit();
  } catch (err) {
    out.abort();
    throw err;
  }
}

/** Yields the chunks of a tensor's data, whole or streamed. */
export async function* chunksOf(
  data: Uint8Array | AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) yield data;
  else yield* data;
}

/**
 * Streams a tensor's data to `write`, checking it yields exactly its declared size.
 */
export async function streamTensor(
  path: string,
  t: WritableTensor,
  write: (chunk: Uint8Array) => Promise<void>,
): Promise<void> {
  const expected = numel(t.shape) * DTYPE_BYTES[t.dtype];
  let got = 0;
  for await (const chunk of chunksOf(await t.data())) {
    got += chunk.length;
    if (got > expected) break;
    await write(chunk);
  }
  if (got !== expected) {
    throw new InputError(
      `${path}: tensor "${t.name}" produced ${got > expected ? "more than " : ""}${got} bytes, ` +
        `expected ${expected} for ${t.dtype} [${t.shape}]`,
    );
  }
}
