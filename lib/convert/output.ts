/**
 * Atomic output of a converted model folder: everything is written to a temporary folder beside
 * the destination, then renamed into place (the whole folder when the destination is new, file by
 * file when adding another precision to an existing folder).
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeFsError, InputError } from "../errors.ts";
import type { Json } from "./configs.ts";

/** A fresh temporary folder next to `dst`. */
export async function tempDirBeside(dst: string): Promise<string> {
  const parent = dirname(dst);
  try {
    await Deno.mkdir(parent, { recursive: true });
    return await Deno.makeTempDir({ dir: parent, prefix: `.${basename(dst)}.partial-` });
  } catch (err) {
    throw describeFsError(err, parent);
  }
}

/** Files under `dir`, relative, recursively. */
function listFiles(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, r));
    else out.push(r);
  }
  return out;
}

/** config.json of `tmp` with the transformers.js external-data map of `dst`'s config merged in. */
function mergedConfig(tmpConfig: string, dstConfig: string): string {
  const fresh = JSON.parse(fs.readFileSync(tmpConfig, "utf8")) as Json;
  let old: Json = {};
  try {
    old = JSON.parse(fs.readFileSync(dstConfig, "utf8")) as Json;
  } catch {
    return JSON.stringify(fresh, null, 2) + "\n";
  }
  const key = "transformers.js_config";
  const ext = (j: Json) => ((j[key] as Json | undefined)?.use_external_data_format ?? {}) as Json;
  fresh[key] = {
    ...(fresh[key] as Json),
    use_external_data_format: { ...ext(old), ...ext(fresh) },
  };
  return JSON.stringify(fresh, null, 2) + "\n";
}

/** Moves the finished `tmp` folder to `dst` (see module doc) and removes `tmp`. */
export async function commitDir(tmp: string, dst: string): Promise<void> {
  let exists = false;
  try {
    const st = await Deno.stat(dst);
    if (!st.isDirectory) throw new InputError(`${dst}: exists and is not a folder`);
    exists = true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw describeFsError(err, dst);
  }
  if (!exists) {
    await Deno.chmod(tmp, 0o755);
    await Deno.rename(tmp, dst);
    return;
  }
  const tmpConfig = join(tmp, "config.json");
  if (fs.existsSync(tmpConfig)) {
    fs.writeFileSync(tmpConfig, mergedConfig(tmpConfig, join(dst, "config.json")));
  }
  // Data files first, then graphs, then JSON: a reader never sees a graph without its data.
  const files = listFiles(tmp).sort((a, b) => rank(a) - rank(b));
  for (const f of files) {
    await Deno.mkdir(dirname(join(dst, f)), { recursive: true });
    await Deno.rename(join(tmp, f), join(dst, f));
  }
  await Deno.remove(tmp, { recursive: true });
}

function rank(f: string): number {
  return f.endsWith(".onnx_data") ? 0 : f.endsWith(".onnx") ? 1 : 2;
}
