/**
 * Checks made before any conversion work: the folders a convert writes into accept new files, and
 * the file system has room for the estimated output.
 * @module
 */

import * as fs from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describeFsError, FsError, InputError } from "../errors.ts";

/** `path` itself when it exists, else its nearest existing ancestor. */
export function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!fs.existsSync(p)) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

/**
 * The folders a convert into `dst` creates files in: the one that will hold the temporary folder
 * beside `dst` (or its nearest existing ancestor) and, when `dst` exists, `dst` and `dst/onnx`.
 */
export function foldersWrittenBy(dst: string): string[] {
  const out = [nearestExisting(dirname(resolve(dst)))];
  for (const d of [dst, join(dst, "onnx")]) {
    if (fs.existsSync(d) && fs.statSync(d).isDirectory()) out.push(resolve(d));
  }
  return out;
}

/**
 * Creates and removes a probe file in `dir`. Unlike an access(2) check this sees what a write
 * would: read-only mounts, and for root (which access(2) lets through) the same as any writer.
 */
function probe(dir: string): void {
  const path = join(dir, `.pg-write-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  try {
    fs.closeSync(fs.openSync(path, "wx"));
    fs.unlinkSync(path);
  } catch (err) {
    const e = describeFsError(err, dir, "creating a file");
    throw e instanceof FsError ? new NotWritableError(dir, e.reason, e.code) : e;
  }
}

/** A folder the convert must write into does not accept new files. */
export class NotWritableError extends FsError {
  /** `folder` refused a probe file for `reason`. */
  constructor(readonly folder: string, reason: string, code: string | undefined) {
    super(folder, reason, code, "checking that it is writable");
    this.name = "NotWritableError";
  }
}

/** Throws NotWritableError naming the first folder of `foldersWrittenBy(dst)` that refuses files. */
export function checkWritable(dst: string): void {
  for (const dir of foldersWrittenBy(dst)) probe(dir);
}

/** Bytes free to an unprivileged writer on the file system of `dir`, or undefined if unknown. */
export function freeBytes(dir: string): number | undefined {
  // node:fs statfsSync is implemented by Deno 2 (Linux, macOS); where it is missing or fails the
  // space check is skipped rather than guessed.
  try {
    const s = fs.statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}

/** `n` bytes in binary units, e.g. `1.5 MiB`. */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}

/** The file system `folder` goes on has less free space than the estimated output. */
export class NotEnoughSpaceError extends InputError {
  /** `neededBytes` (estimate) do not fit in `freeBytes`. */
  constructor(readonly folder: string, readonly neededBytes: number, readonly freeBytes: number) {
    super(
      `${folder}: not enough free space: the converted model needs about ` +
        `${formatBytes(neededBytes)}, ${formatBytes(freeBytes)} free`,
    );
    this.name = "NotEnoughSpaceError";
  }
}

/** Throws NotEnoughSpaceError when the file system `dst` goes on has less than `neededBytes` free. */
export function checkFreeSpace(dst: string, neededBytes: number): void {
  const dir = nearestExisting(dirname(resolve(dst)));
  const free = freeBytes(dir);
  if (free !== undefined && free < neededBytes) {
    throw new NotEnoughSpaceError(dst, neededBytes, free);
  }
}
