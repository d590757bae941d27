/**
 * paligemma: run Google's PaliGemma and PaliGemma 2 vision-language models from the command line.
 * This file only dispatches to the subcommands in `cli/`.
 * @module
 */
import type { Command } from "./cli/command.ts";
import { commands } from "./cli/commands.ts";
import { runMain } from "./cli/run.ts";
import { versionLine } from "./cli/version.ts";

/** Top-level usage text listing every subcommand. */
export function usage(list: readonly Command[]): string {
  const width = Math.max(...list.map((c) => c.name.length));
  return [
    `${versionLine()}: PaliGemma and PaliGemma 2 on the command line`,
    "",
    "Usage: pg <command> [options]   (pg help <command> or pg <command> --help for details)",
    "       pg --version",
    "",
    "Commands:",
    ...list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Exit codes: 0 ok, 1 a check failed (--expect*, --reject*), 2 usage error, 3 bad input",
    "or model (or an image failed), 141 stdout closed by its reader.",
    "",
    "Examples:",
    "  pg caption photo.jpg --model ~/models/pg2-224",
    "  pg caption photo.jpg --model ~/models/paligemma2-3b-mix-224   # HF folder: cached on first run",
    "  pg detect shots/ -r --label dog --expect-label dog --junit report.xml",
    "  pg convert ~/models/paligemma2-3b-mix-224 ~/models/pg2-224 --dtype q8",
  ].join("\n");
}

if (import.meta.main) {
  await runMain(Deno.args, commands, usage(commands));
}
