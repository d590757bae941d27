/**
 * `convert` writes tokenizer.json + tokenizer_config.json from a tokenizer.model: for a big_vision
 * .npz with --tokenizer, and for an HF folder that has only tokenizer.model. The folder converted
 * from the .npz captions exactly as the one converted from the HF checkpoint (same config, same
 * weights, same tokens and text through the CLI).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertCommand } from "../../cli/convert.ts";
import { InputError, UsageError } from "../../lib/errors.ts";
import { fixtureCases, withTempDir } from "../generate/fixture_models.ts";
import { runPg as pg } from "../helpers/cli.ts";

const PG1 = new URL("../fixtures/models/pg1-tiny/", import.meta.url).pathname;
const readJson = async (p: string) => JSON.parse(await Deno.readTextFile(p));

/** The NDJSON lines of `caption --json`, without the timings (which differ run to run). */
async function captions(model: string, images: string[]): Promise<unknown[]> {
  const r = await pg(["caption", ...images, "--model", model, "--json", "--max-tokens", "16"]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trimEnd().split("\n").map((line) => {
    const { timings_ms: _t, ...rest } = JSON.parse(line);
    return rest;
  });
}

Deno.test("convert bv.npz --tokenizer tokenizer.model: captions as the HF conversion does", () =>
  withTempDir(async (dir) => {
    const fromHf = join(dir, "hf");
    const fromNpz = join(dir, "npz");
    assert.equal(await convertCommand.run([join(PG1, "hf"), fromHf]), 0);
    const tokModel = join(PG1, "hf", "tokenizer.model");
    assert.equal(
      await convertCommand.run([join(PG1, "bv.npz"), fromNpz, "--tokenizer", tokModel]),
      0,
    );
    for (const f of ["tokenizer.json", "tokenizer_config.json", "tokenizer.model"]) {
      assert.ok((await Deno.stat(join(fromNpz, f))).isFile, f);
    }
    const cases = await fixtureCases("pg1-tiny");
    const images = [cases[0].image, cases[2].image, cases[5].image];
    const a = await captions(fromHf, images);
    const b = await captions(fromNpz, images);
    assert.equal(a.length, images.length);
    assert.deepEqual(b, a);

    // An HF folder with tokenizer.model only gets the same tokenizer.json written.
    const hfNoJson = join(dir, "hf-src");
    await Deno.mkdir(hfNoJson);
    for (const f of ["config.json", "model.safetensors", "preprocessor_config.json"]) {
      await Deno.copyFile(join(PG1, "hf", f), join(hfNoJson, f));
    }
    await Deno.copyFile(tokModel, join(hfNoJson, "tokenizer.model"));
    const fromModelOnly = join(dir, "model-only");
    assert.equal(await convertCommand.run([hfNoJson, fromModelOnly]), 0);
    assert.deepEqual(
      await readJson(join(fromModelOnly, "tokenizer.json")),
      await readJson(join(fromNpz, "tokenizer.json")),
    );
    assert.deepEqual(
      await readJson(join(fromModelOnly, "tokenizer_config.json")),
      await readJson(join(fromNpz, "tokenizer_config.json")),
    );

    // A bad --tokenizer fails before any conversion and leaves nothing behind.
    const bad = join(dir, "bad.model");
    await Deno.writeTextFile(bad, "not a model");
    await assert.rejects(
      convertCommand.run([join(PG1, "bv.npz"), join(dir, "never"), "--tokenizer", bad]),
      InputError,
    );
    await assert.rejects(Deno.stat(join(dir, "never")), Deno.errors.NotFound);

    // An npz carries no tokenizer: without --tokenizer it is a usage error, before any work.
    await assert.rejects(
      convertCommand.run([join(PG1, "bv.npz"), join(dir, "never")]),
      (e: unknown) => e instanceof UsageError && /--tokenizer/.test(e.message),
    );
    await assert.rejects(Deno.stat(join(dir, "never")), Deno.errors.NotFound);
    // A file where the folder should go is refused before converting.
    await assert.rejects(
      convertCommand.run([join(PG1, "hf"), bad]),
      (e: unknown) => e instanceof InputError && /exists and is not a folder/.test(e.message),
    );
  }));
