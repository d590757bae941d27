/**
 * Network permission for exactly one address: `pg serve` and a client given `--server` run
 * themselves again with `--allow-net=HOST:PORT` (or `--allow-net=unix:/path/pg.sock`: Deno asks
 * network permission for Unix sockets too; cli/reexec.ts), so that no command holds more network
 * access than the address it uses, and the others none.
 * @module
 */

import { rerunSelf } from "./reexec.ts";
import {
  defaultSocketPath,
  netGrant,
  netGranted,
  parseServerUrl,
  SERVER_ENV,
} from "./server_url.ts";

const CLIENT_COMMANDS = ["caption", "answer", "detect", "segment"];

/** The value of `--name V` / `--name=V` in `args` (the last one), if any. */
function flagValue(args: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") break;
    if (a === `--${name}` && i + 1 < args.length) found = args[++i];
    else if (a.startsWith(`--${name}=`)) found = a.slice(name.length + 3);
  }
  return found;
}

/** The `--allow-net` value `args` need (host or host:port), or undefined for none. */
export function netNeeded(args: readonly string[]): string | undefined {
  const [command, ...rest] = args;
  try {
    if (command === "serve") {
      const port = flagValue(rest, "port");
      if (port === undefined) {
        return netGrant({
          transport: "unix",
          path: flagValue(rest, "socket") ?? defaultSocketPath(),
        });
      }
      if (!/^\d+$/.test(port)) return undefined;
      const host = flagValue(rest, "host") ?? "127.0.0.1";
      return netGrant({ transport: "tcp", host, port: Number(port) });
    }
    if (command !== undefined && CLIENT_COMMANDS.includes(command)) {
      const env = Deno.env.get(SERVER_ENV);
      const server = flagValue(rest, "server") ?? (env === "" ? undefined : env);
      return server === undefined ? undefined : netGrant(parseServerUrl(server));
    }
  } catch {
    // A bad value: the command itself reports it.
  }
  return undefined;
}

/**
 * Runs `args` again with network access to the one address they need, when they need one this
 * process lacks; returns the exit code, or undefined to run here.
 */
export async function rerunForNet(args: readonly string[]): Promise<number | undefined> {
  const grant = netNeeded(args);
  if (grant === undefined || netGranted(grant)) return undefined;
  return await rerunSelf(args, [`--allow-net=${grant}`], true);
}
