/**
 * Running straight from a checkpoint through the CLI: the first run converts an HF folder or a
 * .npz into the model cache ($PG_CACHE) and later runs reuse it untouched; a changed source is
 * converted again; `pg cache ls` and `pg cache rm` list and remove entries and nothing else.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join, resolve } from "node:path";
import { cacheEntryName } from "../../lib/convert/cache_key.ts";
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

Deno.test("a .npz needs --tokenizer (exit 2, nothing written); with it, it runs from the cache", () =>
  withTinyModel(async (dir, model) => {
    const cache = join(dir, "cache");
    const env = { PG_CACHE: cache };
    const reference = tokensOf(
      await runPg(["caption", IMAGE, "--model", model, "--json", "--max-tokens", "12"], { env }),
    );
    const without = await runPg(["caption", IMAGE, "--model", NPZ, "--json"], { env });
    assert.equal(without.code, 2, without.stderr);
    assert.equal(without.stdout, "");
    assert.match(
      without.stderr,
      /^paligemma: caption: \S+bv\.npz is a big_vision checkpoint, which carries no tokenizer: pass --tokenizer tokenizer\.model\n$/,
    );
    assert.ok(!fs.existsSync(cache), "nothing is written");
    // Through PALIGEMMA_MODEL too.
    const viaEnv = await runPg(["caption", IMAGE, "--json"], {
      env: { ...env, PALIGEMMA_MODEL: NPZ },
    });
    assert.equal(viaEnv.code, 2, viaEnv.stderr);
    assert.match(viaEnv.stderr, /pass --tokenizer/);

    const args = ["--model", NPZ, "--tokenizer", TOKENIZER, "--json", "--max-tokens", "12"];
    const first = await runPg(["caption", IMAGE, ...args], { env });
    assert.deepEqual(tokensOf(first), reference);
    const entry = convertedInto(first);
    assert.match(entry, /\/bv-[0-9a-f]{16}-fp32$/);
    assert.match(first.stderr, /tokenizer\.json and tokenizer_config\.json written from /);
    const meta = JSON.parse(fs.readFileSync(join(entry, "pg-cache.json"), "utf8"));
    assert.equal(meta.format, "big_vision");
    assert.equal(meta.tokenizer, TOKENIZER);
    const again = await runPg(["caption", IMAGE, ...args], { env });
    assert.deepEqual(tokensOf(again), reference);
    assert.match(again.stderr, /reusing the converted model in /);
    // --config enters the key: the same .npz with a config.json is another entry.
    const withConfig = await runPg(
      ["caption", IMAGE, ...args, "--config", join(HF, "config.json")],
      { env },
    );
    assert.deepEqual(tokensOf(withConfig), reference);
    assert.notEqual(convertedInto(withConfig), entry);
    // --tokenizer with a converted folder is a usage error.
    const misplaced = await runPg(["caption", IMAGE, "--model", model, "--tokenizer", TOKENIZER], {
      env,
    });
    assert.equal(misplaced.code, 2, misplaced.stderr);
    assert.match(misplaced.stderr, /--tokenizer applies only when --model is a checkpoint/);
  }));

Deno.test("an interrupted conversion leaves nothing a later run loads; a broken entry is refused", () =>
  withTinyModel(async (dir) => {
    const src = join(dir, "src");
    copyFolder(HF, src);
    const cache = join(dir, "cache");
    const env = { PG_CACHE: cache };
    const caption = () => runPg(["caption", IMAGE, "--model", src, "--max-tokens", "2"], { env });
    const entry = convertedInto(await caption());
    const name = entry.split("/").pop()!;
    assert.equal((await runPg(["cache", "rm", name], { env })).code, 0);
    // What a killed first run leaves: a partial folder beside the entry (no lock held).
    const partial = join(cache, `.${name}.partial-abc123`);
    fs.mkdirSync(join(partial, "onnx"), { recursive: true });
    fs.writeFileSync(join(partial, "config.json"), "{");
    assert.deepEqual((await runPg(["cache", "ls", "--json"], { env })).stdout, "");
    const rerun = await caption();
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(convertedInto(rerun), entry);
    assert.match(rerun.stderr, /removed 1 partial folder/);
    assert.ok(!fs.existsSync(partial));
    // A folder at the entry's name that the cache did not write (no pg-cache.json): exit 3.
    fs.rmSync(join(entry, "pg-cache.json"));
    const broken = await caption();
    assert.equal(broken.code, 3, broken.stderr);
    assert.match(broken.stderr, /in the model cache but no complete entry \(no pg-cache\.json\)/);
    const rm = await runPg(["cache", "rm", name], { env });
    assert.equal(rm.code, 2, "only entries are removed");
    assert.ok(fs.existsSync(join(entry, "config.json")));
  }));

Deno.test("two concurrent first runs: one converts, the other reuses its entry", () =>
  withTinyModel(async (dir) => {
    const src = join(dir, "src");
    copyFolder(HF, src);
    const cache = join(dir, "cache");
    const args = ["caption", IMAGE, "--model", src, "--json", "--max-tokens", "6"];
    const [a, b] = await Promise.all([
      runPg(args, { env: { PG_CACHE: cache } }),
      runPg(args, { env: { PG_CACHE: cache } }),
    ]);
    assert.deepEqual(tokensOf(a), tokensOf(b));
    const converting = [a, b].filter((r) => /\(first run\)/.test(r.stderr));
    assert.equal(converting.length, 1, a.stderr + b.stderr);
    const other = converting[0] === a ? b : a;
    assert.match(other.stderr, /reusing the converted model in /);
    assert.equal(entries(cache).length, 1);
    assert.deepEqual(fs.readdirSync(cache).filter((n) => n.includes(".partial-")), []);
  }));

Deno.test("a first run waits while another holds the entry's lock, then converts", () =>
  withTinyModel(async (dir) => {
    const src = join(dir, "src");
    copyFolder(HF, src);
    const cache = join(dir, "cache");
    fs.mkdirSync(cache);
    const name = cacheEntryName({ source: src, precision: "fp32" });
    const lock = await Deno.open(join(cache, `.${name}.lock`), { write: true, create: true });
    await lock.lock(true);
    const run = runPg(["caption", IMAGE, "--model", src, "--max-tokens", "2"], {
      env: { PG_CACHE: cache },
    });
    let released = false;
    try {
      // The run reaches the lock and waits there: no entry and no partial folder appear.
      await new Promise((ok) => setTimeout(ok, 4000));
      assert.deepEqual(fs.readdirSync(cache), [`.${name}.lock`]);
    } finally {
      lock.close();
      released = true;
    }
    const r = await run;
    assert.ok(released);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /caption: waiting for another run converting \S+ into \S+\n/);
    assert.equal(convertedInto(r), join(cache, name));
  }));

Deno.test("pg cache: reports the folder it looks in; usage errors are exit 2", async () => {
  const ls = await runPg(["cache", "ls"], { env: { PG_CACHE: "/tmp/pg-cache-none" } });
  assert.equal(ls.code, 0, ls.stderr);
  assert.equal(ls.stdout, "");
  assert.equal(ls.stderr, "cache: no models in /tmp/pg-cache-none\n");
  const cases: [string[], RegExp][] = [
    [["cache"], /expected ls or rm/],
    [["cache", "list"], /unknown subcommand 'list'/],
    [["cache", "rm"], /names or --all/],
    [["cache", "rm", "x", "--all"], /names or --all/],
    [["cache", "ls", "x"], /takes no names/],
  ];
  const runs = await Promise.all(
    cases.map(([a]) => runPg(a, { env: { PG_CACHE: "/tmp/pg-cache-none" } })),
  );
  runs.forEach((r, i) => {
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, cases[i][1]);
  });
});
