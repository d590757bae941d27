/**
 * `caption` and `answer` end to end, as a user runs them: `deno run main.ts …` as a subprocess on a
 * converted PG1-tiny folder. NDJSON output (one valid object per image, tokens equal to HF's greedy
 * tokens), plain output, PALIGEMMA_MODEL, and the exit codes of the error cases.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertFixture, FIX, fixtureCases, withTempDir } from "./generate/fixture_models.ts";
import { type PgRun, runPg } from "./helpers/cli.ts";

const pg = (args: string[], env: Record<string, string> = {}) => runPg(args, { env });

/** Asserts exit `code` with exactly one `paligemma: …` line on stderr matching `re`. */
function failsWith(r: PgRun, code: number, re: RegExp): void {
  assert.equal(r.code, code, r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
}

Deno.test("caption/answer CLI: NDJSON per image, greedy tokens, plain text, exit codes", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "pg1");
    await Deno.mkdir(model);
    await convertFixture("pg1-tiny", "hf", model);
    const cases = await fixtureCases("pg1-tiny");
    // The fixture's caption case and two other images.
    const cap = cases.filter((c) => c.prompt === "caption en");
    assert.ok(cap.length >= 1, "the fixture needs a 'caption en' case");
    const images = [cap[0].image, cases[2].image, cases[5].image];

    const r = await pg(["caption", ...images, "--model", model, "--json", "--max-tokens", "24"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, images.length, r.stdout);
    lines.forEach((line, i) => {
      const o = JSON.parse(line);
      assert.deepEqual(Object.keys(o).sort(), [
        "image",
        "prompt",
        "stop",
        "text",
        "timings_ms",
        "tokens",
      ]);
      assert.equal(o.image, images[i]);
      assert.equal(o.prompt, "caption en");
      assert.equal(typeof o.text, "string");
      assert.ok(Array.isArray(o.tokens) && o.tokens.length <= 24 && o.tokens.length > 0);
      for (const k of ["load", "preprocess", "vision", "prefill", "decode", "total"]) {
        assert.ok(typeof o.timings_ms[k] === "number" && o.timings_ms[k] >= 0, k);
      }
      assert.ok(o.timings_ms.total >= o.timings_ms.load);
    });
    // The caption case's prompt is the fixture's: with no EOS in its greedy run, same tokens.
    assert.deepEqual(JSON.parse(lines[0]).tokens, cap[0].greedy);

    // One batch of 3 gives the same tokens as one image at a time; the model comes from
    // PALIGEMMA_MODEL.
    const b = await pg(
      ["caption", ...images, "--json", "--max-tokens", "24", "--batch-size", "3"],
      {
        PALIGEMMA_MODEL: model,
      },
    );
    assert.equal(b.code, 0, b.stderr);
    const strip = (s: string) => s.trimEnd().split("\n").map((l) => JSON.parse(l).tokens);
    assert.deepEqual(strip(b.stdout), strip(r.stdout));

    // answer: the fixture's question case gives HF's greedy tokens; plain output is the text.
    const q = cases[1];
    const question = q.prompt.replace(/^answer en /, "");
    const a = await pg(["answer", q.image, question, "--model", model, "--json"]);
    assert.equal(a.code, 0, a.stderr);
    const ao = JSON.parse(a.stdout);
    assert.equal(ao.prompt, q.prompt);
    assert.ok(ao.tokens.length <= 64, "default --max-tokens is 64");
    assert.deepEqual(ao.tokens.slice(0, q.greedy.length), q.greedy);
    const plain = await pg(["answer", q.image, question, "--model", model, "--max-tokens", "5"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.split("\n").length, 2, plain.stdout);

    // Errors: one line on stderr, nothing on stdout, the documented exit code (run in parallel).
    const errors: [string[], number, RegExp][] = [
      [
        ["caption", images[0], "--model", model, "--tokenizer", join(model, "tokenizer.json")],
        2,
        /--tokenizer applies only when --model is a checkpoint/,
      ],
      [
        ["caption", images[0], "--model", join(FIX, "pg1-tiny", "bv.npz")],
        2,
        /big_vision checkpoint, which carries no tokenizer: pass --tokenizer/,
      ],
      [["caption", images[0], "--model", model, "--dtype", "q4"], 3, /has no q4 graphs/],
      [["caption", images[0], "--model", model, "--dtype", "int3"], 2, /--dtype/],
      [["caption", images[0], "--model", model, "--max-tokens", "x"], 2, /max-tokens/],
      [["caption", images[0], "--model", model, "--bogus"], 2, /bogus/],
      [["caption", images[0]], 2, /--model DIR is required/],
      [["caption", "--model", model], 2, /at least one image/],
      [["answer", images[0], "--model", model], 2, /<image> <question>/],
      [["caption", images[0], "--model", model, "--top-p", "0"], 2, /top-p/],
    ];
    const runs = await Promise.all(errors.map(([args]) => pg(args)));
    runs.forEach((r, i) => failsWith(r, errors[i][1], errors[i][2]));
    // A missing image is that image's failure: an error record, one stderr line naming it, exit 3.
    const missing = await pg(["caption", join(dir, "missing.png"), "--model", model, "--json"]);
    assert.equal(missing.code, 3, missing.stderr);
    assert.deepEqual(JSON.parse(missing.stdout).error.kind, "bad_image");
    assert.match(missing.stderr, /missing\.png: bad_image: no such file/);
  }));
