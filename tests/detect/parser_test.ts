import assert from "node:assert/strict";
import { CONVENTIONS, placeBox, roundHalfEven } from "../../lib/detect/convention.ts";
import { type AnswerMode, parseAnswer, tokenLiterals } from "../../lib/detect/grammar.ts";

interface FixtureObject {
  label: string;
  loc: [number, number, number, number];
  seg?: number[];
  box: { x1: number; y1: number; x2: number; y2: number };
  box_normalized: { x1: number; y1: number; x2: number; y2: number };
}

interface FixtureCase {
  index: number;
  mode: AnswerMode;
  text: string;
  width: number;
  height: number;
  big_vision: FixtureObject[];
  "hf-demo": FixtureObject[];
  skipped: { raw: string; reason: string }[];
  text_pieces: string[];
}

const fixture = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/detseg/cases.json", import.meta.url)),
) as { cases: FixtureCase[] };

Deno.test("detseg fixture: 40 answers", () => {
  assert.equal(fixture.cases.length, 40);
});

for (const convention of CONVENTIONS) {
  Deno.test(`detseg fixture: every answer parses to the fixture objects (${convention})`, () => {
    for (const c of fixture.cases) {
      const what = `case ${c.index} (${c.mode}) ${JSON.stringify(c.text)}`;
      const parsed = parseAnswer(c.text, c.mode);
      const got = parsed.objects.map((o) => {
        const placed = placeBox(o.loc, c.width, c.height, convention);
        return {
          label: o.label,
          loc: [...o.loc],
          ...(c.mode === "segment" ? { seg: [...(o.seg ?? [])] } : {}),
          box: placed.box,
          box_normalized: placed.normalized,
        };
      });
      const want = c[convention].map((o) => ({
        label: o.label,
        loc: o.loc,
        ...(c.mode === "segment" ? { seg: o.seg } : {}),
        box: o.box,
        box_normalized: o.box_normalized,
      }));
      assert.deepEqual(got, want, what);
      assert.deepEqual(parsed.skipped, c.skipped, what);
      assert.deepEqual(parsed.texts, c.text_pieces, what);
    }
  });
}

Deno.test("token ordinals point at each object's own loc/seg literals", () => {
  for (const c of fixture.cases) {
    const lits = tokenLiterals(c.text);
    for (const o of parseAnswer(c.text, c.mode).objects) {
      const mine = o.tokenOrdinals.map((i) => lits[i]);
      const expect = [
        ...o.loc.map((v) => `<loc${String(v).padStart(4, "0")}>`),
        ...(o.seg ?? []).map((v) => `<seg${String(v).padStart(3, "0")}>`),
      ];
      assert.deepEqual(mine.slice(0, expect.length), expect, `case ${c.index}`);
    }
  }
});

Deno.test("parser never throws on hostile input", () => {
  const bits = ["<loc0001>", "<loc1023>", "<seg127>", "<seg999>", ";", " ", "x", "<loc", ">", "\n"];
  let seed = 7;
  for (let n = 0; n < 2000; n++) {
    let s = "";
    const len = n % 40;
    for (let i = 0; i < len; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      s += bits[seed % bits.length];
    }
    for (const mode of ["detect", "segment"] as const) {
      const p = parseAnswer(s, mode);
      for (const o of p.objects) {
        assert.ok(o.loc[2] > o.loc[0] && o.loc[3] > o.loc[1] && o.loc[2] <= 1023, s);
        if (mode === "segment") assert.equal(o.seg?.length, 16, s);
      }
    }
  }
});

Deno.test("roundHalfEven matches Python round on ties and non-ties", () => {
  const cases: [number, number][] = [
    [0.5, 0],
    [1.5, 2],
    [2.5, 2],
    [7.5, 8],
    [2.4999, 2],
    [2.5001, 3],
    [30, 30],
    [0, 0],
  ];
  for (const [x, want] of cases) assert.equal(roundHalfEven(x), want, String(x));
});
