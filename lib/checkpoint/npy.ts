/**
 * The `.npy` header (format versions 1, 2 and 3): parsing, with dtype mapping, and writing.
 * @module
 */

import { InputError } from "../errors.ts";
import type { DType } from "./tensor.ts";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** numpy `descr` strings understood, and the dtype each maps to (bf16 is stored as void). */
const DESCR_TO_DTYPE: Readonly<Record<string, DType>> = {
  "<f4": "F32",
  "<f2": "F16",
  "<f8": "F64",
  "<i8": "I64",
  "<i4": "I32",
  "<i2": "I16",
  "|i1": "I8",
  "|u1": "U8",
  "<u2": "U16",
  "<u4": "U32",
  "<u8": "U64",
  "|b1": "BOOL",
  "<V2": "BF16",
  "|V2": "BF16",
};

/** The descr our writer uses for each dtype (BF16 as `<V2`, as big_vision writes it). */
export const DTYPE_TO_DESCR: Readonly<Record<DType, string>> = {
  F32: "<f4",
  F16: "<f2",
  F64: "<f8",
  I64: "<i8",
  I32: "<i4",
  I16: "<i2",
  I8: "|i1",
  U8: "|u1",
  U16: "<u2",
  U32: "<u4",
  U64: "<u8",
  BOOL: "|b1",
  BF16: "<V2",
};

/** A parsed `.npy` header. */
export interface NpyHeader {
  /** Format major version (1, 2 or 3). */
  readonly version: number;
  /** Element type. */
  readonly dtype: DType;
  /** Shape (C order). */
  readonly shape: number[];
  /** Bytes from the start of the file to the array data. */
  readonly headerLength: number;
}

/**
 * Total header length from the first bytes of a `.npy` (at least 12 are needed, fewer only
 * when the data is shorter); `label` names the file or member in errors.
 */
export function npyHeaderLength(prefix: Uint8Array, label: string): number {
  if (prefix.length < 10 || !MAGIC.every((b, i) => prefix[i] === b)) {
    throw new InputError(`${label}: not a .npy array (bad magic)`);
  }
  const major = prefix[6];
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  if (major === 1) return 10 + view.getUint16(8, true);
  if (major === 2 || major === 3) {
    if (prefix.length < 12) throw new InputError(`${label}: .npy header is truncated`);
    return 12 + view.getUint32(8, true);
  }
  throw new InputError(`${label}: .npy format version ${major} is not supported (1, 2 or 3)`);
}

/** A Python literal as found in a `.npy` header. */
type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

/** Parses the Python dict literal of a `.npy` header. */
function parsePyLiteral(text: string, label: string): PyValue {
  let i = 0;
  const fail = (): never => {
    throw new InputError(`${label}: .npy header is not a Python literal: ${text.trim()}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') {
      let s = "";
      i++;
      while (i < text.length && text[i] !== c) {
        if (text[i] === "\\") i++;
        s += text[i++];
      }
      if (text[i] !== c) fail();
      i++;
      return s;
    }
    if (c === "(" || c === "[" || c === "{") {
      const close = c === "(" ? ")" : c === "[" ? "]" : "}";
      i++;
      const items: PyValue[] = [];
      const dict: Record<string, PyValue> = {};
      for (;;) {
        ws();
        if (text[i] === close) break;
        const item = value();
        if (c === "{") {
          ws();
          if (text[i++] !== ":" || typeof item !== "string") fail();
          dict[item as string] = value();
        } else items.push(item);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== close) fail();
      }
      i++;
      return c === "{" ? dict : items;
    }
    const m = /^(-?\d+)L?|^(True|False|None)/.exec(text.slice(i));
    if (!m) return fail();
    i += m[0].length;
    if (m[1] !== undefined) return Number(m[1]);
    return m[2] === "True" ? true : m[2] === "False" ? false : null;
  };
  const v = value();
  ws();
  if (i !== text.length) fail();
  return v;
}

/** Parses a complete `.npy` header (`bytes` holds at least `npyHeaderLength` bytes). */
export function parseNpyHeader(bytes: Uint8Array, label: string): NpyHeader {
  const headerLength = npyHeaderLength(bytes, label);
  if (bytes.length < headerLength) throw new InputError(`${label}: .npy header is truncated`);
  const version = bytes[6];
  const start = version === 1 ? 10 : 12;
  const decoder = new TextDecoder(version === 3 ? "utf-8" : "latin1");
  const text = decoder.decode(bytes.subarray(start, headerLength));
  const dict = parsePyLiteral(text, label);
  if (typeof dict !== "object" || dict === null || Array.isArray(dict)) {
    throw new InputError(`${label}: .npy header is not a dict: ${text.trim()}`);
  }
  const { descr, fortran_order: fortran, shape } = dict;
  const dtype = typeof descr === "string" && Object.hasOwn(DESCR_TO_DTYPE, descr)
    ? DESCR_TO_DTYPE[descr]
    : undefined;
  if (dtype === undefined) {
    throw new InputError(`${label}: unsupported .npy descr ${JSON.stringify(descr)}`);
  }
  if (fortran === true) {
    throw new InputError(`${label}: array is stored in Fortran order; only C order is supported`);
  }
  if (fortran !== false) throw new InputError(`${label}: .npy header has no fortran_order`);
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw new InputError(`${label}: .npy shape ${JSON.stringify(shape)} is not a tuple of sizes`);
  }
  return { version, dtype, shape: shape as number[], headerLength };
}

/** Encodes a version 1 header (version 2 if it would not fit), padded to 64 bytes as numpy does. */
export function encodeNpyHeader(dtype: DType, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${DTYPE_TO_DESCR[dtype]}', 'fortran_order': False, 'shape': ${dims}, }`;
  let prefix = 10;
  let total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  if (total - prefix > 0xffff) {
    prefix = 12;
    total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  }
  const out = new Uint8Array(total).fill(0x20);
  out.set(MAGIC, 0);
  out[6] = prefix === 10 ? 1 : 2;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (prefix === 10) view.setUint16(8, total - prefix, true);
  else view.setUint32(8, total - prefix, true);
  for (let k = 0; k < dict.length; k++) out[prefix + k] = dict.charCodeAt(k);
  out[total - 1] = 0x0a;
  return out;
}
