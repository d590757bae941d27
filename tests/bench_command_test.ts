/**
 * `pg bench` as a user runs it, on the converted PG1-tiny model: the JSON report's fields are
 * present, positive and consistent with each other (time to first token is the sum of its stages,
 * tokens/s is the tokens after the first over the decode time), the table prints, and bad flags
 * give the documented exit codes.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertFixture, FIX, withTempDir } from "./generate/fixture_models.ts";
import { runPg as pg } from "./helpers/cli.ts";

Deno.test("bench CLI: JSON report on the tiny model, table, exit codes", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "pg1");
    await Deno.mkdir(model);
    await convertFixture("pg1-tiny", "hf", model);
    const tokens = 6;
    const r = await pg([
      "bench",
      "--model",
      model,
      "--tokens",
      String(tokens),
      "--runs",
      "2",
      "--warmup",
      "0",
      "--threads",
      "1",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trimEnd().split("\n").length, 1, "one JSON object");
    const o = JSON.parse(r.stdout);
    for (
      const k of [
        "load_ms",
        "preprocess_ms",
        "vision_ms",
        "prefill_ms",
        "ttft_ms",
        "decode_ms",
        "decode_tokens_per_s",
        "peak_rss_mb",
      ]
    ) {
      assert.ok(typeof o[k] === "number" && o[k] > 0, `${k} = ${o[k]}`);
    }
    assert.equal(o.tokens, tokens);
    assert.equal(o.runs, 2);
    assert.equal(o.threads, 1);
    assert.equal(o.dtype, "fp32");
    assert.equal(o.prompt, "caption en");
    // 16 image tokens + <bos> + "caption en\n" on this model.
    assert.ok(o.prompt_tokens > o.image_tokens && o.image_tokens > 0);
    assert.ok(o.peak_rss_mb > 20 && o.peak_rss_mb < 16384, `peak RSS ${o.peak_rss_mb} MB`);
    assert.equal(o.runs_ms.length, 2);
    for (const run of o.runs_ms) {
      // Each figure is rounded to 0.01, so sums and ratios agree to about that.
      assert.ok(Math.abs(run.ttft - (run.preprocess + run.vision + run.prefill)) < 0.03);
      const rate = (tokens - 1) / (run.decode / 1000);
      assert.ok(Math.abs(run.decode_tokens_per_s - rate) / rate < 0.01, JSON.stringify(run));
    }
    assert.match(r.stderr, /bench: run 2\/2/);

    assert.equal(o.load_cold_ms, null, "no cold load without --cold");
    assert.equal(o.load_warm_ms, o.load_ms);
    assert.ok(o.read_bytes > 0 && o.read_warm_ms > 0 && o.read_cold_ms === null);

    // --cold: files read cold and warm, a cold load, then warm loads (median).
    const c = await pg(
      ["bench", model, "--tokens", "2", "--runs", "1", "--warmup", "0", "--cold", "--loads", "3"],
    );
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^load cold\s+\d+ ms \(read [\d.]+ GB cold: \d+ ms\)$/m);
    assert.match(c.stdout, /^load warm\s+\d+ ms \(read [\d.]+ GB warm: \d+ ms; median of 2\)$/m);
    assert.match(c.stderr, /bench: loading .* \(cold\)/);
    const cj = await pg(
      ["bench", model, "--tokens", "2", "--runs", "1", "--warmup", "0", "--cold", "--json"],
    );
    assert.equal(cj.code, 0, cj.stderr);
    const co = JSON.parse(cj.stdout);
    assert.equal(co.loads_ms.length, 2, "--cold makes a warm load too");
    assert.equal(co.load_cold_ms, co.loads_ms[0]);
    assert.equal(co.load_warm_ms, co.loads_ms[1]);
    assert.ok(co.read_cold_ms > 0 && co.read_warm_ms > 0);

    const plain = await pg(["bench", "--model", model, "--tokens", "3", "--runs", "1"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^first token \(ms\)\s+[\d.]+\s+[\d.]+\s+[\d.]+$/m);
    assert.match(plain.stdout, /^decode \(tok\/s\)\s+[\d.]+/m);
    assert.match(plain.stdout, /^peak RSS\s+[\d.]+ MB$/m);

    const errors: [string[], number, RegExp][] = [
      [["bench", "--model", model, "--tokens", "1"], 2, /--tokens expects .* from 2/],
      [["bench", "--model", model, "--tokens", "x"], 2, /--tokens/],
      [["bench", "--model", model, "--runs", "0"], 2, /--runs/],
      [["bench", "--model", model, "--loads", "0"], 2, /--loads/],
      [["bench", "--model", model, "--bogus"], 2, /bogus/],
      [["bench"], 2, /--model DIR is required/],
      [["bench", "--model", model, "--dtype", "q4"], 3, /has no q4 graphs/],
      [["bench", "--model", join(FIX, "pg1-tiny", "bv.npz")], 2, /pass --tokenizer/],
      [["bench", "--model", model, "--image", join(dir, "none.png")], 3, /none\.png/],
    ];
    const runs = await Promise.all(errors.map(([args]) => pg(args)));
    runs.forEach((run, i) => {
      assert.equal(run.code, errors[i][1], `${errors[i][0].join(" ")}: ${run.stderr}`);
      assert.equal(run.stdout, "");
      assert.match(run.stderr.trim().split("\n").at(-1)!, errors[i][2]);
    });
  }));
