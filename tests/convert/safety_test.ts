/**
 * `convert` safety, through the CLI: enumerated flags checked as own keys, refusal of a folder
 * holding a different model (and --force), removal of partial folders left by an interrupted
 * convert, pre-flight checks (writable folders, free space), file-system errors as one line with a
 * failed convert leaving the old model loadable, and the PaliGemma 2 .npz warning.
 *
 * Some checks need root (mounting a small tmpfs, dropping CAP_DAC_OVERRIDE with setpriv); where
 * that is not possible they print why and are ignored, and an injected ENOSPC (a copy to
 * /dev/full) still exercises the failure path.
 */

import assert from "node:assert/strict";
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { convertCommand } from "../../cli/convert.ts";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { estimateOutputBytes } from "../../lib/convert/convert.ts";
import { convertToFolder } from "../../lib/convert/to_folder.ts";
import { FsError, InputError } from "../../lib/errors.ts";
import { type PgRun, runPg } from "../helpers/cli.ts";

const FIX = new URL("../fixtures/", import.meta.url).pathname;
const PG1 = join(FIX, "models/pg1-tiny");
const PG2 = join(FIX, "models/pg2-tiny");
const GRAY = join(FIX, "images/gray.png");

/** Runs `body` in a fresh temporary folder, removed afterwards. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pg-convert-safety-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Names in `dir`, sorted. */
function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Every file under `dir` with its size, for "nothing changed" checks. */
function snapshot(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(dir, rel))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...snapshot(dir, r));
    else out.push(`${r} ${Deno.statSync(join(dir, r)).size}`);
  }
  return out.sort();
}

/** Converts in-process (setting up a folder); fails the test when it does not succeed. */
async function convert(...args: string[]): Promise<void> {
  assert.equal(await convertCommand.run(args), 0);
}

/** The lines of a run's stderr. */
function errLines(r: PgRun): string[] {
  return r.stderr.trimEnd().split("\n");
}

/** Asserts a failed run: exit `code`, one stderr line matching every pattern. */
function assertRefused(r: PgRun, code: number, ...patterns: RegExp[]): void {
  assert.equal(r.code, code, r.stderr);
  const last = errLines(r).at(-1) ?? "";
  assert.ok(!/\n\s+at /.test(r.stderr), `stack trace in ${r.stderr}`);
  for (const p of patterns) assert.match(last, p);
}

/** The model in `dir` still loads and runs. */
async function assertLoads(dir: string): Promise<void> {
  const r = await runPg(["caption", GRAY, "--model", dir, "--max-tokens", "2"]);
  assert.equal(r.code, 0, r.stderr);
}

/** Escapes a path for a RegExp. */
function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("convert --dtype constructor / __proto__: usage errors that write nothing", () =>
  withTempDir(async (dir) => {
    for (const dtype of ["constructor", "__proto__"]) {
      const r = await runPg(["convert", join(PG1, "hf"), join(dir, "m"), "--dtype", dtype]);
      assertRefused(r, 2, new RegExp(`--dtype expects fp32, fp16, q8, q4, got '${dtype}'`));
      assert.equal(errLines(r).length, 1);
    }
    assert.deepEqual(names(dir), []);
  }));

Deno.test("convert refuses a folder holding a different model; --force replaces it", () =>
  withTempDir(async (dir) => {
    const dst = join(dir, "model");
    await convert(join(PG1, "hf"), dst);
    // Another precision of the same model is added as before.
    await convert(join(PG1, "hf"), dst, "--dtype", "q8");
    const before = snapshot(dst);

    const r = await runPg(["convert", join(PG2, "hf"), dst]);
    assertRefused(
      r,
      3,
      new RegExp(`^paligemma: ${re(dst)}: holds a different model`),
      /text_config\.model_type is gemma there, gemma2 in the model being converted/,
      /pass --force/,
    );
    assert.deepEqual(snapshot(dst), before);
    assert.deepEqual(names(dir), ["model"]);

    // A size difference is named with both values.
    const cfgPath = join(dst, "config.json");
    const cfg = JSON.parse(await Deno.readTextFile(cfgPath));
    const size = cfg.vision_config.image_size;
    cfg.vision_config.image_size = size * 2;
    await Deno.writeTextFile(cfgPath, JSON.stringify(cfg));
    await assert.rejects(
      convertCommand.run([join(PG1, "hf"), dst, "--dtype", "fp16"]),
      (e: Error) =>
        e instanceof InputError &&
        e.message.includes(`vision_config.image_size is ${size * 2} there, ${size} in the model`),
    );
    await Deno.writeTextFile(cfgPath, "{ not json");
    await assert.rejects(
      convertCommand.run([join(PG1, "hf"), dst, "--dtype", "fp16"]),
      (e: Error) => e instanceof InputError && /config\.json is not a PaliGemma/.test(e.message),
    );

    const forced = await runPg(["convert", join(PG2, "hf"), dst, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /replacing the different model in/);
    // The old model's q8 graphs are gone; only PaliGemma 2's fp32 ones remain.
    assert.deepEqual(names(join(dst, "onnx")), [
      "decoder_model_merged.onnx",
      "embed_tokens.onnx",
      "vision_encoder.onnx",
    ]);
    const now = JSON.parse(await Deno.readTextFile(cfgPath));
    assert.equal(now.text_config.model_type, "gemma2");
    await assertLoads(dst);
  }));

Deno.test("convert removes partial folders an interrupted convert left, saying so once", () =>
  withTempDir(async (dir) => {
    const dst = join(dir, "model");
    await convert(join(PG1, "hf"), dst);
    const stale = [".model.partial-abc123", ".model.partial-XyZ789"];
    for (const s of stale) {
      await Deno.mkdir(join(dir, s, "onnx"), { recursive: true });
      await Deno.writeTextFile(join(dir, s, "onnx", "vision_encoder.onnx"), "half");
    }
    // A folder a running convert holds locked (here: this test) and a plain file of that name
    // are left alone.
    const live = ".model.partial-live";
    await Deno.mkdir(join(dir, live));
    await Deno.writeTextFile(join(dir, ".model.partial-file"), "not a folder");
    using lock = await Deno.open(join(dir, live), { read: true });
    assert.ok(await lock.tryLock(true));
    const r = await runPg(["convert", join(PG1, "hf"), dst, "--dtype", "fp16"]);
    assert.equal(r.code, 0, r.stderr);
    const said = errLines(r).filter((l) => /partial folder/.test(l));
    assert.equal(said.length, 1, r.stderr);
    assert.match(said[0], /^convert: removed 2 partial folder\(s\) an interrupted convert left/);
    for (const s of stale) assert.ok(said[0].includes(s), said[0]);
    assert.deepEqual(names(dir), [".model.partial-file", live, "model"]);
  }));

/** Whether `cmd` can run and exits 0. */
async function succeeds(cmd: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

const IS_ROOT = Deno.uid() === 0;
const DROP_DAC = ["--bounding-set=-dac_override,-dac_read_search", "--"];

/** Runs `pg <args>`; as root, without CAP_DAC_OVERRIDE so that file modes apply. */
async function runPgUnprivileged(args: string[]): Promise<PgRun> {
  if (!IS_ROOT) return await runPg(args);
  const perms = ["--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys"];
  const out = await new Deno.Command("setpriv", {
    args: [...DROP_DAC, Deno.execPath(), "run", ...perms, "main.ts", ...args],
    cwd: new URL("../..", import.meta.url),
    env: { PALIGEMMA_MODEL: "" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Why file modes cannot be tested here, or undefined when they can. */
async function modesUntestable(): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "pg-convert-safety-" });
  try {
    await Deno.chmod(dir, 0o555);
    const touch = IS_ROOT
      ? await succeeds("setpriv", [...DROP_DAC, "touch", join(dir, "x")])
      : await succeeds("touch", [join(dir, "x")]);
    if (!touch) return undefined;
    return IS_ROOT
      ? "running as root and setpriv cannot drop CAP_DAC_OVERRIDE, so chmod 555 stops no write"
      : "chmod 555 does not stop writes on this file system";
  } finally {
    await Deno.chmod(dir, 0o755);
    await Deno.remove(dir, { recursive: true });
  }
}

const noModes = await modesUntestable();
if (noModes) console.log(`ignoring the read-only folder test: ${noModes}`);

Deno.test({
  name: "convert into a read-only folder (chmod 555) is refused before any work",
  ignore: noModes !== undefined,
  fn: () =>
    withTempDir(async (dir) => {
      const dst = join(dir, "model");
      await convert(join(PG1, "hf"), dst);
      const before = snapshot(dst);
      await Deno.chmod(dst, 0o555);
      try {
        const r = await runPgUnprivileged(["convert", join(PG1, "hf"), dst, "--dtype", "fp16"]);
        assertRefused(
          r,
          3,
          new RegExp(
            `^paligemma: ${re(dst)}: permission denied while checking that it is writable`,
          ),
        );
        assert.ok(!/vision_encoder/.test(r.stderr), "refused before converting");
      } finally {
        await Deno.chmod(dst, 0o755);
      }
      assert.deepEqual(snapshot(dst), before);
      assert.deepEqual(names(dir), ["model"]);
    }),
});

/** Mounts a tmpfs with mount `options` on `dir`; false when mounting is not permitted. */
function mountTmpfs(dir: string, options: string): Promise<boolean> {
  return succeeds("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
}

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
async function mountUntestable(): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "pg-convert-safety-" });
  try {
    if (!(await mountTmpfs(dir, "size=64k"))) {
      return "cannot mount a tmpfs (needs root or CAP_SYS_ADMIN); the injected ENOSPC test " +
        "still runs";
    }
    await succeeds("umount", [dir]);
    return undefined;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const noMount = await mountUntestable();
if (noMount) console.log(`ignoring the full file system test: ${noMount}`);

Deno.test({
  name: "convert onto a full file system: refused by the estimate, or one ENOSPC line; " +
    "the old model still loads; onto a read-only one: refused",
  ignore: noMount !== undefined,
  fn: () =>
    withTempDir(async (dir) => {
      const mnt = join(dir, "mnt");
      await Deno.mkdir(mnt);
      assert.ok(await mountTmpfs(mnt, "size=8m"));
      try {
        const dst = join(mnt, "model");
        await convert(join(PG1, "hf"), dst);
        const before = snapshot(dst);
        const st = statfsSync(mnt);
        const used = (Number(st.blocks) - Number(st.bfree)) * Number(st.bsize);
        const ck = await openCheckpoint(join(PG1, "hf"));
        const estimate = estimateOutputBytes(ck, "fp16");
        ck.close();
        const remount = (bytes: number) =>
          succeeds("mount", ["-o", `remount,size=${Math.ceil(bytes / 4096) * 4}k`, mnt]);

        // Less free space than the estimate: refused before converting.
        assert.ok(await remount(used + 64 * 1024));
        const small = await runPg(["convert", join(PG1, "hf"), dst, "--dtype", "fp16"]);
        assertRefused(
          small,
          3,
          new RegExp(
            `^paligemma: ${re(dst)}: not enough free space: the converted model needs ` +
              `about [\\d.]+ KiB, [\\d.]+ KiB free$`,
          ),
        );
        assert.ok(!/vision_encoder/.test(small.stderr), "refused before converting");

        // Room for the estimate but not for everything: the kernel's ENOSPC, as one line.
        assert.ok(await remount(used + estimate + 64 * 1024));
        const full = await runPg(["convert", join(PG1, "hf"), dst, "--dtype", "fp16"]);
        assertRefused(
          full,
          3,
          new RegExp(
            `^paligemma: ${re(dst)}/\\S+: no space left on device while (writing|copying)`,
          ),
        );
        assert.deepEqual(snapshot(dst), before);
        assert.deepEqual(names(mnt), ["model"]);
        await assertLoads(dst);
      } finally {
        assert.ok(await succeeds("umount", [mnt]), `umount ${mnt}`);
      }

      const ro = join(dir, "ro");
      await Deno.mkdir(ro);
      assert.ok(await mountTmpfs(ro, "ro,size=64k"));
      try {
        const r = await runPg(["convert", join(PG1, "hf"), join(ro, "model")]);
        assertRefused(
          r,
          3,
          new RegExp(`^paligemma: ${re(ro)}: read-only file system while checking`),
        );
      } finally {
        assert.ok(await succeeds("umount", [ro]), `umount ${ro}`);
      }
    }),
});

Deno.test({
  name: "convertToFolder: an ENOSPC mid-convert names the file, removes the temporary folder " +
    "and leaves the old model",
  fn: () =>
    withTempDir(async (dir) => {
      const dst = join(dir, "model");
      await convert(join(PG1, "hf"), dst);
      const before = snapshot(dst);
      const ck = await openCheckpoint(join(PG1, "hf"));
      try {
        // The tokenizer copy (after the graphs) fails as Deno reports ENOSPC: a plain Error with
        // code "ENOSPC" (what Deno.copyFile throws onto a full disk; /dev/full itself needs -A).
        const enospc = () =>
          Promise.reject(
            Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" }),
          );
        await assert.rejects(
          convertToFolder(ck, dst, { precision: "fp16", copyFile: enospc }),
          (e: Error) =>
            e instanceof FsError && e.code === "ENOSPC" &&
            e.message === `${join(dst, "tokenizer.json")}: no space left on device while ` +
                `copying ${join(PG1, "hf", "tokenizer.json")}`,
        );
      } finally {
        ck.close();
      }
      assert.deepEqual(snapshot(dst), before);
      assert.deepEqual(names(dir), ["model"]);
      await assertLoads(dst);
    }),
});

Deno.test("convert of a PaliGemma 2 .npz without --config warns once about assumed values", () =>
  withTempDir(async (dir) => {
    const tok = ["--tokenizer", join(PG2, "hf", "tokenizer.model")];
    const r = await runPg(["convert", join(PG2, "bv.npz"), join(dir, "a"), ...tok]);
    assert.equal(r.code, 0, r.stderr);
    const warnings = errLines(r).filter((l) => /warning/.test(l));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(
      warnings[0],
      /^convert: warning: \S+bv\.npz does not store the query scale or soft-caps; assuming the published PaliGemma 2 values \(query_pre_attn_scalar \d+, attn_logit_softcapping [\d.]+, final_logit_softcapping [\d.]+, sliding_window \d+\); pass --config config\.json/,
    );
    const cfg = join(PG2, "hf", "config.json");
    const withCfg = await runPg(
      ["convert", join(PG2, "bv.npz"), join(dir, "b"), ...tok, "--config", cfg],
    );
    assert.equal(withCfg.code, 0, withCfg.stderr);
    assert.ok(!/warning/.test(withCfg.stderr), withCfg.stderr);
    // PaliGemma 1 has nothing to assume.
    const pg1 = await runPg([
      "convert",
      join(PG1, "bv.npz"),
      join(dir, "c"),
      "--tokenizer",
      join(PG1, "hf", "tokenizer.model"),
    ]);
    assert.equal(pg1.code, 0, pg1.stderr);
    assert.ok(!/warning/.test(pg1.stderr), pg1.stderr);
  }));

Deno.test("convert --help lists --force, the checks and examples", async () => {
  const r = await runPg(["convert", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--force +convert even if <dst-dir> holds a different model/);
  assert.match(r.stdout, /Before any conversion work/);
  assert.match(r.stdout, /\nExamples:\n {2}pg convert /);
});
