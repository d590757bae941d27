/**
 * Turns a SentencePiece BPE `tokenizer.model` into the Hugging Face `tokenizer.json` and
 * `tokenizer_config.json` that transformers' Gemma conversion writes: a byte-fallback BPE model
 * whose vocabulary is the pieces (`<0x09>` spelled as a tab) and whose merges are every split of a
 * piece into two pieces, ranked by the merged piece's score; spaces replaced by `▁`; control and
 * user-defined pieces as added tokens; `<image>` added right after the last piece.
 * @module
 */

import { join } from "node:path";
import { describeFsError, InputError } from "../errors.ts";
import type { JsonObject } from "./hf.ts";
import {
  ModelType,
  parseSentencePieceModel,
  PieceType,
  type SentencePieceModel,
} from "./sentencepiece_proto.ts";
import { writeFileAtomic } from "../atomic.ts";

const SPACE_SYMBOL = "\u2581";
const IMAGE_TOKEN = "<image>";
const TAB_BYTE_PIECE = "<0x09>";
/** Pieces transformers' Gemma converter marks special although they are not control pieces. */
const EXTRA_SPECIAL: ReadonlySet<string> = new Set(["<start_of_turn>", "<end_of_turn>"]);
/** `model_max_length` written to tokenizer_config.json (beyond any PaliGemma context). */
const MODEL_MAX_LENGTH = 1 << 20;

/** Options of {@link sentencePieceToHf}. */
export interface ToHfOptions {
  /** Put `<bos>` before each sequence in the post-processor (default false, as PaliGemma). */
  readonly addBos?: boolean;
  /** Put `<eos>` after each sequence in the post-processor (default false). */
  readonly addEos?: boolean;
}

/** The two files of an HF fast tokenizer, as JSON objects. */
export interface HfTokenizerFiles {
  /** `tokenizer.json`. */
  readonly tokenizer: JsonObject;
  /** `tokenizer_config.json`. */
  readonly config: JsonObject;
}

interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
}

/** The code points of `s` (Python's `len` counts them). */
function codePoints(s: string): string[] {
  return Array.from(s);
}

/** A candidate merge: its halves, their ids and lengths in code points, the merged score. */
interface Merge {
  readonly l: string;
  readonly r: string;
  readonly li: number;
  readonly ri: number;
  readonly score: number;
  readonly ll: number;
  readonly rl: number;
}

/**
 * Merges as transformers' `generate_merges` derives them: for each vocabulary entry in order, every
 * split into two strings both in `known`, sorted by the pieces' ids; then all of them stably
 * sorted by (score, left length, right length), highest first.
 */
function deriveMerges(
  entries: readonly (readonly [string, number])[],
  known: ReadonlyMap<string, number>,
): [string, string][] {
  const scores = new Map<string, number>();
  for (const [piece, score] of entries) scores.set(piece, score);
  const all: Merge[] = [];
  for (const [piece, score] of scores) {
    const cps = codePoints(piece);
    const local: Merge[] = [];
    let at = 0;
    for (let i = 1; i < cps.length; i++) {
      at += cps[i - 1].length;
      const l = piece.slice(0, at);
      const r = piece.slice(at);
      const li = known.get(l);
      const ri = known.get(r);
      if (li === undefined || ri === undefined) continue;
      local.push({ l, r, li, ri, score, ll: i, rl: cps.length - i });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    for (const m of local) all.push(m);
  }
  all.sort((a, b) => b.score - a.score || b.ll - a.ll || b.rl - a.rl);
  return all.map((m) => [m.l, m.r]);
}

function addedTokenJson(t: AddedToken): JsonObject {
  return {
    id: t.id,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  };
}

function postProcessor(bos: [string, number], eos: [string, number], opts: ToHfOptions) {
  const seq = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const tok = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  const part = (id: string, typeId: number) => [
    ...(opts.addBos ? [tok(bos[0], typeId)] : []),
    seq(id, typeId),
    ...(opts.addEos ? [tok(eos[0], typeId)] : []),
  ];
  const special: JsonObject = {};
  for (const [on, [content, id]] of [[opts.addBos, bos], [opts.addEos, eos]] as const) {
    if (on) special[content] = { id: content, ids: [id], tokens: [content] };
  }
  return {
    type: "TemplateProcessing",
    single: part("A", 0),
    pair: [...part("A", 0), ...part("B", 1)],
    special_tokens: special,
  };
}

/**
 * Builds `tokenizer.json` and `tokenizer_config.json` from a parsed SentencePiece BPE model, as
 * transformers' Gemma converter does; `path` names the model in errors.
 */
export function sentencePieceToHf(
  model: SentencePieceModel,
  path: string,
  opts: ToHfOptions = {},
): HfTokenizerFiles {
  const { pieces, trainerSpec: spec } = model;
  if (spec.modelType !== ModelType.bpe) {
    throw new InputError(
      `${path}: only SentencePiece BPE models convert to tokenizer.json ` +
        `(model type ${spec.modelType})`,
    );
  }
  const pieceId = (piece: string, what: string): number => {
    const id = pieces.findIndex((p) => p.piece === piece);
    if (id < 0) throw new InputError(`${path}: no ${what} piece "${piece}"`);
    return id;
  };
  const bos: [string, number] = [spec.bosPiece, pieceId(spec.bosPiece, "bos")];
  const eos: [string, number] = [spec.eosPiece, pieceId(spec.eosPiece, "eos")];
  const pad: [string, number] = [spec.padPiece, pieceId(spec.padPiece, "pad")];
  const unk: [string, number] = [spec.unkPiece, pieceId(spec.unkPiece, "unk")];

  // The vocabulary: pieces in id order, the tab byte piece spelled as a tab.
  const entries = pieces.map((p) =>
    [p.piece === TAB_BYTE_PIECE ? "\t" : p.piece, p.score] as const
  );
  const vocab: JsonObject = {};
  for (const [i, [piece]] of entries.entries()) vocab[piece] = i;
  // Merge halves are looked up among the original pieces, plus a tab standing for `<0x09>`.
  const known = new Map<string, number>(pieces.map((p, i) => [p.piece, i]));
  const tab = known.get(TAB_BYTE_PIECE);
  if (!known.has("\t") && tab !== undefined) known.set("\t", tab);
  const merges = deriveMerges(entries, known);

  const added: AddedToken[] = [];
  for (const [id, p] of pieces.entries()) {
    if (p.type === PieceType.control || p.type === PieceType.userDefined) {
      const special = p.type === PieceType.control || EXTRA_SPECIAL.has(p.piece);
      added.push({ id, content: p.piece, special });
    } else if (id === unk[1]) {
      // The tokenizer's special tokens (here only `<unk>` is not a control piece) are special.
      added.push({ id, content: p.piece, special: true });
    }
  }
  // `<image>` is a special token: after the last piece, or marked special where it is a piece.
  const imageId = known.get(IMAGE_TOKEN) ?? pieces.length;
  const kept = added.filter((t) => t.id !== imageId);
  kept.push({ id: imageId, content: IMAGE_TOKEN, special: true });
  kept.sort((a, b) => a.id - b.id);

  const tokenizer: JsonObject = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: kept.map(addedTokenJson),
    normalizer: { type: "Replace", pattern: { String: " " }, content: SPACE_SYMBOL },
    pre_tokenizer: {
      type: "Split",
      pattern: { String: " " },
      behavior: "MergedWithPrevious",
      invert: false,
    },
    post_processor: postProcessor(bos, eos, opts),
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: SPACE_SYMBOL }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk[0],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };

  const decoder: JsonObject = {};
  for (const t of kept) {
    decoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: t.special,
    };
  }
  const config: JsonObject = {
    add_bos_token: opts.addBos ?? false,
    add_eos_token: opts.addEos ?? false,
    added_tokens_decoder: decoder,
    additional_special_tokens: [IMAGE_TOKEN],
    bos_token: bos[0],
    clean_up_tokenization_spaces: false,
    eos_token: eos[0],
    extra_special_tokens: {},
    model_max_length: MODEL_MAX_LENGTH,
    pad_token: pad[0],
    sp_model_kwargs: null,
    spaces_between_special_tokens: false,
    tokenizer_class: "GemmaTokenizer",
    unk_token: unk[0],
    use_default_system_prompt: false,
  };
  return { tokenizer, config };
}

/** Reads and converts a `tokenizer.model` file; throws `InputError` naming it when it is bad. */
export async function sentencePieceFileToHf(
  path: string,
  opts: ToHfOptions = {},
): Promise<HfTokenizerFiles> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  return sentencePieceToHf(parseSentencePieceModel(bytes, path), path, opts);
}

function writeJsonAtomic(path: string, value: JsonObject): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/**
 * Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (each under a temporary name,
 * then renamed); `config: false` writes only `tokenizer.json`.
 */
export async function writeHfTokenizer(
  files: HfTokenizerFiles,
  dir: string,
  config = true,
): Promise<void> {
  await writeJsonAtomic(join(dir, "tokenizer.json"), files.tokenizer);
  if (config) await writeJsonAtomic(join(dir, "tokenizer_config.json"), files.config);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw describeFsError(err, path);
  }
}

/**
 * Completes a tokenizer folder that has `tokenizer.model` but no `tokenizer.json`: writes the
 * converted `tokenizer.json`, and `tokenizer_config.json` when there is none (an existing one is
 * kept, and its `add_bos_token` / `add_eos_token` shape the post-processor). Returns whether it
 * wrote anything.
 */
export async function fillTokenizerJson(dir: string): Promise<boolean> {
  const model = join(dir, "tokenizer.model");
  if (await isFile(join(dir, "tokenizer.json")) || !(await isFile(model))) return false;
  const configPath = join(dir, "tokenizer_config.json");
  let existing: JsonObject | undefined;
  if (await isFile(configPath)) {
    try {
      existing = JSON.parse(await Deno.readTextFile(configPath));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new InputError(`${configPath}: not valid JSON (${why})`);
    }
  }
  const files = await sentencePieceFileToHf(model, {
    addBos: existing?.add_bos_token === true,
    addEos: existing?.add_eos_token === true,
  });
  await writeHfTokenizer(files, dir, existing === undefined);
  return true;
}
