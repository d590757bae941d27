/**
 * `cache`: list and remove the model cache's entries (checkpoints converted on first use by
 * `--model`; lib/convert/cache.ts).
 * @module
 */

import {
  type CacheEntry,
  cacheFolder,
  clearCache,
  listCache,
  removeCacheEntries,
} from "../lib/convert/cache_entries.ts";
import { UsageError } from "../lib/errors.ts";
import { type Command, parseFlags } from "./command.ts";
import { writeOut } from "./stdout.ts";

const HELP = `Usage: pg cache ls [--json]
       pg cache rm NAME... | --all

A checkpoint given as --model (an HF folder or a big_vision .npz) is converted on its first run
into the model cache and loaded from there afterwards. Each entry is a converted model folder
named <name>-<hash>-<dtype>: the source's base name, a hash of its files' paths, sizes and
modification times (and of --tokenizer and --config), and the precision converted to. A changed
checkpoint is converted again into a new entry; old entries stay until removed.

The cache is $PG_CACHE, else $XDG_CACHE_HOME/pg/models, else ~/.cache/pg/models.

Subcommands:
  ls                   one line per entry: path, dtype, size, when last used, source
  rm NAME...           remove the named entries (names or paths as 'ls' prints them); a name
                       that is no entry removes nothing (exit 2)
  rm --all             remove every entry (and what interrupted runs left)

Options:
  --json               ls: one JSON object per entry per line (NDJSON): name, path, source,
                       format, dtype, bytes, last_used, created
  --all                rm: every entry

Examples:
  pg cache ls
  pg cache ls --json | jq -r .path
  pg cache rm paligemma2-3b-mix-224-0123456789abcdef-fp32
  pg cache rm --all`;

/** `bytes` as B, KiB, MiB or GiB with one decimal. */
function size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) [v, i] = [v / 1024, i + 1];
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The NDJSON record of an entry. */
function record(e: CacheEntry): Record<string, unknown> {
  return {
    name: e.name,
    path: e.path,
    source: e.meta?.source ?? null,
    format: e.meta?.format ?? null,
    dtype: e.meta?.dtype ?? null,
    bytes: e.bytes,
    last_used: e.lastUsed.toISOString(),
    created: e.meta?.created ?? null,
  };
}

/** The plain line of an entry. */
function line(e: CacheEntry): string {
  const used = e.lastUsed.toISOString().replace(/\.\d+Z$/, "Z");
  return `${e.path}  ${e.meta?.dtype ?? "?"}  ${size(e.bytes)}  last used ${used}  from ` +
    (e.meta?.source ?? "(unknown source)");
}

/** `cache`: list or remove converted checkpoints. */
export const cacheCommand: Command = {
  name: "cache",
  summary: "list or remove checkpoints converted on first use",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseFlags("cache", args, {
      json: { type: "boolean" },
      all: { type: "boolean" },
    });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return 0;
    }
    const [sub, ...names] = positionals;
    if (sub === undefined) throw new UsageError("cache: expected ls or rm (see 'pg cache --help')");
    if (sub !== "ls" && sub !== "rm") {
      throw new UsageError(`cache: unknown subcommand '${sub}'; expected ls or rm`);
    }
    const all = values.all === true;
    if (sub === "ls" && (all || names.length > 0)) {
      throw new UsageError("cache ls: takes no names and no --all (see 'pg cache --help')");
    }
    if (sub === "rm" && values.json === true) throw new UsageError("cache rm: --json is for ls");
    if (sub === "rm" && all === (names.length > 0)) {
      throw new UsageError("cache rm: give entry names or --all, not both or neither");
    }
    const root = cacheFolder((name) => Deno.env.get(name));
    if (sub === "ls") {
      const entries = listCache(root);
      if (entries.length === 0) console.error(`cache: no models in ${root}`);
      const out = entries.map((e) => values.json === true ? JSON.stringify(record(e)) : line(e));
      if (out.length > 0) writeOut(out.join("\n") + "\n");
      return 0;
    }
    const removed = all ? await clearCache(root) : await removeCacheEntries(root, names);
    for (const p of removed) console.error(`cache: removed ${p}`);
    if (removed.length === 0) console.error(`cache: no models in ${root}`);
    return 0;
  },
};
