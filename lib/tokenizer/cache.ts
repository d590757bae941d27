/**
 * A pre-built cache of a BPE `tokenizer.json` (`tokenizer.pgcache`): the same tokenizer, loaded
 * in a tenth of the time. Building `@huggingface/tokenizers`' BPE model from the JSON (262k vocabulary,
 * 515k merges for Gemma) takes 2-3 s at every start: parsing 33 MB of JSON, a Map of every token
 * and a Map keyed by `JSON.stringify` of every merge. The cache stores the vocabulary as one string
 * with offsets and the merges as pairs of token ids; loading it builds the library's tokenizer from
 * the JSON without vocabulary and merges, then gives its model the vocabulary and a merge-rank
 * lookup over the id pairs (an open-addressing table in a typed array, built in milliseconds).
 * Encoding and decoding then run the library's own code, unchanged.
 *
 * The cache names the size and modification time of the tokenizer.json and tokenizer_config.json
 * it was built from and is ignored when they differ.
 *
 * Layout: "PGTOK\0\0\x01", header length (u32 LE), header JSON (UTF-8), zero padding to 4 bytes,
 * Int32 token offsets [vocab + 1] (UTF-16 units), Int32 merges [2 * merges] (token ids), then the
 * vocabulary string (UTF-8).
 * @module
 */

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import type { JsonObject } from "./hf.ts";

const MAGIC = new Uint8Array([0x50, 0x47, 0x54, 0x4f, 0x4b, 0, 0, 1]); // "PGTOK" v1
/** File name of the cache beside a tokenizer.json. */
export const TOKENIZER_CACHE = "tokenizer.pgcache";

/** What a cache was built from: sizes and modification times of its two source files. */
export interface TokenizerSource {
  /** tokenizer.json's size and mtime (ms). */
  readonly json: readonly [number, number];
  /** tokenizer_config.json's size and mtime (ms), or null when there was none. */
  readonly config: readonly [number, number] | null;
}

interface Header {
  readonly source: TokenizerSource;
  /** tokenizer.json without model.vocab and model.merges. */
  readonly json: JsonObject;
  readonly config: JsonObject;
  readonly vocab: number;
  readonly merges: number;
}

/** The BPE model fields of `@huggingface/tokenizers` 0.2 that the cache fills in. */
interface BpeModel {
  vocab: string[];
  tokens_to_ids: Map<string, number>;
  unk_token?: string;
  unk_token_id?: number;
  bpe_ranks: { get(key: string): number | undefined };
}

/**
 * The cache bytes of a parsed BPE tokenizer.json and its config, or null when this tokenizer does
 * not fit the cache (not BPE, ids not exactly 0..n-1, a merge of a token not in the vocabulary):
 * such a tokenizer is always built from its JSON.
 */
export function buildTokenizerCache(
  json: JsonObject,
  config: JsonObject,
  source: TokenizerSource,
): Uint8Array | null {
  const model = json.model as Record<string, unknown> | undefined;
  if (model?.type !== "BPE") return null;
  const vocab = model.vocab as Record<string, number> | undefined;
  const merges = model.merges as (string | [string, string])[] | undefined;
  if (typeof vocab !== "object" || vocab === null || !Array.isArray(merges)) return null;
  const entries = Object.entries(vocab);
  const tokens = new Array<string>(entries.length);
  for (const [token, id] of entries) {
    if (!Number.isInteger(id) || id < 0 || id >= entries.length || tokens[id] !== undefined) {
      return null;
    }
    tokens[id] = token;
  }
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => ids.set(t, i));
  const pairs = new Int32Array(2 * merges.length);
  for (let i = 0; i < merges.length; i++) {
    const m = merges[i];
    // As the library: "a b" split at the first two spaces, or a [a, b] pair.
    const [a, b] = Array.isArray(m) ? m : m.split(" ", 2);
    const ia = ids.get(a);
    const ib = ids.get(b);
    if (ia === undefined || ib === undefined) return null;
    pairs[2 * i] = ia;
    pairs[2 * i + 1] = ib;
  }
  const offsets = new Int32Array(tokens.length + 1);
  for (let i = 0; i < tokens.length; i++) offsets[i + 1] = offsets[i] + tokens[i].length;
  const text = new TextEncoder().encode(tokens.join(""));
  const { vocab: _v, merges: _m, ...rest } = model;
  const header: Header = {
    source,
    json: { ...json, model: rest },
    config,
    vocab: tokens.length,
    merges: merges.length,
  };
  const head = new TextEncoder().encode(JSON.stringify(header));
  const headEnd = align4(MAGIC.length + 4 + head.length);
  const out = new Uint8Array(headEnd + offsets.byteLength + pairs.byteLength + text.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(MAGIC.length, head.length, true);
  out.set(head, MAGIC.length + 4);
  out.set(new Uint8Array(offsets.buffer), headEnd);
  out.set(new Uint8Array(pairs.buffer), headEnd + offsets.byteLength);
  out.set(text, headEnd + offsets.byteLength + pairs.byteLength);
  return out;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function sameSource(a: TokenizerSource, b: TokenizerSource): boolean {
  const eq = (x: readonly [number, number] | null, y: readonly [number, number] | null) =>
    x === null || y === null ? x === y : x[0] === y[0] && x[1] === y[1];
  return eq(a.json, b.json) && eq(a.config, b.config);
}

/** FNV-1a over the UTF-16 units of `text` from `start` to `end`. */
function hashUnits(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * The library's `tokens_to_ids` and `vocab` over the cached vocabulary string, without a string
 * per token: an open-addressing table of ids hashed from the string's own units (built in one
 * pass), tokens sliced out on demand. Tokens `set` later (the added tokens) go to a small Map on
 * top, as they would overwrite a Map's entries.
 */
class VocabIndex {
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #added = new Map<string, number>();
  readonly #addedById = new Map<number, string>();
  readonly #count: number;

  constructor(readonly text: string, readonly offsets: Int32Array) {
    this.#count = offsets.length - 1;
    let size = 1;
    while (size < 2 * this.#count) size <<= 1;
    this.#slots = new Int32Array(size); // id + 1; 0 = empty
    this.#mask = size - 1;
    for (let id = 0; id < this.#count; id++) {
      let s = hashUnits(text, offsets[id], offsets[id + 1]) & this.#mask;
      while (this.#slots[s] !== 0) s = (s + 1) & this.#mask;
      this.#slots[s] = id + 1;
    }
  }

  /** The id of `token` in the model's own vocabulary (before any `set`). */
  baseGet(token: string): number | undefined {
    const { text, offsets } = this;
    const n = token.length;
    for (let s = hashUnits(token, 0, n) & this.#mask;; s = (s + 1) & this.#mask) {
      const id = this.#slots[s] - 1;
      if (id < 0) return undefined;
      const start = offsets[id];
      if (offsets[id + 1] - start !== n) continue;
      let i = 0;
      while (i < n && text.charCodeAt(start + i) === token.charCodeAt(i)) i++;
      if (i === n) return id;
    }
  }

  /** Map's `get`. */
  get(token: string): number | undefined {
    return this.#added.get(token) ?? this.baseGet(token);
  }

  /** Map's `has`. */
  has(token: string): boolean {
    return this.get(token) !== undefined;
  }

  /** Map's `set` (the added tokens). */
  set(token: string, id: number): this {
    this.#added.set(token, id);
    this.#addedById.set(id, token);
    return this;
  }

  /** The token of one id. */
  token(id: number): string | undefined {
    const added = this.#addedById.get(id);
    if (added !== undefined) return added;
    return id >= 0 && id < this.#count
      ? this.text.slice(this.offsets[id], this.offsets[id + 1])
      : undefined;
  }

  /** Number of ids: the vocabulary's, or past it when an added token's id is larger. */
  get length(): number {
    let n = this.#count;
    for (const id of this.#addedById.keys()) n = Math.max(n, id + 1);
    return n;
  }

  /** Map's `size`. */
  get size(): number {
    let extra = 0;
    for (const t of this.#added.keys()) if (this.baseGet(t) === undefined) extra++;
    return this.#count + extra;
  }

  /** Map's iteration: every (token, id). */
  *[Symbol.iterator](): IterableIterator<[string, number]> {
    for (let id = 0; id < this.#count; id++) {
      const t = this.text.slice(this.offsets[id], this.offsets[id + 1]);
      if (!this.#added.has(t)) yield [t, id];
    }
    yield* this.#added;
  }

  /** The library's `vocab` array (id → token), read through on demand. */
  vocab(): string[] {
    return new Proxy([] as string[], {
      get: (target, prop, receiver) => {
        if (prop === "length") return this.length;
        if (typeof prop === "string" && /^\d+$/.test(prop)) return this.token(Number(prop));
        return Reflect.get(target, prop, receiver);
      },
      set: (target, prop, value, receiver) => {
        if (typeof prop === "string" && /^\d+$/.test(prop)) {
          this.#addedById.set(Number(prop), String(value));
          return true;
        }
        return Reflect.set(target, prop, value, receiver);
      },
      has: (target, prop) =>
        typeof prop === "string" && /^\d+$/.test(prop)
          ? this.token(Number(prop)) !== undefined
          : Reflect.has(target, prop),
    });
  }
}

/** Merge rank of a (left id, right id) pair: open addressing over the merges, last rank wins. */
class MergeRanks {
  readonly #slots: Int32Array;
  readonly #mask: number;
  constructor(readonly pairs: Int32Array, readonly ids: VocabIndex) {
    const n = pairs.length >> 1;
    let size = 1;
    while (size < 2 * n) size <<= 1;
    this.#slots = new Int32Array(size); // rank + 1; 0 = empty
    this.#mask = size - 1;
    for (let r = 0; r < n; r++) {
      const a = pairs[2 * r];
      const b = pairs[2 * r + 1];
      let s = MergeRanks.hash(a, b) & this.#mask;
      for (;;) {
        const held = this.#slots[s] - 1;
        if (held < 0 || (pairs[2 * held] === a && pairs[2 * held + 1] === b)) {
          this.#slots[s] = r + 1; // a repeated merge keeps its last rank, as a Map would
          break;
        }
        s = (s + 1) & this.#mask;
      }
    }
  }

  static hash(a: number, b: number): number {
    return Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
  }

  /** The library's lookup: `key` is `JSON.stringify([left, right])`. */
  get(key: string): number | undefined {
    const pair = JSON.parse(key) as [string, string];
    const a = this.ids.baseGet(pair[0]);
    const b = this.ids.baseGet(pair[1]);
    if (a === undefined || b === undefined) return undefined;
    for (let s = MergeRanks.hash(a, b) & this.#mask;; s = (s + 1) & this.#mask) {
      const r = this.#slots[s] - 1;
      if (r < 0) return undefined;
      if (this.pairs[2 * r] === a && this.pairs[2 * r + 1] === b) return r;
    }
  }
}

/**
 * The tokenizer held by cache `bytes`, with its tokenizer.json and tokenizer_config.json, or null
 * when the bytes are not a cache of `source` (another version, other files, truncated).
 */
export function readTokenizerCache(
  bytes: Uint8Array,
  source: TokenizerSource,
): { tok: HfTokenizer; json: JsonObject; config: JsonObject } | null {
  if (bytes.length < MAGIC.length + 4 || MAGIC.some((m, i) => bytes[i] !== m)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLength = view.getUint32(MAGIC.length, true);
  let header: Header;
  try {
    const start = MAGIC.length + 4;
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(start, start + headLength)));
  } catch {
    return null;
  }
  if (!sameSource(header.source, source)) return null;
  const headEnd = align4(MAGIC.length + 4 + headLength);
  const offsetsBytes = 4 * (header.vocab + 1);
  const pairsBytes = 8 * header.merges;
  if (bytes.length < headEnd + offsetsBytes + pairsBytes) return null;
  // Copies: typed arrays need 4-byte aligned offsets into their own buffer.
  const ints = new Int32Array(
    bytes.buffer.slice(
      bytes.byteOffset + headEnd,
      bytes.byteOffset + headEnd + offsetsBytes + pairsBytes,
    ),
  );
  const offsets = ints.subarray(0, header.vocab + 1);
  const pairs = ints.subarray(header.vocab + 1);
  const text = new TextDecoder().decode(bytes.subarray(headEnd + offsetsBytes + pairsBytes));
  if (text.length !== offsets[header.vocab]) return null;
  const index = new VocabIndex(text, offsets);
  const model = header.json.model as JsonObject;
  const stub = { ...header.json, model: { ...model, vocab: {}, merges: [] } };
  const tok = new HfTokenizer(stub, header.config);
  const bpe = tok.model as unknown as BpeModel;
  // As the library's BPE constructor: the unknown id and the merges over the model's own
  // vocabulary; then the added tokens the Tokenizer constructor gave the (empty) model, again, on
  // top of it and in the same order.
  bpe.unk_token_id = bpe.unk_token === undefined ? undefined : index.baseGet(bpe.unk_token);
  bpe.bpe_ranks = new MergeRanks(pairs, index);
  const added = [...bpe.tokens_to_ids];
  for (const [token, id] of added) index.set(token, id);
  bpe.vocab = index.vocab();
  bpe.tokens_to_ids = index as unknown as Map<string, number>;
  const json = { ...header.json, model: { ...model } };
  return { tok, json, config: header.config };
}
