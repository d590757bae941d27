/**
 * ZIP archives as npz uses them: a reader of the central directory (ZIP64 included) with
 * byte-range reads of stored (pread) and deflated (streaming inflate) members, and a
 * streaming writer of stored ZIP64 archives.
 * @module
 */

import * as zlib from "node:zlib";
import { Inflate } from "fflate";
import { InputError } from "../errors.ts";
import { AtomicFileWriter, RandomAccessFile } from "./file.ts";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const EXTRA_ZIP64 = 0x0001;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/** Compressed bytes read from disk at a time when inflating. */
const INFLATE_READ = 1 << 20;
/** Compressed bytes pushed to the inflater at a time (bounds each output burst to ~64 MB). */
const INFLATE_PUSH = 1 << 16;
/** Deflated members whose inflate state is kept for reads that continue where one stopped. */
const MAX_CURSORS = 2;

// ---------------------------------------------------------------- CRC-32 (slicing by 8)

const CRC_TABLES = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      t[k * 256 + n] = (t[(k - 1) * 256 + n] >>> 8) ^ t[t[(k - 1) * 256 + n] & 0xff];
    }
  }
  return t;
})();

/** Native CRC-32 of node:zlib (several GB/s), where the runtime has it. */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** Continues a CRC-32 (zip/PNG polynomial) over `bytes`; start with `crc = 0`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  return nativeCrc32 ? nativeCrc32(bytes, crc) >>> 0 : crc32Table(bytes, crc);
}

/** CRC-32 by table lookup (slicing by 8), the portable fallback of `crc32`. */
export function crc32Table(bytes: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc;
  let i = 0;
  const n8 = bytes.length - (bytes.length % 8);
  for (; i < n8; i += 8) {
    const a = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^ t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------- reader

/** One member of a ZIP archive, from the central directory. */
export interface ZipEntry {
  /** Member path inside the archive. */
  readonly name: string;
  /** Compression method: 0 stored, 8 deflated (others are refused when read). */
  readonly method: number;
  /** CRC-32 of the uncompressed bytes. */
  readonly crc32: number;
  /** Bytes of stored/compressed data in the archive. */
  readonly compressedSize: number;
  /** Bytes of the member once uncompressed. */
  readonly size: number;
  /** Offset of the member's local header. */
  readonly localHeaderOffset: number;
  /** Whether the central header carried a ZIP64 extra field. */
  readonly zip64: boolean;
}

/** Little-endian field reader over a byte array. */
class Fields {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u16(at: number): number {
    return this.view.getUint16(at, true);
  }
  u32(at: number): number {
    return this.view.getUint32(at, true);
  }
  u64(at: number): number {
    const v = this.view.getBigUint64(at, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
  }
}

/** State of a streaming inflate through one deflated member. */
interface InflateCursor {
  inflate: Inflate;
  /** Compressed bytes read from the file so far. */
  inPos: number;
  /** The last compressed read and how much of it was pushed. */
  buf: Uint8Array;
  bufPos: number;
  /** Uncompressed position of the first byte of `pending[0]`. */
  outPos: number;
  /** Uncompressed bytes produced and not yet passed. */
  pending: Uint8Array[];
  /** Uncompressed bytes produced in all. */
  produced: number;
  crc: number;
  final: boolean;
}

/** An open ZIP archive: its entries and byte-range reads of their uncompressed data. */
export class ZipArchive {
  private readonly dataStarts = new Map<ZipEntry, number>();
  private readonly cursors = new Map<ZipEntry, InflateCursor>();
  private readonly locks = new Map<ZipEntry, Promise<unknown>>();

  private constructor(
    private readonly file: RandomAccessFile,
    /** Members in central-directory order. */
    readonly entries: readonly ZipEntry[],
    /** Whether the archive has a ZIP64 end-of-central-directory record. */
    readonly zip64: boolean,
    /** Where the central directory starts (members' data must end before it). */
    private readonly cdOffset: number,
  ) {}

  /** Path of the archive. */
  get path(): string {
    return this.file.path;
  }

  /** Opens `path` and reads its central directory. */
  static async open(path: string): Promise<ZipArchive> {
    const file = await RandomAccessFile.open(path);
    try {
      const { entries, zip64, cdOffset } = await readDirectory(file);
      return new ZipArchive(file, entries, zip64, cdOffset);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Offset in the file of the member's data (after its local header). */
  async dataStart(entry: ZipEntry): Promise<number> {
    const known = this.dataStarts.get(entry);
    if (known !== undefined) return known;
    const where = `member "${entry.name}"`;
    const local = new Fields(await this.file.read(entry.localHeaderOffset, 30, where));
    if (local.u32(0) !== SIG_LOCAL) {
      throw new InputError(
        `${this.path}: ${where}: local header not found where the directory says`,
      );
    }
    const start = entry.localHeaderOffset + 30 + local.u16(26) + local.u16(28);
    if (start + entry.compressedSize > this.cdOffset) {
      throw new InputError(`${this.path}: ${where}: data runs past the central directory`);
    }
    this.dataStarts.set(entry, start);
    return start;
  }

  /**
   * Reads `length` uncompressed bytes of `entry` at `offset`. Stored members take one pread;
   * deflated ones are inflated from the start (or from where the last read stopped) and the
   * bytes before `offset` discarded. Any inflate that reaches a member's end is checked against
   * the CRC-32, and so is a whole stored member read with `verify`.
   */
  async read(
    entry: ZipEntry,
    offset = 0,
    length = entry.size - offset,
    verify = false,
  ): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > entry.size) {
      throw new RangeError(
        `${entry.name}: read of ${length} bytes at ${offset} is outside its ${entry.size} bytes`,
      );
    }
    const where = `member "${entry.name}"`;
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.size) {
        throw new InputError(`${this.path}: ${where}: stored sizes disagree`);
      }
      const start = await this.dataStart(entry);
      if (length === 0) return new Uint8Array(0);
      const bytes = await this.file.read(start + offset, length, where);
      if (verify && length === entry.size && crc32(bytes) !== entry.crc32) {
        throw new InputError(`${this.path}: ${where}: CRC-32 mismatch (data is corrupt)`);
      }
      return bytes;
    }
    if (entry.method === 8) {
      const previous = this.locks.get(entry) ?? Promise.resolve();
      const run = previous.catch(() => {}).then(() =>
        this.inflateRange(entry, offset, length).catch((err) => {
          this.cursors.delete(entry);
          throw err;
        })
      );
      this.locks.set(entry, run);
      return await run;
    }
    throw new InputError(
      `${this.path}: ${where}: compression method ${entry.method} not supported`,
    );
  }

  private async inflateRange(entry: ZipEntry, offset: number, length: number) {
    let cur = this.cursors.get(entry);
    if (!cur || cur.outPos > offset) cur = this.newCursor();
    // Most recently used last; only a few are kept, as each holds buffered output.
    this.cursors.delete(entry);
    this.cursors.set(entry, cur);
    for (const old of this.cursors.keys()) {
      if (this.cursors.size <= MAX_CURSORS) break;
      this.cursors.delete(old);
    }
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (cur.pending.length === 0) {
        await this.pump(entry, cur);
        continue;
      }
      const want = offset + filled;
      const chunk = cur.pending[0];
      if (cur.outPos + chunk.length <= want) {
        cur.pending.shift();
        cur.outPos += chunk.length;
        continue;
      }
      const skip = want - cur.outPos;
      const n = Math.min(chunk.length - skip, length - filled);
      out.set(chunk.subarray(skip, skip + n), filled);
      filled += n;
      if (skip + n === chunk.length) {
        cur.pending.shift();
        cur.outPos += chunk.length;
      } else {
        cur.pending[0] = chunk.subarray(skip + n);
        cur.outPos += skip + n;
      }
    }
    return out;
  }

  private newCursor(): InflateCursor {
    const cur: InflateCursor = {
      inflate: new Inflate(),
      inPos: 0,
      buf: new Uint8Array(0),
      bufPos: 0,
      outPos: 0,
      pending: [],
      produced: 0,
      crc: 0,
      final: false,
    };
    cur.inflate.ondata = (data, final) => {
      if (data.length > 0) {
        cur.pending.push(data);
        cur.produced += data.length;
        cur.crc = crc32(data, cur.crc);
      }
      if (final) cur.final = true;
    };
    return cur;
  }

  /** Feeds the next (at most INFLATE_PUSH) compressed bytes of `entry` to its inflater. */
  private async pump(entry: ZipEntry, cur: InflateCursor): Promise<void> {
    const where = `${this.path}: member "${entry.name}"`;
    if (cur.bufPos >= cur.buf.length) {
      if (cur.final || cur.inPos >= entry.compressedSize) {
        throw new InputError(
          `${where}: deflated data ends after ${cur.produced} of ${entry.size} bytes`,
        );
      }
      const start = await this.dataStart(entry);
      const n = Math.min(INFLATE_READ, entry.compressedSize - cur.inPos);
      cur.buf = await this.file.read(start + cur.inPos, n, `member "${entry.name}"`);
      cur.bufPos = 0;
      cur.inPos += n;
    }
    const end = Math.min(cur.bufPos + INFLATE_PUSH, cur.buf.length);
    const last = cur.inPos >= entry.compressedSize && end === cur.buf.length;
    try {
      cur.inflate.push(cur.buf.subarray(cur.bufPos, end), last);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new InputError(`${where}: deflated data is corrupt (${why})`);
    }
    cur.bufPos = end;
    if (cur.produced > entry.size) {
      throw new InputError(`${where}: inflates to more than its ${entry.size} bytes`);
    }
    if (cur.final) {
      if (cur.produced !== entry.size) {
        throw new InputError(`${where}: inflates to ${cur.produced} bytes, expected ${entry.size}`);
      }
      if (cur.crc !== entry.crc32) {
        throw new InputError(`${where}: CRC-32 mismatch (data is corrupt)`);
      }
    }
  }

  /** Closes the file and drops inflate state. */
  close(): void {
    this.cursors.clear();
    this.file.close();
  }
}

/** Finds the end-of-central-directory record(s) and parses the central directory. */
async function readDirectory(
  file: RandomAccessFile,
): Promise<{ entries: ZipEntry[]; zip64: boolean; cdOffset: number }> {
  const path = file.path;
  const tailLen = Math.min(file.size, 22 + 0xffff + 20);
  const tailStart = file.size - tailLen;
  const tail = new Fields(await file.read(tailStart, tailLen));
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.u32(i) === SIG_EOCD && i + 22 + tail.u16(i + 20) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const head = file.size >= 4 ? new Fields(await file.read(0, 4)).u32(0) : 0;
    throw new InputError(
      head === SIG_LOCAL
        ? `${path}: truncated zip archive (no end-of-central-directory record)`
        : `${path}: not a zip archive (no end-of-central-directory record)`,
    );
  }
  let count = tail.u16(eocd + 10);
  let cdSize = tail.u32(eocd + 12);
  let cdOffset = tail.u32(eocd + 16);
  let zip64 = false;
  if (eocd >= 20 && tail.u32(eocd - 20) === SIG_LOCATOR64) {
    const at = tail.u64(eocd - 20 + 8);
    if (at + 56 > tailStart + eocd - 20) {
      throw new InputError(`${path}: ZIP64 locator points outside the archive`);
    }
    const rec = new Fields(await file.read(at, 56));
    if (rec.u32(0) !== SIG_EOCD64) {
      throw new InputError(`${path}: ZIP64 end-of-central-directory record not found`);
    }
    count = rec.u64(32);
    cdSize = rec.u64(40);
    cdOffset = rec.u64(48);
    zip64 = true;
  } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
    throw new InputError(`${path}: ZIP64 archive without its ZIP64 end record (truncated?)`);
  }
  if (cdOffset + cdSize > file.size) {
    throw new InputError(`${path}: truncated zip archive (central directory past end of file)`);
  }
  const cd = new Fields(await file.read(cdOffset, cdSize, "central directory"));
  const entries: ZipEntry[] = [];
  const decoder = new TextDecoder();
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cdSize || cd.u32(p) !== SIG_CENTRAL) {
      throw new InputError(`${path}: central directory entry ${k} is corrupt`);
    }
    const flags = cd.u16(p + 8);
    const nameLen = cd.u16(p + 28);
    const extraLen = cd.u16(p + 30);
    const commentLen = cd.u16(p + 32);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) {
      throw new InputError(`${path}: central directory entry ${k} is corrupt`);
    }
    const name = decoder.decode(cd.bytes.subarray(p + 46, p + 46 + nameLen));
    let size = cd.u32(p + 24);
    let compressedSize = cd.u32(p + 20);
    let localHeaderOffset = cd.u32(p + 42);
    let entryZip64 = false;
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = cd.u16(e);
      const len = cd.u16(e + 2);
      if (id === EXTRA_ZIP64) {
        entryZip64 = true;
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + len) {
            throw new InputError(`${path}: member "${name}": ZIP64 extra field is too short`);
          }
          const v = cd.u64(q);
          q += 8;
          return v;
        };
        if (size === U32_MAX) size = next();
        if (compressedSize === U32_MAX) compressedSize = next();
        if (localHeaderOffset === U32_MAX) localHeaderOffset = next();
      }
      e += 4 + len;
    }
    if (flags & 1) throw new InputError(`${path}: member "${name}" is encrypted`);
    if (!Number.isFinite(size + compressedSize + localHeaderOffset)) {
      throw new InputError(`${path}: member "${name}": sizes out of range`);
    }
    entries.push({
      name,
      method: cd.u16(p + 10),
      crc32: cd.u32(p + 16),
      compressedSize,
      size,
      localHeaderOffset,
      zip64: entryZip64,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return { entries, zip64, cdOffset };
}

// ---------------------------------------------------------------- writer

/** DOS date 1980-01-01 (fixed, so output is reproducible). */
const DOS_DATE = 0x0021;
const VERSION = 45;
const MADE_BY = (3 << 8) | VERSION;

interface Written {
  nameBytes: Uint8Array;
  flags: number;
  crc: number;
  size: number;
  offset: number;
}

/** Writes a stored (uncompressed) ZIP64 archive member by member, streaming each member's data. */
export class ZipWriter {
  private readonly written: Written[] = [];
  private readonly names = new Set<string>();

  private constructor(private readonly out: AtomicFileWriter) {}

  /** Starts an archive at a temporary name next to `path`. */
  static create(path: string): ZipWriter {
    return new ZipWriter(AtomicFileWriter.create(path));
  }

  /** Final path of the archive. */
  get path(): string {
    return this.out.path;
  }

  /**
   * Adds member `name` of exactly `size` bytes, which `fill` passes to `write` in order. The
   * local header carries ZIP64 sizes; its CRC-32 is patched in once the data is written.
   */
  async addStored(
    name: string,
    size: number,
    fill: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    if (this.names.has(name)) throw new InputError(`${this.path}: member "${name}" added twice`);
    this.names.add(name);
    const nameBytes = new TextEncoder().encode(name);
    const flags = /^[\x20-\x7e]*$/.test(name) ? 0 : 0x0800;
    const offset = this.out.position;
    const h = new Uint8Array(30 + nameBytes.length + 20);
    const v = new DataView(h.buffer);
    v.setUint32(0, SIG_LOCAL, true);
    v.setUint16(4, VERSION, true);
    v.setUint16(6, flags, true);
    v.setUint16(8, 0, true);
    v.setUint16(10, 0, true);
    v.setUint16(12, DOS_DATE, true);
    v.setUint32(14, 0, true);
    v.setUint32(18, U32_MAX, true);
    v.setUint32(22, U32_MAX, true);
    v.setUint16(26, nameBytes.length, true);
    v.setUint16(28, 20, true);
    h.set(nameBytes, 30);
    const x = 30 + nameBytes.length;
    v.setUint16(x, EXTRA_ZIP64, true);
    v.setUint16(x + 2, 16, true);
    v.setBigUint64(x + 4, BigInt(size), true);
    v.setBigUint64(x + 12, BigInt(size), true);
    await this.out.write(h);
    let crc = 0;
    let got = 0;
    await fill(async (chunk) => {
      got += chunk.length;
      if (got > size) {
        throw new InputError(`${this.path}: member "${name}" is longer than its ${size} bytes`);
      }
      crc = crc32(chunk, crc);
      await this.out.write(chunk);
    });
    if (got !== size) {
      throw new InputError(`${this.path}: member "${name}" got ${got} bytes, expected ${size}`);
    }
    const crcBytes = new Uint8Array(4);
    new DataView(crcBytes.buffer).setUint32(0, crc, true);
    await this.out.patch(crcBytes, offset + 14);
    this.written.push({ nameBytes, flags, crc, size, offset });
  }

  /** Writes the central directory and ZIP64 end records, then renames the file into place. */
  async finish(): Promise<void> {
    const cdOffset = this.out.position;
    for (const w of this.written) {
      const h = new Uint8Array(46 + w.nameBytes.length + 28);
      const v = new DataView(h.buffer);
      v.setUint32(0, SIG_CENTRAL, true);
      v.setUint16(4, MADE_BY, true);
      v.setUint16(6, VERSION, true);
      v.setUint16(8, w.flags, true);
      v.setUint16(10, 0, true);
      v.setUint16(12, 0, true);
      v.setUint16(14, DOS_DATE, true);
      v.setUint32(16, w.crc, true);
      v.setUint32(20, U32_MAX, true);
      v.setUint32(24, U32_MAX, true);
      v.setUint16(28, w.nameBytes.length, true);
      v.setUint16(30, 28, true);
      v.setUint32(38, 0o100644 << 16 >>> 0, true);
      v.setUint32(42, U32_MAX, true);
      h.set(w.nameBytes, 46);
      const x = 46 + w.nameBytes.length;
      v.setUint16(x, EXTRA_ZIP64, true);
      v.setUint16(x + 2, 24, true);
      v.setBigUint64(x + 4, BigInt(w.size), true);
      v.setBigUint64(x + 12, BigInt(w.size), true);
      v.setBigUint64(x + 20, BigInt(w.offset), true);
      await this.out.write(h);
    }
    const cdSize = this.out.position - cdOffset;
    const eocd64At = this.out.position;
    const end = new Uint8Array(56 + 20 + 22);
    const v = new DataView(end.buffer);
    const n = BigInt(this.written.length);
    v.setUint32(0, SIG_EOCD64, true);
    v.setBigUint64(4, 44n, true);
    v.setUint16(12, MADE_BY, true);
    v.setUint16(14, VERSION, true);
    v.setBigUint64(24, n, true);
    v.setBigUint64(32, n, true);
    v.setBigUint64(40, BigInt(cdSize), true);
    v.setBigUint64(48, BigInt(cdOffset), true);
    v.setUint32(56, SIG_LOCATOR64, true);
    v.setBigUint64(64, BigInt(eocd64At), true);
    v.setUint32(72, 1, true);
    v.setUint32(76, SIG_EOCD, true);
    v.setUint16(84, U16_MAX, true);
    v.setUint16(86, U16_MAX, true);
    v.setUint32(88, U32_MAX, true);
    v.setUint32(92, U32_MAX, true);
    await this.out.write(end);
    await this.out.commit();
  }

  /** Removes the partly written archive. */
  abort(): void {
    this.out.abort();
  }
}
