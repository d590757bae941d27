/**
 * The model cache's key and folder: which paths are checkpoints to convert, an entry name that
 * changes with any file's size, modification time, presence, the tokenizer and config given and
 * the precision (hidden files aside), and where the cache folder is.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { cacheFolder, NoCacheFolder } from "../../lib/convert/cache_entries.ts";
import { cacheEntryName, cacheSourceFormat } from "../../lib/convert/cache_key.ts";
import { FIX } from "../generate/fixture_models.ts";

const HF = join(FIX, "pg1-tiny", "hf");

Deno.test("cacheSourceFormat: HF folders and files, .npz; not converted folders or others", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-cache-key-" });
  try {
    assert.equal(cacheSourceFormat(HF), "hf");
    assert.equal(cacheSourceFormat(join(HF, "model.safetensors")), "hf");
    assert.equal(cacheSourceFormat(join(FIX, "pg1-tiny", "bv.npz")), "big_vision");
    assert.equal(cacheSourceFormat(join(HF, "config.json")), undefined);
    assert.equal(cacheSourceFormat(join(dir, "missing")), undefined);
    assert.equal(cacheSourceFormat(dir), undefined);
    for (const f of fs.readdirSync(HF)) fs.copyFileSync(join(HF, f), join(dir, f));
    assert.equal(cacheSourceFormat(dir), "hf");
    fs.mkdirSync(join(dir, "onnx"));
    assert.equal(cacheSourceFormat(dir), undefined, "a folder with onnx/ is a converted one");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cacheEntryName: changes with sizes, mtimes, files, tokenizer, config, precision", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-cache-key-" });
  try {
    const src = join(dir, "my model");
    fs.mkdirSync(src);
    for (const f of fs.readdirSync(HF)) fs.copyFileSync(join(HF, f), join(src, f));
    const name = (extra: Partial<Parameters<typeof cacheEntryName>[0]> = {}) =>
      cacheEntryName({ source: src, precision: "fp32", ...extra });
    const base = name();
    assert.match(base, /^my_model-[0-9a-f]{16}-fp32$/);
    assert.equal(name(), base, "stable");
    assert.equal(
      cacheEntryName({ source: join(src, "model.safetensors"), precision: "fp32" }),
      base,
    );
    assert.match(name({ precision: "q8" }), /-q8$/);
    const seen = new Set([base]);
    const fresh = (n: string, why: string) => {
      assert.ok(!seen.has(n), why);
      seen.add(n);
    };
    fs.writeFileSync(join(src, ".hidden"), "x");
    assert.equal(name(), base, "hidden files are left out");
    const t = new Date(Date.now() + 10_000);
    fs.utimesSync(join(src, "config.json"), t, t);
    fresh(name(), "a touched file");
    fs.appendFileSync(join(src, "tokenizer_config.json"), " ");
    fresh(name(), "a changed size");
    fs.writeFileSync(join(src, "notes.txt"), "");
    fresh(name(), "an added file");
    fs.rmSync(join(src, "preprocessor_config.json"));
    fresh(name(), "a removed file");
    fresh(name({ tokenizerModel: join(HF, "tokenizer.model") }), "a tokenizer given");
    fresh(name({ configFile: join(HF, "config.json") }), "a config given");
    const npz = cacheEntryName({ source: join(FIX, "pg1-tiny", "bv.npz"), precision: "fp16" });
    assert.match(npz, /^bv-[0-9a-f]{16}-fp16$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cacheFolder: PG_CACHE, else XDG_CACHE_HOME/pg/models, else HOME/.cache/pg/models", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.equal(cacheFolder(env({ PG_CACHE: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" })), "/c");
  assert.equal(
    cacheFolder(env({ PG_CACHE: "", XDG_CACHE_HOME: "/x", HOME: "/h" })),
    "/x/pg/models",
  );
  assert.equal(cacheFolder(env({ XDG_CACHE_HOME: "", HOME: "/h" })), "/h/.cache/pg/models");
  assert.equal(cacheFolder(env({ PG_CACHE: "rel" })), join(Deno.cwd(), "rel"));
  assert.throws(() => cacheFolder(env({})), NoCacheFolder);
});
