/**
 * paligemma: run Google's PaliGemma and PaliGemma 2 vision-language models from the command line.
 * This file only dispatches to the subcommands in `cli/`.
 * @module
 */
import type { Command } from "./cli/command.ts";
import { commands } from "./cli/commands.ts";
import { runMain } from "./cli/run.ts";

/** Top-level usage text listing every subcommand. */
export function usage(list: readonly Command[]): string {
  const width = Math.max(...list.map((c) => c.name.length));
  return [
    "paligemma: PaliGemma and PaliGemma 2 on the command line",
    "",
    "Usage: pg <command> [options]   (pg <command> --help for details)",
    "",
    "Commands:",
    ...list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Exit codes: 0 ok, 1 a check failed (--expect-*), 2 usage error, 3 bad input or model.",
  ].join("\n");
}

if (import.meta.main) {
  await runMain(Deno.args, commands, usage(commands));
}
