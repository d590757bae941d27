/**
 * FlashAttention's per-row key ranges from a step's 0/1 attention mask (lib/webgpu/model.ts
 * `keyRanges`): left padding gives (first real key, keys); any other pattern gives null, and the
 * model falls back to the masked attention kernel. CPU only.
 */
import assert from "node:assert/strict";
import { keyRanges } from "../../lib/webgpu/model.ts";

Deno.test("keyRanges: left-padded rows give (first real key, keys)", () => {
  const mask = Int32Array.of(0, 0, 1, 1, 1, /* row 2 */ 1, 1, 1, 1, 1);
  assert.deepEqual(keyRanges(mask, 2, 5), Uint32Array.of(2, 5, 0, 5));
});

Deno.test("keyRanges: a hole after the first real key, or right padding, gives null", () => {
  assert.equal(keyRanges(Int32Array.of(1, 0, 1, 1), 1, 4), null);
  assert.equal(keyRanges(Int32Array.of(1, 1, 1, 0), 1, 4), null);
  assert.equal(keyRanges(Int32Array.of(1, 1, 0, 1, 1, 1), 2, 3), null);
});

Deno.test("keyRanges: an all-padding row sees no key", () => {
  assert.deepEqual(keyRanges(Int32Array.of(0, 0, 0), 1, 3), Uint32Array.of(3, 3));
});
