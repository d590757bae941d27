/**
 * Streaming detokenisation: the pieces a TextStreamer releases token by token add up to the
 * decoded text of the whole sequence, and never end in a partial character.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { TextStreamer } from "../../lib/generate/stream.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import { FIX, fixtureCases } from "./fixture_models.ts";

Deno.test("TextStreamer pieces concatenate to the full decode", async () => {
  const tok = await loadTokenizer(join(FIX, "pg1-tiny", "hf"));
  const enc = (s: string) => tok.encode(s);
  const sequences = [
    ...(await fixtureCases("pg1-tiny")).map((c) => c.greedy),
    enc("a café, naïve 日本語 ✓ done"),
    [tok.bosId, ...enc("loc"), tok.locBase + 12, ...enc(" x"), tok.eosId],
  ];
  for (const ids of sequences) {
    const s = new TextStreamer(tok);
    const pieces = ids.map((id) => s.push(id));
    pieces.push(s.flush());
    for (const p of pieces.slice(0, -1)) assert.ok(!p.endsWith("\uFFFD"), JSON.stringify(p));
    assert.equal(pieces.join(""), tok.decode(ids, true));
  }
});
