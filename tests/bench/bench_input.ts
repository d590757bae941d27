/**
 * The fixed input the speed benchmarks feed a model: a smooth synthetic image and a prompt of
 * image tokens, `<bos>`, eight text tokens and `"\n"`, so every benchmark times the same work.
 * @module
 */

import type { PaliGemmaConfig } from "../../lib/model/config.ts";

/** Text tokens between `<bos>` and the final `"\n"`. */
export const PROMPT_TOKENS = 8;

/** Pixel values [3, S, S] and prompt ids for `cfg`. */
export function benchInput(cfg: PaliGemmaConfig): { pixels: Float32Array; ids: Int32Array } {
  const s = cfg.vision.imageSize;
  const pixels = new Float32Array(3 * s * s).map((_, i) => Math.sin(i * 0.001));
  const n = cfg.numImageTokens + 1 + PROMPT_TOKENS + 1;
  const ids = new Int32Array(n);
  ids.fill(cfg.imageTokenIndex, 0, cfg.numImageTokens);
  ids[cfg.numImageTokens] = cfg.bosTokenId;
  for (let i = 0; i < PROMPT_TOKENS; i++) ids[cfg.numImageTokens + 1 + i] = 1000 + 37 * i;
  ids[n - 1] = 108;
  return { pixels, ids };
}
