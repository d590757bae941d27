/**
 * The PaliGemma model input for one image and one prompt, laid out as HF's `PaliGemmaProcessor`
 * does: `numImageTokens` × `<image>`, `<bos>`, the prefix and `"\n"` tokenized together, then an
 * optional suffix followed by `<eos>` (for scoring).
 * @module
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** One sequence's ids and the per-token side inputs the model takes. */
export interface PromptInput {
  /** Token ids. */
  readonly inputIds: Int32Array;
  /** 0 for image tokens, `<bos>`, prefix and `"\n"`; 1 for suffix tokens and their `<eos>`. */
  readonly tokenTypeIds: Int32Array;
  /** 1-based positions as HF numbers them (1, 2, …, length). */
  readonly positionIds: Int32Array;
  /** All ones (a single sequence has no padding). */
  readonly attentionMask: Int32Array;
  /** Number of tokens with token type 0 (image tokens + `<bos>` + prefix + `"\n"`). */
  readonly prefixLength: number;
  /** Number of `<image>` tokens at the start. */
  readonly numImageTokens: number;
}

/**
 * Builds the input for `prefix` (a task prefix or a raw prompt, used unchanged) and, for scoring,
 * an optional `suffix`. The prefix and its `"\n"` are tokenized as one string, as HF does (big_vision
 * tokenizes them separately, which can split differently).
 */
export function buildPrompt(
  tok: Tokenizer,
  numImageTokens: number,
  prefix: string,
  suffix?: string,
): PromptInput {
  if (!Number.isInteger(numImageTokens) || numImageTokens < 0) {
    throw new RangeError(`buildPrompt: bad number of image tokens ${numImageTokens}`);
  }
  const head = [
    ...new Array<number>(numImageTokens).fill(tok.imageId),
    tok.bosId,
    ...tok.encode(`${prefix}\n`),
  ];
  const tail = suffix === undefined ? [] : [...tok.encode(suffix), tok.eosId];
  const n = head.length + tail.length;
  const inputIds = Int32Array.from([...head, ...tail]);
  const tokenTypeIds = new Int32Array(n).fill(1, head.length);
  const positionIds = Int32Array.from({ length: n }, (_, i) => i + 1);
  const attentionMask = new Int32Array(n).fill(1);
  return {
    inputIds,
    tokenTypeIds,
    positionIds,
    attentionMask,
    prefixLength: head.length,
    numImageTokens,
  };
}
