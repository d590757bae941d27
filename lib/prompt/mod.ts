/**
 * Prompt assembly for PaliGemma: task prefixes, token layout and batches (the
 * prefix-LM attention mask is built inside the converted decoder graph).
 * @module
 */
export { buildPrompt, type PromptInput } from "./build.ts";
export { batchPrompts, type PromptBatch } from "./batch.ts";
export { answerPrefix, captionPrefix, detectPrefix, segmentPrefix } from "./tasks.ts";
