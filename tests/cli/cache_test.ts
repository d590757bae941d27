/**
 * Running straight from a checkpoint through the CLI: the first run converts an HF folder or a
 * .npz into the model cache ($PG_CACHE) and later runs reuse it untouched; a changed source is
 * converted again; `pg cache ls` and `pg cache rm` list and remove entries and nothing else.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join, resolve } from "node:path";
import { FIX } from "../generate/fixture_models.ts";
import { type PgRun, runPg } from "../helpers/cli.ts";
import { FIXTURE_IMAGES, records, withTinyModel } from "./setup.ts";

const HF = join(FIX, "pg1-tiny", "hf");
const NPZ = join(FIX, "pg1-tiny", "bv.npz");
const TOKENIZER = new URL("../fixtures/tokenizer/tokenizer.model", import.meta.url).pathname;
const IMAGE = FIXTURE_IMAGES[0];

/** Copies the files of folder `src` into a new folder `dst`. */
function copyFolder(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(join(src, f), join(dst, f));
}

/** Every file under `dir` (relative) with its inode, modification time and size. */
function snapshot(dir: string, rel = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) Object.assign(out, snapshot(dir, r));
    else {
      const st = fs.statSync(join(dir, r), { bigint: true });
      out[r] = `${st.ino}:${st.mtimeNs}:${st.size}`;
    }
  }
  return out;
}

/** The visible (entry) names in the cache folder; [] when it does not exist. */
function entries(cache: string): string[] {
  return fs.existsSync(cache) ? fs.readdirSync(cache).filter((n) => !n.startsWith(".")).sort() : [];
}

/** The tokens of the one record a `--json` run printed. */
function tokensOf(r: PgRun): unknown {
  assert.equal(r.code, 0, r.stderr);
  const recs = records(r.stdout);
  assert.equal(recs.length, 1, r.stdout);
  return recs[0].tokens;
}

/** The entry a first run converted into, from its stderr line. */
function convertedInto(r: PgRun): string {
  const m = /caption: converting .+ into the cache at (\S+) \(first run\)\n/.exec(r.stderr);
  assert.ok(m, `no conversion line: ${r.stderr}`);
  return m[1];
}

Deno.test("a checkpoint --model converts into the cache once, is reused, and again when changed", () =>
  withTinyModel(async (dir, model) => {
    const src = join(dir, "tiny-hf");
    copyFolder(HF, src);
    const cache = join(dir, "cache");
    const env = { PG_CACHE: cache };
    const caption = (m: string) =>
      runPg(["caption", IMAGE, "--model", m, "--json", "--max-tokens", "12"], { env });
    const reference = tokensOf(await caption(model));
    assert.deepEqual(entries(cache), [], "a converted folder is loaded in place");

    // First run: converts (saying so, with the converter's progress), gives the same tokens.
    const first = await caption(src);
    assert.deepEqual(tokensOf(first), reference);
    const entry = convertedInto(first);
    assert.equal(resolve(entry, ".."), cache);
    assert.match(entry, /\/tiny-hf-[0-9a-f]{16}-fp32$/);
    assert.match(first.stderr, /caption: decoder_model_merged\.onnx: written in/);
    assert.doesNotMatch(first.stderr, /reusing/);
    assert.deepEqual(entries(cache), [entry.split("/").pop()]);
    const meta = JSON.parse(fs.readFileSync(join(entry, "pg-cache.json"), "utf8"));
    assert.equal(meta.source, resolve(src));
    assert.equal(meta.format, "hf");
    assert.equal(meta.dtype, "fp32");
    const before = snapshot(entry);

    // Second run: reuses the entry, whose files stay exactly as they were.
    const second = await caption(src);
    assert.deepEqual(tokensOf(second), reference);
    assert.match(second.stderr, new RegExp(`caption: reusing the converted model in ${entry}\n`));
    assert.doesNotMatch(second.stderr, /converting|written/);
    assert.deepEqual(snapshot(entry), before);

    // bench takes the checkpoint as DIR too.
    const bench = await runPg(
      ["bench", src, "--tokens", "2", "--runs", "1", "--warmup", "0", "--json"],
      { env },
    );
    assert.equal(bench.code, 0, bench.stderr);
    assert.match(bench.stderr, new RegExp(`bench: reusing the converted model in ${entry}\n`));

    // A touched file: a new entry, converted again; the old one stays.
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(join(src, "config.json"), later, later);
    const touched = await caption(src);
    assert.deepEqual(tokensOf(touched), reference);
    const entry2 = convertedInto(touched);
    assert.notEqual(entry2, entry);
    // A file added: another entry; removed again: the touched source's entry, reused.
    fs.writeFileSync(join(src, "README.md"), "notes\n");
    const entry3 = convertedInto(await caption(src));
    assert.equal(new Set([entry, entry2, entry3]).size, 3);
    fs.rmSync(join(src, "README.md"));
    const back = await caption(src);
    assert.match(back.stderr, new RegExp(`reusing the converted model in ${entry2}\n`));
    // Another precision is its own entry.
    const fp16 = await runPg(
      ["caption", IMAGE, "--model", src, "--dtype", "fp16", "--max-tokens", "2"],
      { env },
    );
    assert.equal(fp16.code, 0, fp16.stderr);
    const entry4 = convertedInto(fp16);
    assert.match(entry4, /-fp16$/);
    assert.equal(entries(cache).length, 4);

    // ls: one line per entry; --json: one record per entry.
    const ls = await runPg(["cache", "ls"], { env });
    assert.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 4, ls.stdout);
    for (const l of lines) assert.match(l, new RegExp(`^${cache}/\\S+  fp(32|16)  .*from ${src}$`));
    const lsJson = await runPg(["cache", "ls", "--json"], { env });
    assert.equal(lsJson.code, 0, lsJson.stderr);
    const recs = records(lsJson.stdout);
    assert.deepEqual(recs.map((r) => r.path).sort(), entries(cache).map((n) => join(cache, n)));
    const rec = recs.find((r) => r.path === entry)!;
    assert.equal(rec.source, resolve(src));
    assert.equal(rec.dtype, "fp32");
    assert.equal(rec.format, "hf");
    assert.ok(typeof rec.bytes === "number" && rec.bytes > 100_000, String(rec.bytes));
    assert.ok(!Number.isNaN(Date.parse(String(rec.last_used))));

    // rm: names that are no entries remove nothing (exit 2), never anything outside the cache.
    for (const bad of ["nope", src, "..", join(cache, "..", "tiny-hf")]) {
      const r = await runPg(["cache", "rm", entry.split("/").pop()!, bad], { env });
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /not an entry of the model cache/);
    }
    assert.equal(entries(cache).length, 4);
    assert.ok(fs.existsSync(join(src, "config.json")));
    // rm NAME and rm PATH remove exactly those; --all the rest.
    const rm = await runPg(["cache", "rm", entry.split("/").pop()!, entry2], { env });
    assert.equal(rm.code, 0, rm.stderr);
    const name = (p: string) => p.split("/").pop()!;
    assert.deepEqual(entries(cache), [name(entry3), name(entry4)].sort());
    const all = await runPg(["cache", "rm", "--all"], { env });
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(fs.readdirSync(cache), []);
    assert.equal((await runPg(["cache", "ls", "--json"], { env })).stdout, "");
    assert.ok(fs.existsSync(join(src, "model.safetensors")), "the source is never touched");
  }));
