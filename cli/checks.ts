/**
 * The checks a CI job asks for (`--expect`, `--reject`, `--expect-label`, `--reject-label`,
 * `--min-score`), evaluated on each image's result record, so a stored record (`--output-dir`)
 * is checked the same way as a fresh one.
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import { labelIndex } from "../lib/detect/report.ts";
import type { Json } from "../lib/detect/report.ts";

/** One check on one image's record: its name, and the failure message or null when it holds. */
export interface Check {
  /** Short name, e.g. `expect-label dog`. */
  readonly name: string;
  /** The failure message for `record`, or null when the check holds. */
  evaluate(record: RecordJson): string | null;
}

/** A result record as printed with `--json`. */
export type RecordJson = { readonly [key: string]: Json };

/** Parses a case-insensitive regular expression given to `flag`. */
function regex(flag: string, source: string): RegExp {
  try {
    return new RegExp(source, "iu");
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`--${flag} '${source}': not a regular expression (${why})`);
  }
}

function quoted(text: string, max = 80): string {
  const t = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(t);
}

/** `--expect REGEX` (each must match the text) and `--reject REGEX` (none may match). */
export function textChecks(expect: readonly string[], reject: readonly string[]): Check[] {
  const text = (r: RecordJson) => (typeof r.text === "string" ? r.text : "");
  return [
    ...expect.map((src): Check => {
      const re = regex("expect", src);
      return {
        name: `expect /${src}/`,
        evaluate: (r) =>
          re.test(text(r)) ? null : `expected text matching /${src}/i, got ${quoted(text(r))}`,
      };
    }),
    ...reject.map((src): Check => {
      const re = regex("reject", src);
      return {
        name: `reject /${src}/`,
        evaluate: (r) => {
          const m = re.exec(text(r));
          return m === null
            ? null
            : `text matches rejected /${src}/i ('${m[0]}'): ${quoted(text(r))}`;
        },
      };
    }),
  ];
}

/** An object of a detect/segment record. */
interface ObjectJson {
  readonly label: string;
  readonly score: number | null;
}

function objectsOf(r: RecordJson): ObjectJson[] {
  const list = Array.isArray(r.objects) ? r.objects : [];
  return list.map((o) => {
    const obj = (o ?? {}) as { [key: string]: Json };
    return {
      label: typeof obj.label === "string" ? obj.label : "",
      score: typeof obj.score === "number" ? obj.score : null,
    };
  });
}

function describeObjects(objects: readonly ObjectJson[]): string {
  if (objects.length === 0) return "no objects";
  const shown = objects.slice(0, 8).map((o) =>
    `${o.label} ${o.score === null ? "-" : o.score.toFixed(3)}`
  );
  return `found ${shown.join(", ")}${objects.length > 8 ? `, … (${objects.length} in all)` : ""}`;
}

/**
 * `--expect-label NAME` (each must be found), `--reject-label NAME` (none may be found); an object
 * counts when its label is NAME (case-insensitive) and its score is at least `minScore`.
 */
export function labelChecks(
  expect: readonly string[],
  reject: readonly string[],
  minScore: number,
): Check[] {
  const scoreText = minScore > 0 ? ` with score >= ${minScore}` : "";
  const counts = (o: ObjectJson, label: string) =>
    labelIndex([label], o.label) === 0 && (minScore <= 0 || (o.score ?? -1) >= minScore);
  return [
    ...expect.map((label): Check => ({
      name: `expect-label ${label}`,
      evaluate: (r) => {
        const objects = objectsOf(r);
        if (objects.some((o) => counts(o, label))) return null;
        return `expected an object labelled '${label}'${scoreText}; ${describeObjects(objects)}`;
      },
    })),
    ...reject.map((label): Check => ({
      name: `reject-label ${label}`,
      evaluate: (r) => {
        const hit = objectsOf(r).find((o) => counts(o, label));
        if (hit === undefined) return null;
        const score = hit.score === null ? "no score" : `score ${hit.score.toFixed(3)}`;
        return `found rejected label '${label}'${scoreText} (${score})`;
      },
    })),
  ];
}
