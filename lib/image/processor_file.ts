/**
 * Where a model folder keeps its image-processor settings: transformers 4.x writes them flat in
 * `preprocessor_config.json`; transformers 5.x writes `processor_config.json` with them nested
 * under `image_processor`. Both are read; a folder holding both with different settings is refused.
 * @module
 */

import { readJsonFileSync } from "../json_file.ts";
import * as fs from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.ts";

/** A JSON object. */
type Json = Record<string, unknown>;

/** One file name transformers has written the image-processor settings to, and where in it. */
export interface ProcessorFileKind {
  /** File name in the model folder. */
  readonly name: string;
  /** Key the settings are nested under, or null when they are the file's top level. */
  readonly nestedUnder: string | null;
  /** Which transformers versions write it. */
  readonly writtenBy: string;
}

/** Every processor file name transformers writes, in the order they are read. */
export const PROCESSOR_FILES: readonly ProcessorFileKind[] = [
  { name: "preprocessor_config.json", nestedUnder: null, writtenBy: "transformers 4.x" },
  { name: "processor_config.json", nestedUnder: "image_processor", writtenBy: "transformers 5.x" },
];

/** The image-processor settings of a folder and the file they came from. */
export interface ProcessorSettings {
  /** The file read. */
  readonly path: string;
  /** The image-processor fields (flat, as in a preprocessor_config.json). */
  readonly json: Json;
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The settings one file states, or undefined when it has none (e.g. no `image_processor`). */
function settingsIn(path: string, kind: ProcessorFileKind): Json | undefined {
  const json = readJsonFileSync(path);
  if (!isObject(json)) throw new InputError(`${path}: expected a JSON object`);
  if (kind.nestedUnder === null) return json;
  const nested = json[kind.nestedUnder];
  if (nested === undefined) return undefined;
  if (!isObject(nested)) throw new InputError(`${path}: ${kind.nestedUnder} must be an object`);
  return nested;
}

/** JSON with sorted keys and without `processor_class` (which names the class, not a setting). */
function canonical(v: unknown): string {
  const sort = (x: unknown): unknown =>
    Array.isArray(x) ? x.map(sort) : isObject(x)
      ? Object.fromEntries(
        Object.keys(x).filter((k) => k !== "processor_class").sort().map((k) => [k, sort(x[k])]),
      )
      : x;
  return JSON.stringify(sort(v));
}

/**
 * The image-processor settings of the model folder `dir`, from whichever of PROCESSOR_FILES it
 * holds; undefined when it holds none. Both files with different settings (`processor_class`
 * aside) is an InputError naming both; unreadable or invalid JSON is an InputError naming the file.
 */
export function readProcessorSettings(dir: string): ProcessorSettings | undefined {
  const found: ProcessorSettings[] = [];
  for (const kind of PROCESSOR_FILES) {
    const path = join(dir, kind.name);
    if (!fs.existsSync(path)) continue;
    const json = settingsIn(path, kind);
    if (json !== undefined) found.push({ path, json });
  }
  const [first, ...rest] = found;
  for (const other of rest) {
    if (canonical(other.json) !== canonical(first.json)) {
      throw new InputError(
        `${first.path} and ${other.path} state different image-processor settings; ` +
          `remove one of them`,
      );
    }
  }
  return first;
}
