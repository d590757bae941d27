/**
 * Prompt assembly for PaliGemma: task prefixes, token layout, batches and the prefix-LM mask.
 * @module
 */
export { buildPrompt, type PromptInput } from "./build.ts";
export { batchPrompts, type PromptBatch } from "./batch.ts";
export { additiveMask, batchPrefixLmMask, FLOAT32_MIN, prefixLmMask } from "./mask.ts";
export { answerPrefix, captionPrefix, detectPrefix, segmentPrefix } from "./tasks.ts";
