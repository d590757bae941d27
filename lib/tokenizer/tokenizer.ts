/**
 * The tokenizer interface shared by the `.json` (HF) and `.model` (SentencePiece) loaders.
 * @module
 */

/** A PaliGemma tokenizer: text to ids and back, with the special ids looked up from the vocabulary. */
export interface Tokenizer {
  /** Size of the vocabulary including added tokens such as `<image>`. */
  readonly vocabSize: number;
  /** `<pad>` id. */
  readonly padId: number;
  /** `<eos>` id. */
  readonly eosId: number;
  /** `<bos>` id. */
  readonly bosId: number;
  /** `<image>` id (for a `.model`, the id right after the last piece). */
  readonly imageId: number;
  /** Id of `<loc0000>`; `<locN>` is locBase + N for N in 0..1023. */
  readonly locBase: number;
  /** Id of `<seg000>`; `<segN>` is segBase + N for N in 0..127. */
  readonly segBase: number;
  /** Encodes text without adding `<bos>` or `<eos>`. */
  encode(text: string): number[];
  /** Decodes ids to text; special tokens (pad, bos, eos, image) are dropped when `skipSpecial`. */
  decode(ids: readonly number[], skipSpecial?: boolean): string;
  /** The vocabulary string of one id (e.g. `<loc0012>`, `▁cat`). */
  idToToken(id: number): string | undefined;
}
