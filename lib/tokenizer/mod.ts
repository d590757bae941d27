/**
 * Tokenizers for PaliGemma: `loadTokenizer` plus the two loaders and the shared interface.
 * @module
 */

export type { Tokenizer, TokenizerKind } from "./tokenizer.ts";
export { loadHuggingFaceTokenizer, loadSentencePieceTokenizer, loadTokenizer } from "./load.ts";
export { HuggingFaceTokenizer } from "./hf.ts";
export { SentencePieceTokenizer } from "./sentencepiece.ts";
export { locToken, segToken } from "./special_ids.ts";
