/**
 * Checks for CI: `--expect`/`--reject` on text, repeated `--expect-label`, `--reject-label`,
 * `--min-score` with and without them, and the JUnit report, parsed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import { runPg } from "../helpers/cli.ts";
import { FIXTURE_IMAGES, records, withTinyModel } from "./setup.ts";

const [ASTRONAUT, CHELSEA] = FIXTURE_IMAGES;

/** Escapes `text` for use inside a regular expression. */
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface TestCase {
  "@_name": string;
  failure?: { "@_message": string };
  error?: { "@_message": string };
}

/** The testcases of a JUnit file, parsed with a real XML parser. */
async function junitCases(path: string): Promise<TestCase[]> {
  const xml = new XMLParser({ ignoreAttributes: false, isArray: (n) => n === "testcase" })
    .parse(await Deno.readTextFile(path));
  return xml.testsuites.testsuite.testcase;
}

Deno.test("--expect / --reject on captions: case-insensitive, repeatable, JUnit per image and check", () =>
  withTinyModel(async (dir, model) => {
    const run = ["caption", ASTRONAUT, CHELSEA, "--model", model, "--max-tokens", "6"];
    const base = await runPg([...run, "--json"]);
    assert.equal(base.code, 0, base.stderr);
    const [a, c] = records(base.stdout).map((r) => String(r.text));
    assert.ok(a.length > 0 && c.length > 0);
    const inBoth = `${escape(a.slice(0, 2).toUpperCase())}|${escape(c.slice(0, 2).toUpperCase())}`;
    const onlyA = escape(a);

    assert.equal((await runPg([...run, "--expect", inBoth])).code, 0);
    const two = await runPg([...run, "--expect", inBoth, "--expect", onlyA]);
    assert.equal(two.code, 1, "the second --expect counts");
    assert.match(two.stderr, /chelsea\.png: check failed: expected text matching/);
    assert.doesNotMatch(two.stderr, /astronaut\.png: check failed/);

    const junit = join(dir, "report.xml");
    const rej = await runPg([...run, "--reject", onlyA, "--reject", "^zzzz$", "--junit", junit]);
    assert.equal(rej.code, 1, rej.stderr);
    const cases = await junitCases(junit);
    assert.deepEqual(cases.map((t) => t["@_name"]), [
      `${ASTRONAUT}: reject /${onlyA}/`,
      `${ASTRONAUT}: reject /^zzzz$/`,
      `${CHELSEA}: reject /${onlyA}/`,
      `${CHELSEA}: reject /^zzzz$/`,
    ]);
    assert.deepEqual(cases.map((t) => t.failure !== undefined), [true, false, false, false]);
    assert.match(cases[0].failure!["@_message"], /text matches rejected/);

    const bad = await runPg([...run, "--expect", "("]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--expect '\(': not a regular expression/);
  }));

Deno.test("--expect-label (repeated), --reject-label and --min-score on detect, with --junit", () =>
  withTinyModel(async (dir, model) => {
    // With room for one object only, one of the two labels is present and the other absent.
    const run = ["detect", CHELSEA, "--labels", "cat ; dog", "--model", model];
    const opts = ["--constrained", "--max-tokens", "6"];
    const base = await runPg([...run, ...opts, "--json"]);
    assert.equal(base.code, 0, base.stderr);
    const objects = records(base.stdout)[0].objects as { label: string; score: number }[];
    assert.equal(objects.length, 1);
    const present = objects[0].label;
    const absent = present === "cat" ? "dog" : "cat";
    const code = async (...extra: string[]) => (await runPg([...run, ...opts, ...extra])).code;

    assert.equal(await code("--expect-label", present), 0);
    assert.equal(await code("--expect-label", present, "--expect-label", absent), 1);
    assert.equal(await code("--expect-label", absent, "--expect-label", present), 1);
    assert.equal(await code("--reject-label", present), 1);
    assert.equal(await code("--reject-label", absent), 0);
    assert.equal(await code("--expect-label", present, "--min-score", "1"), 1);
    assert.equal(await code("--reject-label", present, "--min-score", "1"), 0);
    assert.equal(await code("--reject-label", "bird"), 2);

    // --min-score with checks leaves the output alone; given alone it filters the objects.
    const withCheck = await runPg([
      ...run,
      ...opts,
      "--json",
      "--expect-label",
      present,
      "--min-score",
      "0.99",
    ]);
    assert.equal(records(withCheck.stdout)[0].objects instanceof Array, true);
    assert.equal((records(withCheck.stdout)[0].objects as unknown[]).length, 1);
    const alone = await runPg([...run, ...opts, "--json", "--min-score", "0.99"]);
    assert.equal(alone.code, 0, alone.stderr);
    assert.deepEqual(records(alone.stdout)[0].objects, []);

    const junit = join(dir, "labels.xml");
    const r = await runPg([
      ...run,
      ...opts,
      ...["--expect-label", present, "--expect-label", absent, "--reject-label", present],
      ...["--junit", junit],
    ]);
    assert.equal(r.code, 1, r.stderr);
    const cases = await junitCases(junit);
    assert.deepEqual(cases.map((t) => [t["@_name"], t.failure !== undefined]), [
      [`${CHELSEA}: expect-label ${present}`, false],
      [`${CHELSEA}: expect-label ${absent}`, true],
      [`${CHELSEA}: reject-label ${present}`, true],
    ]);
    assert.match(
      cases[1].failure!["@_message"],
      new RegExp(`labelled '${absent}'.*found ${present}`),
    );

    // An image that fails is an <error> in every one of its checks, and exit 3 wins over 1.
    const missing = join(dir, "missing.png");
    const err = await runPg([
      "detect",
      CHELSEA,
      missing,
      ...["--labels", "cat ; dog", "--model", model, ...opts],
      ...["--expect-label", absent, "--junit", junit],
    ]);
    assert.equal(err.code, 3, err.stderr);
    const errCases = await junitCases(junit);
    assert.equal(errCases.length, 2);
    assert.ok(errCases[0].failure !== undefined);
    assert.match(errCases[1].error!["@_message"], /bad_image: .*missing\.png/);
  }));
