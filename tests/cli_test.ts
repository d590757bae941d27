import assert from "node:assert/strict";
import { dispatch } from "../cli/run.ts";
import { commands } from "../cli/commands.ts";
import { usage } from "../main.ts";
import { runPg } from "./helpers/cli.ts";

const pg = (...args: string[]) => runPg(args);

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

Deno.test("dispatch without arguments prints usage on stderr and returns 2", async () => {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    assert.equal(await dispatch([], commands, "usage text"), 2);
    assert.deepEqual(out, [], "stdout stays clean");
    assert.deepEqual(err, ["usage text"]);
  } finally {
    console.log = log;
    console.error = error;
  }
});

Deno.test("pg with no arguments: usage on stderr, nothing on stdout, exit 2", async () => {
  const r = await pg();
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /Usage: pg /);
  const help = await pg("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: pg /);
});

Deno.test("numeric flag errors are one line that says the accepted range (exit 2)", async () => {
  const neg = await runPg(["caption", "x.png", "--temperature", "-1"]);
  assert.equal(neg.code, 2);
  assert.equal(neg.stderr.trim().split("\n").length, 1);
  assert.match(neg.stderr, /--temperature=-XYZ/);
  const topP = await runPg(["caption", "x.png", "--model", "m", "--top-p", "2"]);
  assert.equal(topP.code, 2);
  assert.match(topP.stderr, /--top-p expects a number greater than 0 and at most 1, got '2'/);
});
