/**
 * The version `pg --version` prints: the toolkit's (deno.json) and the runtimes it runs on.
 * @module
 */

import config from "../deno.json" with { type: "json" };

/** The toolkit's version, from deno.json. */
export const VERSION: string = config.version;

/** `pg 0.1.0 (deno 2.9.6, onnxruntime-node 1.30.0)`. */
export function versionLine(): string {
  const ort = /onnxruntime-node@([^"]+)$/.exec(config.imports["onnxruntime-node"])?.[1] ?? "?";
  return `pg ${VERSION} (deno ${Deno.version.deno}, onnxruntime-node ${ort})`;
}
