import assert from "node:assert/strict";
import { dispatch } from "../cli/run.ts";
import { commands } from "../cli/commands.ts";
import { usage } from "../main.ts";

/** Runs main.ts as a subprocess, as a user would. */
async function pg(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "main.ts",
      ...args,
    ],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("every subcommand prints help and exits 0", async () => {
  for (const c of commands) {
    const r = await pg(c.name, "--help");
    assert.equal(r.code, 0, `${c.name} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: pg ${c.name}`));
  }
});

Deno.test("top-level help lists all commands", () => {
  const text = usage(commands);
  for (const name of ["caption", "answer", "detect", "segment", "bench", "convert", "inspect"]) {
    assert.ok(text.includes(`  ${name}`), name);
  }
});

Deno.test("unknown command is a usage error (exit 2) with one line, no stack", async () => {
  const r = await pg("frobnicate");
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});

Deno.test("dispatch without arguments prints usage and returns 2", async () => {
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(await dispatch([], commands, "usage"), 2);
  } finally {
    console.log = log;
  }
});
