/**
 * Reads a SentencePiece `ModelProto` (`tokenizer.model`) with protobufjs. Only the fields the BPE
 * encoder needs are declared; their numbers and proto2 defaults follow the public
 * `sentencepiece_model.proto`. Unknown fields are skipped by the decoder.
 * @module
 */

import protobuf from "protobufjs";
import { InputError } from "../errors.ts";

/** `ModelProto.SentencePiece.Type` values. */
export const PieceType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** One of the `PieceType` values. */
export type PieceType = typeof PieceType[keyof typeof PieceType];

/** `TrainerSpec.ModelType` values. */
export const ModelType = { unigram: 1, bpe: 2, word: 3, char: 4 } as const;

/** One vocabulary entry. */
export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  readonly type: PieceType;
}

/** The `TrainerSpec` fields used at encode/decode time. */
export interface TrainerSpec {
  readonly modelType: number;
  readonly vocabSize: number;
  readonly splitDigits: boolean;
  readonly byteFallback: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkPiece: string;
  readonly bosPiece: string;
  readonly eosPiece: string;
  readonly padPiece: string;
  readonly unkSurface: string;
}

/** The `NormalizerSpec` fields used at encode/decode time. */
export interface NormalizerSpec {
  readonly name: string;
  readonly precompiledCharsmapBytes: number;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

/** A decoded `ModelProto`. */
export interface SentencePieceModel {
  readonly pieces: readonly SentencePiece[];
  readonly trainerSpec: TrainerSpec;
  readonly normalizerSpec: NormalizerSpec;
}

const SCHEMA = `
syntax = "proto2";
package sentencepiece;
message TrainerSpec {
  enum ModelType { UNIGRAM = 1; BPE = 2; WORD = 3; CHAR = 4; }
  optional ModelType model_type = 3 [default = UNIGRAM];
  optional int32 vocab_size = 4 [default = 8000];
  optional bool treat_whitespace_as_suffix = 24 [default = false];
  optional bool split_digits = 25 [default = false];
  optional bool byte_fallback = 35 [default = false];
  optional int32 unk_id = 40 [default = 0];
  optional int32 bos_id = 41 [default = 1];
  optional int32 eos_id = 42 [default = 2];
  optional int32 pad_id = 43 [default = -1];
  optional string unk_surface = 44 [default = " \u2047 "];
  optional string unk_piece = 45 [default = "<unk>"];
  optional string bos_piece = 46 [default = "<s>"];
  optional string eos_piece = 47 [default = "</s>"];
  optional string pad_piece = 48 [default = "<pad>"];
}
message NormalizerSpec {
  optional string name = 1;
  optional bytes precompiled_charsmap = 2;
  optional bool add_dummy_prefix = 3 [default = true];
  optional bool remove_extra_whitespaces = 4 [default = true];
  optional bool escape_whitespaces = 5 [default = true];
}
message ModelProto {
  message SentencePiece {
    enum Type { NORMAL = 1; UNKNOWN = 2; CONTROL = 3; USER_DEFINED = 4; BYTE = 6; UNUSED = 5; }
    optional string piece = 1;
    optional float score = 2;
    optional Type type = 3 [default = NORMAL];
  }
  repeated SentencePiece pieces = 1;
  optional TrainerSpec trainer_spec = 2;
  optional NormalizerSpec normalizer_spec = 3;
}
`;

interface RawPiece {
  piece: string;
  score: number;
  type: number;
}

interface RawTrainerSpec {
  modelType: number;
  vocabSize: number;
  treatWhitespaceAsSuffix: boolean;
  splitDigits: boolean;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkSurface: string;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
}

interface RawNormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

interface RawModel {
  pieces: RawPiece[];
  trainerSpec: RawTrainerSpec | null;
  normalizerSpec: RawNormalizerSpec | null;
}

let modelType: protobuf.Type | undefined;

function schema(): protobuf.Type {
  modelType ??= protobuf.parse(SCHEMA, { keepCase: false }).root.lookupType(
    "sentencepiece.ModelProto",
  );
  return modelType;
}

const VALID_TYPES: ReadonlySet<number> = new Set(Object.values(PieceType));

/** Decodes the bytes of a `tokenizer.model`; throws `InputError` naming `path` if they are not one. */
export function parseSentencePieceModel(bytes: Uint8Array, path: string): SentencePieceModel {
  const type = schema();
  let raw: RawModel;
  try {
    // Decoded messages read unset proto2 fields from their declared defaults, enums as numbers.
    raw = type.decode(bytes) as unknown as RawModel;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`${path}: not a SentencePiece model (protobuf decode failed: ${why})`);
  }
  if (raw.pieces.length === 0) {
    throw new InputError(`${path}: not a SentencePiece model (no pieces)`);
  }
  const pieces: SentencePiece[] = raw.pieces.map((p, i) => {
    if (!VALID_TYPES.has(p.type)) {
      throw new InputError(`${path}: piece ${i} has an unknown type ${p.type}`);
    }
    if (p.piece.length === 0) throw new InputError(`${path}: piece ${i} is empty`);
    return { piece: p.piece, score: p.score, type: p.type as PieceType };
  });
  const t = raw.trainerSpec;
  const n = raw.normalizerSpec;
  if (t === null || n === null) {
    throw new InputError(`${path}: not a SentencePiece model (no trainer or normalizer spec)`);
  }
  return {
    pieces,
    trainerSpec: {
      modelType: t.modelType,
      vocabSize: t.vocabSize,
      splitDigits: t.splitDigits,
      byteFallback: t.byteFallback,
      treatWhitespaceAsSuffix: t.treatWhitespaceAsSuffix,
      unkId: t.unkId,
      bosId: t.bosId,
      eosId: t.eosId,
      padId: t.padId,
      unkPiece: t.unkPiece,
      bosPiece: t.bosPiece,
      eosPiece: t.eosPiece,
      padPiece: t.padPiece,
      unkSurface: t.unkSurface,
    },
    normalizerSpec: {
      name: n.name,
      precompiledCharsmapBytes: n.precompiledCharsmap.length,
      addDummyPrefix: n.addDummyPrefix,
      removeExtraWhitespaces: n.removeExtraWhitespaces,
      escapeWhitespaces: n.escapeWhitespaces,
    },
  };
}

/** Serialises a model back to `ModelProto` bytes (for building test and benchmark models). */
export function serializeSentencePieceModel(model: SentencePieceModel): Uint8Array {
  const type = schema();
  const { pieces, trainerSpec: t, normalizerSpec: n } = model;
  const message = type.fromObject({
    pieces: pieces.map((p) => ({ piece: p.piece, score: p.score, type: p.type })),
    trainerSpec: {
      modelType: t.modelType,
      vocabSize: t.vocabSize,
      splitDigits: t.splitDigits,
      byteFallback: t.byteFallback,
      treatWhitespaceAsSuffix: t.treatWhitespaceAsSuffix,
      unkId: t.unkId,
      bosId: t.bosId,
      eosId: t.eosId,
      padId: t.padId,
      unkPiece: t.unkPiece,
      bosPiece: t.bosPiece,
      eosPiece: t.eosPiece,
      padPiece: t.padPiece,
      unkSurface: t.unkSurface,
    },
    normalizerSpec: {
      name: n.name,
      addDummyPrefix: n.addDummyPrefix,
      removeExtraWhitespaces: n.removeExtraWhitespaces,
      escapeWhitespaces: n.escapeWhitespaces,
    },
  });
  return type.encode(message).finish();
}
