/**
 * The command line as a contract: arguments that cannot be confused, output paths checked before
 * the model loads, the context limit, a closed stdout, one line per image in plain output, and the
 * general flags (--version, help <command>, did-you-mean, examples, --threads).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { commands } from "../../cli/commands.ts";
import { oneLine } from "../../cli/stdout.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import { buildPrompt } from "../../lib/prompt/build.ts";
import { pgArgs, ROOT, runPg } from "../helpers/cli.ts";
import { FIXTURE_IMAGES, records, withTinyModel } from "./setup.ts";

const [ASTRONAUT, CHELSEA] = FIXTURE_IMAGES;

/** Asserts a usage error (exit 2), one stderr line matching `re`, nothing on stdout. */
function usage(r: { code: number; stdout: string; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, re);
}

Deno.test("extra positionals are usage errors that say what was expected", () =>
  withTinyModel(async (_dir, model) => {
    const m = ["--model", model];
    const runs = await Promise.all([
      runPg(["answer", ASTRONAUT, CHELSEA, "is there a cat?", ...m]),
      runPg(["answer", ASTRONAUT, CHELSEA, ...m]),
      runPg(["detect", ASTRONAUT, CHELSEA, ...m]),
      runPg(["segment", ASTRONAUT, CHELSEA, "cat", ...m]),
      runPg(["bench", model, model]),
      runPg(["bench", model, "--model", model]),
    ]);
    usage(runs[0], /answer: expected <image> <question>, or images and --question Q; got 3/);
    usage(runs[1], /'.*chelsea\.png' looks like an image, not a question/);
    usage(runs[2], /detect: '.*chelsea\.png' looks like an image, not a label/);
    usage(runs[3], /segment: expected <image> <label>, or images and --label; got 3/);
    usage(runs[4], /bench: expected at most one model folder/);
    usage(runs[5], /either as DIR or as --model/);

    // The flag forms take any number of images; bench DIR wins over PALIGEMMA_MODEL.
    const q = await runPg(["answer", ASTRONAUT, CHELSEA, "-q", "is there a cat?", ...m, "--json"]);
    assert.equal(q.code, 0, q.stderr);
    assert.deepEqual(records(q.stdout).map((r) => [r.image, r.prompt]), [
      [ASTRONAUT, "answer en is there a cat?"],
      [CHELSEA, "answer en is there a cat?"],
    ]);
    const bench = await runPg(["bench", model, "--tokens", "2", "--runs", "1", "--warmup", "0"], {
      env: { PALIGEMMA_MODEL: "/nonexistent-model" },
    });
    assert.equal(bench.code, 0, bench.stderr);
  }));

Deno.test("output paths are checked before the model loads; --overlay DIR/ is a folder", () =>
  withTinyModel(async (dir, model) => {
    const base = ["detect", CHELSEA, "--label", "cat", "--model", model, "--max-tokens", "8"];
    for (
      const [flag, path] of [
        ["--coco", "/nonexistent/c.json"],
        ["--junit", join(dir, "no", "such", "r.xml")],
        ["--coco", dir],
      ]
    ) {
      const r = await runPg([...base, flag, path]);
      usage(r, new RegExp(`${flag} `));
      assert.doesNotMatch(r.stderr, /loaded/);
    }
    const blocker = join(dir, "file");
    await Deno.writeTextFile(blocker, "");
    usage(
      await runPg([...base, "--output-dir", join(blocker, "sub")]),
      /--output-dir .*cannot write/,
    );

    const out = join(dir, "out");
    const r = await runPg([...base, "--overlay", `${out}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await Deno.stat(join(out, "chelsea.png"))).isFile);
  }));

Deno.test("the context: a prompt past it is exit 2; --max-tokens past it stops with 'context'", () =>
  withTinyModel(async (_dir, model) => {
    const tok = await loadTokenizer(join(model, "tokenizer.json"));
    const imageTokens = 16; // pg1-tiny: 56 px / 14 px patches
    const context = 8192;
    const promptOf = (n: number) => Array.from({ length: n }, (_, i) => `w${i % 10}`).join(" ");
    const length = (q: string) => buildPrompt(tok, imageTokens, `answer en ${q}`).inputIds.length;
    // The longest question that leaves at least 3 positions (binary search on its word count).
    let [lo, hi] = [1, context];
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (length(promptOf(mid)) <= context - 3) lo = mid;
      else hi = mid - 1;
    }
    const words = lo;
    const near = promptOf(words);
    const left = context - length(near);
    assert.ok(left >= 3 && left <= 4, `left ${left}`);

    const long = await runPg(["answer", CHELSEA, "-q", promptOf(words + 200), "--model", model]);
    assert.equal(long.code, 2, long.stderr);
    assert.match(long.stderr, /the prompt is \d+ tokens .* context of 8192 tokens/);

    const r = await runPg([
      ...["answer", CHELSEA, "-q", near, "--model", model, "--json", "--max-tokens", "50"],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [rec] = records(r.stdout);
    assert.equal(rec.stop, "context");
    assert.equal((rec.tokens as number[]).length, left);
    assert.match(r.stderr, /--max-tokens 50 is past the model's context/);
  }));

Deno.test("a closed stdout (| head -1) ends the run quietly with exit 141", () =>
  withTinyModel(async (_dir, model) => {
    const deno = Deno.execPath();
    const images = Array.from({ length: 30 }, (_, i) => FIXTURE_IMAGES[i % FIXTURE_IMAGES.length]);
    const args = pgArgs(["caption", ...images, "--model", model, "--max-tokens", "4"]);
    const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    const script = `set -o pipefail; ${[deno, ...args].map(quote).join(" ")} | head -1`;
    const out = await new Deno.Command("bash", {
      args: ["-c", script],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 141, stderr);
    assert.equal(new TextDecoder().decode(out.stdout).trimEnd().split("\n").length, 1);
    assert.doesNotMatch(stderr, /paligemma:|Broken pipe|error/i);
  }));

Deno.test("plain output is one line per image; the exact text is in --json", async () => {
  assert.equal(oneLine("a\nb\\n\tc\r"), "a\\nb\\\\n\\tc\\r");
  await withTinyModel(async (_dir, model) => {
    const images = [...FIXTURE_IMAGES, ...FIXTURE_IMAGES];
    const run = [
      "caption",
      ...images,
      "--model",
      model,
      "--max-tokens",
      "24",
      "--temperature",
      "5",
    ];
    const [plain, json] = await Promise.all([runPg(run), runPg([...run, "--json"])]);
    assert.equal(plain.code, 0, plain.stderr);
    const lines = plain.stdout.trimEnd().split("\n");
    assert.equal(lines.length, images.length);
    const texts = records(json.stdout).map((r) => String(r.text));
    lines.forEach((l, i) => assert.equal(l, `${images[i]}: ${oneLine(texts[i])}`));
  });
});

Deno.test("--version, help <command>, did-you-mean, repeated flags, --threads, examples", async () => {
  const version = await runPg(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^pg \d+\.\d+\.\d+ \(deno /);
  assert.match((await runPg(["--help"])).stdout, /^pg \d+\.\d+\.\d+/);
  const help = await runPg(["help", "caption"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: pg caption/);
  for (const c of commands) {
    const r = await runPg([c.name, "--help"]);
    assert.match(r.stdout, /\nExamples:\n {2}pg /, `${c.name} --help has examples`);
  }
  usage(
    await runPg(["caption", "x.png", "--modle", "m"]),
    /unknown flag --modle; did you mean --model\?/,
  );
  usage(await runPg(["captoin", "x.png"]), /unknown command 'captoin'; did you mean 'caption'\?/);
  usage(
    await runPg(["caption", "x.png", "--model", "a", "--model", "b"]),
    /--model given more than once/,
  );
  const cores = navigator.hardwareConcurrency;
  usage(
    await runPg(["caption", "x.png", "--model", "m", "--threads", String(4 * cores + 1)]),
    new RegExp(`--threads expects a whole number from 1 to ${4 * cores}`),
  );
});

Deno.test("the command installed with the README's 'deno install' line runs, far from the checkout", () =>
  withTinyModel(async (dir, model) => {
    const readme = await Deno.readTextFile(new URL("README.md", ROOT));
    const line = readme.split("\n").find((l) => l.startsWith("deno install -g -n pg "));
    assert.ok(line, "the README has the install line");
    const root = join(dir, "install");
    const flags = line.split(/\s+/).slice(2).filter((a) => a !== "-g");
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["install", "-g", "-f", "--root", root, ...flags],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    const denoDir = Deno.execPath().replace(/\/[^/]+$/, "");
    const out = await new Deno.Command(join(root, "bin", "pg"), {
      args: ["caption", FIXTURE_IMAGES[3], "--model", model, "--max-tokens", "2", "--json"],
      cwd: dir,
      env: { PATH: `${denoDir}:${Deno.env.get("PATH")}`, PALIGEMMA_MODEL: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(records(new TextDecoder().decode(out.stdout)).length, 1);
  }));
