/**
 * The tokenizer interface shared by the `.json` (HF) and `.model` (SentencePiece) loaders.
 * @module
 */

/** Which file a tokenizer was loaded from, and so which reference its ids follow. */
export type TokenizerKind = "sentencepiece" | "huggingface";

/** A PaliGemma tokenizer: text to ids and back, with the special ids looked up from the vocabulary. */
export interface Tokenizer {
  /** `sentencepiece` for a `tokenizer.model`, `huggingface` for a `tokenizer.json`. */
  readonly kind: TokenizerKind;
  /** Size of the vocabulary including added tokens such as `<image>`. */
  readonly vocabSize: number;
  /** `<pad>` id. */
  readonly padId: number;
  /** `<eos>` id. */
  readonly eosId: number;
  /** `<bos>` id. */
  readonly bosId: number;
  /** `<unk>` id. */
  readonly unkId: number;
  /** `<image>` id (for a `.model`, the id right after the last piece). */
  readonly imageId: number;
  /** Id of `<loc0000>`; `<locN>` is locBase + N for N in 0..1023; -1 if the vocabulary has none. */
  readonly locBase: number;
  /** Id of `<seg000>`; `<segN>` is segBase + N for N in 0..127; -1 if the vocabulary has none. */
  readonly segBase: number;
  /** Encodes text without adding `<bos>` or `<eos>`. */
  encode(text: string): number[];
  /**
   * Decodes ids to text; special tokens (pad, bos, eos, image) are dropped when `skipSpecial`, ids
   * past the vocabulary (padded embedding rows) always (transformers decodes them to nothing).
   */
  decode(ids: readonly number[], skipSpecial?: boolean): string;
  /** The vocabulary string of one id (e.g. `<loc0012>`, `▁cat`). */
  idToToken(id: number): string | undefined;
  /** The id of one vocabulary string, or undefined if it is not in the vocabulary. */
  tokenToId(token: string): number | undefined;
}
