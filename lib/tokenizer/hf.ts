/**
 * A `tokenizer.json` (Hugging Face format) tokenizer on top of `@huggingface/tokenizers`, with the
 * PaliGemma special ids looked up from its vocabulary.
 * @module
 */

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { InputError } from "../errors.ts";
import { buildTokenDecoder, cleanUpTokenization, type TokenDecoder } from "./hf_decoder.ts";
import { contiguousBase, LOC_COUNT, locToken, SEG_COUNT, segToken } from "./special_ids.ts";
import type { Tokenizer } from "./tokenizer.ts";

const IMAGE_TOKEN = "<image>";

/** A parsed JSON object (tokenizer.json or tokenizer_config.json). */
export type JsonObject = Record<string, unknown>;

function isRecord(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The token string of a `*_token` entry in tokenizer_config.json (a string or `{content}`). */
function configToken(config: JsonObject, key: string): string | undefined {
  const v = config[key];
  if (typeof v === "string") return v;
  if (isRecord(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/** A tokenizer read from `tokenizer.json` (+ `tokenizer_config.json`), giving HF's ids. */
export class HuggingFaceTokenizer implements Tokenizer {
  /** Always `huggingface`. */
  readonly kind = "huggingface" as const;
  /** Vocabulary size including added tokens (and `<image>` when it had to be added). */
  readonly vocabSize: number;
  /** `<pad>` id. */
  readonly padId: number;
  /** `<eos>` id. */
  readonly eosId: number;
  /** `<bos>` id. */
  readonly bosId: number;
  /** `<unk>` id, or -1 when the vocabulary has none. */
  readonly unkId: number;
  /** `<image>` id: its added token, or the id after the last one when the file has none. */
  readonly imageId: number;
  /** `<loc0000>` id or -1. */
  readonly locBase: number;
  /** `<seg000>` id or -1. */
  readonly segBase: number;

  readonly #tok: HfTokenizer;
  readonly #modelSize: number;
  readonly #specialIds: ReadonlySet<number>;
  readonly #decoder: TokenDecoder | null;
  readonly #cleanUp: boolean;
  #imageAdded = false;

  /**
   * Builds the tokenizer from parsed JSON (or takes `built`, the library's tokenizer of that JSON
   * already built, e.g. from a tokenizer cache); `path` names the file in errors.
   */
  constructor(json: JsonObject, config: JsonObject, path: string, built?: HfTokenizer) {
    if (!isRecord(json.model) || typeof json.model.type !== "string") {
      throw new InputError(`${path}: not a tokenizer.json (no "model" with a "type")`);
    }
    try {
      this.#tok = built ?? new HfTokenizer(json, config);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new InputError(`${path}: cannot build the tokenizer (${why})`);
    }
    this.#modelSize = this.#tok.model?.vocab.length ?? 0;
    if (this.#modelSize === 0) throw new InputError(`${path}: the vocabulary is empty`);

    const special = new Set<number>();
    for (const [id, added] of this.#tok.get_added_tokens_decoder()) {
      if (added.special) special.add(id);
    }
    const required = (key: string, fallback: string): number => {
      const token = configToken(config, key) ?? fallback;
      const id = this.tokenToId(token);
      if (id === undefined) throw new InputError(`${path}: no ${key} "${token}" in the vocabulary`);
      return id;
    };
    this.padId = required("pad_token", "<pad>");
    this.eosId = required("eos_token", "<eos>");
    this.bosId = required("bos_token", "<bos>");
    this.unkId = this.tokenToId(configToken(config, "unk_token") ?? "<unk>") ?? -1;
    const image = this.tokenToId(IMAGE_TOKEN);
    this.imageId = image ?? this.#modelSize;
    this.#imageAdded = image === undefined;
    this.vocabSize = this.#modelSize + (this.#imageAdded ? 1 : 0);
    special.add(this.imageId);
    this.#specialIds = special;
    const lookup = (t: string): number | undefined => this.tokenToId(t);
    this.locBase = contiguousBase(lookup, locToken, LOC_COUNT, path);
    this.segBase = contiguousBase(lookup, segToken, SEG_COUNT, path);
    this.#decoder = buildTokenDecoder(json.decoder);
    this.#cleanUp = config.clean_up_tokenization_spaces === true;
  }

  /** Encodes text without adding `<bos>` or `<eos>` (`add_special_tokens=False`). */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.#tok.encode(text.toWellFormed(), { add_special_tokens: false }).ids;
  }

  /**
   * Decodes ids as `tokenizers` does; special added tokens are dropped when `skipSpecial`, and ids
   * past the vocabulary (padded embedding rows) always, as transformers decodes them to nothing.
   */
  decode(ids: readonly number[], skipSpecial = false): string {
    const tokens: string[] = [];
    const kept: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) {
        throw new InputError(`token id ${id} is not a token id (a whole number >= 0)`);
      }
      // As transformers: an id past the tokenizer (a padded embedding row) decodes to nothing.
      if (id >= this.vocabSize) continue;
      if (skipSpecial && this.#specialIds.has(id)) continue;
      tokens.push(this.idToToken(id) ?? "");
      kept.push(id);
    }
    if (tokens.length === 0) return "";
    let text: string;
    if (this.#decoder !== null) {
      text = this.#decoder(tokens);
    } else {
      text = this.#tok.decode(kept, { clean_up_tokenization_spaces: false });
    }
    return this.#cleanUp ? cleanUpTokenization(text) : text;
  }

  /** The token string of one id. */
  idToToken(id: number): string | undefined {
    if (id === this.imageId && this.#imageAdded) return IMAGE_TOKEN;
    return this.#tok.id_to_token(id);
  }

  /** The id of one token string, or undefined if it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    const id = this.#tok.token_to_id(token);
    return id === undefined && token === IMAGE_TOKEN && this.#imageAdded ? this.imageId : id;
  }
}
