/**
 * `--junit FILE`: a JUnit XML report with one testcase per image and check, so CI systems show
 * which image failed which check.
 * @module
 */

/** One testcase: an image and a check, and how it ended. */
export interface JunitCase {
  /** Image path. */
  readonly image: string;
  /** Check name, or `run` when no check was asked for. */
  readonly check: string;
  /** Failure message when the check did not hold. */
  readonly failure?: string;
  /** Error message when the image could not be run at all. */
  readonly error?: string;
}

/** Text safe inside XML attributes and elements (invalid control characters dropped). */
export function xmlEscape(text: string): string {
  return text
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "")
    .replace(/[&<>"']/g, (c) => XML_ENTITIES[c]);
}

const XML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

/** The JUnit XML document of `cases`, as one testsuite named `suite`. */
export function junitXml(suite: string, cases: readonly JunitCase[], seconds: number): string {
  const failures = cases.filter((c) => c.failure !== undefined).length;
  const errors = cases.filter((c) => c.error !== undefined).length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="pg" tests="${cases.length}" failures="${failures}" errors="${errors}">`,
    `  <testsuite name="${xmlEscape(suite)}" tests="${cases.length}" failures="${failures}" ` +
    `errors="${errors}" time="${seconds.toFixed(3)}">`,
  ];
  for (const c of cases) {
    const head = `    <testcase classname="${xmlEscape(suite)}" name="${
      xmlEscape(`${c.image}: ${c.check}`)
    }"`;
    if (c.failure !== undefined) {
      const m = xmlEscape(c.failure);
      lines.push(`${head}>`, `      <failure message="${m}">${m}</failure>`, "    </testcase>");
    } else if (c.error !== undefined) {
      const m = xmlEscape(c.error);
      lines.push(`${head}>`, `      <error message="${m}">${m}</error>`, "    </testcase>");
    } else {
      lines.push(`${head}/>`);
    }
  }
  lines.push("  </testsuite>", "</testsuites>", "");
  return lines.join("\n");
}
