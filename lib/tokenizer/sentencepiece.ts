/**
 * A `tokenizer.model` (SentencePiece BPE) tokenizer that gives the ids the `sentencepiece` library
 * gives: identity normalisation with spaces escaped as `▁`, user-defined pieces matched whole, BPE
 * merges of the highest-scoring adjacent pair, and byte fallback to `<0xNN>` pieces.
 * @module
 */

import { InputError } from "../errors.ts";
import { PairHeap } from "./pair_heap.ts";
import { PrefixMatcher } from "./prefix_matcher.ts";
import {
  ModelType,
  parseSentencePieceModel,
  PieceType,
  type SentencePieceModel,
} from "./sentencepiece_proto.ts";
import { contiguousBase, LOC_COUNT, locToken, SEG_COUNT, segToken } from "./special_ids.ts";
import type { Tokenizer } from "./tokenizer.ts";

const SPACE_SYMBOL = "\u2581";
const IMAGE_TOKEN = "<image>";
const REPLACEMENT = "\uFFFD";

/** Length in bytes of a well-formed UTF-8 sequence starting at `i`, or 0 if there is none. */
function validUtf8Length(bytes: readonly number[], i: number): number {
  const b0 = bytes[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean =>
    i + k < bytes.length && bytes[i + k] >= lo && bytes[i + k] <= hi;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/** Decodes bytes as SentencePiece does: each byte that starts no valid sequence becomes U+FFFD. */
function decodeBytes(bytes: readonly number[], decoder: TextDecoder): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const n = validUtf8Length(bytes, i);
    if (n === 0) {
      out += REPLACEMENT;
      i += 1;
    } else {
      out += decoder.decode(new Uint8Array(bytes.slice(i, i + n)));
      i += n;
    }
  }
  return out;
}

/** A SentencePiece BPE tokenizer over the pieces and scores of a `ModelProto`. */
export class SentencePieceTokenizer implements Tokenizer {
  /** Always `sentencepiece`. */
  readonly kind = "sentencepiece" as const;
  /** Pieces plus `<image>` when the model has no such piece. */
  readonly vocabSize: number;
  /** `<pad>` id. */
  readonly padId: number;
  /** `<eos>` id. */
  readonly eosId: number;
  /** `<bos>` id. */
  readonly bosId: number;
  /** `<unk>` id. */
  readonly unkId: number;
  /** `<image>` id: its piece, or the id right after the last piece. */
  readonly imageId: number;
  /** `<loc0000>` id or -1. */
  readonly locBase: number;
  /** `<seg000>` id or -1. */
  readonly segBase: number;
  /** `split_digits` of the trainer spec; it shaped the vocabulary, encoding does not split. */
  readonly splitDigits: boolean;

  readonly #pieces: readonly string[];
  readonly #types: Uint8Array;
  readonly #scores: Float64Array;
  /** NORMAL, USER_DEFINED and UNUSED pieces: the merge candidates. */
  readonly #normal = new Map<string, number>();
  /** CONTROL, UNKNOWN and BYTE pieces. */
  readonly #reserved = new Map<string, number>();
  readonly #byteIds = new Int32Array(256).fill(-1);
  readonly #byteFallback: boolean;
  /** Longest merge candidate, in UTF-16 units: longer pairs need no lookup. */
  readonly #maxNormalLength: number;
  readonly #userDefined: PrefixMatcher;
  readonly #addDummyPrefix: boolean;
  readonly #removeExtraWhitespaces: boolean;
  readonly #escapeWhitespaces: boolean;
  readonly #treatWhitespaceAsSuffix: boolean;
  readonly #unkSurface: string;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  /** Builds the tokenizer from a decoded model; `path` names the file in errors. */
  constructor(model: SentencePieceModel, path: string) {
    const { pieces, trainerSpec: trainer, normalizerSpec: norm } = model;
    if (trainer.modelType !== ModelType.bpe) {
      const name = Object.entries(ModelType).find(([, v]) => v === trainer.modelType)?.[0];
      throw new InputError(
        `${path}: only BPE SentencePiece models are supported, this one is ${
          name?.toUpperCase() ?? trainer.modelType
        }`,
      );
    }
    if (norm.precompiledCharsmapBytes > 0) {
      throw new InputError(
        `${path}: normaliser "${norm.name}" is not supported (only identity, as Gemma uses)`,
      );
    }
    this.#pieces = pieces.map((p) => p.piece);
    this.#types = Uint8Array.from(pieces, (p) => p.type);
    this.#scores = Float64Array.from(pieces, (p) => p.score);
    this.#byteFallback = trainer.byteFallback;
    const userDefined: string[] = [];
    let unk = -1;
    for (let id = 0; id < pieces.length; id++) {
      const p = pieces[id];
      const isNormal = p.type === PieceType.normal || p.type === PieceType.userDefined ||
        p.type === PieceType.unused;
      const map = isNormal ? this.#normal : this.#reserved;
      const before = map.size;
      map.set(p.piece, id);
      if (map.size === before) throw new InputError(`${path}: piece "${p.piece}" is defined twice`);
      if (p.type === PieceType.userDefined) userDefined.push(p.piece);
      if (p.type === PieceType.unknown) {
        if (unk >= 0) throw new InputError(`${path}: more than one unknown piece`);
        unk = id;
      }
      if (p.type === PieceType.byte) {
        const m = /^<0x([0-9A-F]{2})>$/.exec(p.piece);
        if (m === null || !this.#byteFallback) {
          throw new InputError(`${path}: unexpected byte piece "${p.piece}"`);
        }
        this.#byteIds[parseInt(m[1], 16)] = id;
      }
    }
    if (unk < 0) throw new InputError(`${path}: no unknown (<unk>) piece`);
    let longest = 0;
    for (const piece of this.#normal.keys()) longest = Math.max(longest, piece.length);
    this.#maxNormalLength = longest;
    if (this.#byteFallback && this.#byteIds.includes(-1)) {
      throw new InputError(`${path}: byte_fallback is set but not all 256 <0xNN> pieces exist`);
    }
    this.unkId = unk;
    this.#userDefined = new PrefixMatcher(userDefined);
    this.#addDummyPrefix = norm.addDummyPrefix;
    this.#removeExtraWhitespaces = norm.removeExtraWhitespaces;
    this.#escapeWhitespaces = norm.escapeWhitespaces;
    this.#treatWhitespaceAsSuffix = trainer.treatWhitespaceAsSuffix;
    this.#unkSurface = trainer.unkSurface;
    this.splitDigits = trainer.splitDigits;

    const control = (piece: string, what: string): number => {
      const id = this.#pieceToId(piece);
      if (this.#types[id] !== PieceType.control) {
        throw new InputError(`${path}: no ${what} piece "${piece}" of type CONTROL`);
      }
      return id;
    };
    this.padId = control(trainer.padPiece, "pad");
    this.eosId = control(trainer.eosPiece, "eos");
    this.bosId = control(trainer.bosPiece, "bos");
    const image = this.#normal.get(IMAGE_TOKEN) ?? this.#reserved.get(IMAGE_TOKEN);
    this.imageId = image ?? pieces.length;
    this.vocabSize = pieces.length + (image === undefined ? 1 : 0);
    const lookup = (t: string): number | undefined => this.tokenToId(t);
    this.locBase = contiguousBase(lookup, locToken, LOC_COUNT, path);
    this.segBase = contiguousBase(lookup, segToken, SEG_COUNT, path);
  }

  /** Parses the bytes of a `tokenizer.model`; throws `InputError` naming `path` if they are bad. */
  static fromBytes(bytes: Uint8Array, path: string): SentencePieceTokenizer {
    return new SentencePieceTokenizer(parseSentencePieceModel(bytes, path), path);
  }

  /** SentencePiece's PieceToId: reserved pieces first, then normal ones, else `<unk>`. */
  #pieceToId(piece: string): number {
    return this.#reserved.get(piece) ?? this.#normal.get(piece) ?? this.unkId;
  }

  /** Identity normalisation: optional whitespace clean-up, dummy prefix, spaces as `▁`. */
  #normalize(text: string): string {
    let s = text.toWellFormed();
    if (this.#removeExtraWhitespaces) s = s.replace(/ +/g, " ").replace(/^ | $/g, "");
    if (s.length === 0) return s;
    if (this.#addDummyPrefix) s = this.#treatWhitespaceAsSuffix ? s + " " : " " + s;
    return this.#escapeWhitespaces ? s.replaceAll(" ", SPACE_SYMBOL) : s;
  }

  /** Encodes text without adding `<bos>` or `<eos>`, as `sentencepiece`'s `encode` does. */
  encode(text: string): number[] {
    const norm = this.#normalize(text);
    if (norm.length === 0) return [];

    // Initial symbols: whole user-defined pieces (frozen), else single code points.
    const starts: number[] = [];
    const lens: number[] = [];
    const frozen: boolean[] = [];
    for (let pos = 0; pos < norm.length;) {
      const matched = this.#userDefined.match(norm, pos);
      let len = matched;
      if (len === 0) {
        const unit = norm.charCodeAt(pos);
        len = unit >= 0xd800 && unit <= 0xdbff && pos + 1 < norm.length ? 2 : 1;
      }
      starts.push(pos);
      lens.push(len);
      frozen.push(matched > 0);
      pos += len;
    }
    const count = starts.length;
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }

    const heap = new PairHeap();
    const revMerge = new Map<string, [string, string]>();
    const addPair = (left: number, right: number): void => {
      if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
      const size = lens[left] + lens[right];
      if (size > this.#maxNormalLength) return;
      const piece = norm.slice(starts[left], starts[left] + size);
      const id = this.#normal.get(piece);
      if (id === undefined) return;
      heap.push(left, right, this.#scores[id], size);
      if (this.#types[id] === PieceType.unused) {
        revMerge.set(piece, [
          norm.slice(starts[left], starts[left] + lens[left]),
          norm.slice(starts[right], starts[right] + lens[right]),
        ]);
      }
    };
    for (let i = 1; i < count; i++) addPair(i - 1, i);

    while (heap.pop()) {
      const left = heap.topLeft;
      const right = heap.topRight;
      // Skip pairs made stale by an earlier merge of either symbol.
      if (lens[left] === 0 || lens[right] === 0 || lens[left] + lens[right] !== heap.topSize) {
        continue;
      }
      lens[left] += lens[right];
      lens[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      addPair(prev[left], left);
      addPair(left, next[left]);
    }

    const ids: number[] = [];
    const emit = (piece: string): void => {
      const id = this.#pieceToId(piece);
      if (this.#types[id] === PieceType.unused) {
        const parts = revMerge.get(piece);
        if (parts !== undefined) {
          emit(parts[0]);
          emit(parts[1]);
          return;
        }
      }
      if (id === this.unkId && this.#byteFallback) {
        for (const b of this.#encoder.encode(piece)) ids.push(this.#byteIds[b]);
      } else {
        ids.push(id);
      }
    };
    for (let i = 0; i !== -1; i = next[i]) emit(norm.slice(starts[i], starts[i] + lens[i]));
    return ids;
  }

  /**
   * Decodes ids as `sentencepiece` does (`▁` to space, byte runs as UTF-8 with U+FFFD for bad
   * bytes, `<unk>` as its surface). Control pieces and `<image>` appear as their piece text unless
   * `skipSpecial`, which gives exactly `sentencepiece`'s `decode`. Ids past the vocabulary (padded
   * embedding rows) decode to nothing, as in transformers.
   */
  decode(ids: readonly number[], skipSpecial = false): string {
    let text = "";
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;
    const stripLeading = this.#addDummyPrefix || this.#removeExtraWhitespaces;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) {
        throw new InputError(`token id ${id} is not a token id (a whole number >= 0)`);
      }
      // As transformers (its tokenizer drops ids it has no token for): a padded embedding row
      // decodes to nothing, and does not split a byte run.
      if (id >= this.vocabSize) continue;
      const type = this.#types[id];
      if (type === PieceType.byte) {
        bytes.push(parseInt(this.#pieces[id].slice(3, 5), 16));
        continue;
      }
      if (bytes.length > 0) {
        text += decodeBytes(bytes, this.#decoder);
        bytes = [];
      }
      if (bosWsSeen || text.length > 0) isBosWs = false;
      bosWsSeen = false;
      if (id === this.imageId && id === this.#pieces.length) {
        if (!skipSpecial) text += IMAGE_TOKEN;
      } else if (type === PieceType.control) {
        if (!skipSpecial) text += this.#pieces[id];
      } else if (type === PieceType.unknown) {
        text += this.#unkSurface;
      } else {
        let piece = this.#pieces[id];
        if (isBosWs && stripLeading && piece.startsWith(SPACE_SYMBOL)) {
          piece = piece.slice(SPACE_SYMBOL.length);
          bosWsSeen = !this.#removeExtraWhitespaces;
        }
        text += piece.replaceAll(SPACE_SYMBOL, " ");
      }
    }
    if (bytes.length > 0) text += decodeBytes(bytes, this.#decoder);
    return text;
  }

  /** The piece of one id (`<image>` for the added image id). */
  idToToken(id: number): string | undefined {
    if (id === this.imageId) return IMAGE_TOKEN;
    return this.#pieces[id];
  }

  /** The id of one piece, or undefined if it is not a piece. */
  tokenToId(token: string): number | undefined {
    if (token === IMAGE_TOKEN) return this.imageId;
    return this.#normal.get(token) ?? this.#reserved.get(token);
  }

  /** The score of one piece (0 for the added `<image>`). */
  score(id: number): number {
    return this.#scores[id] ?? 0;
  }
}
