/**
 * Where a `pg serve` listens and how a client reaches it: `unix:/path/pg.sock` (or a bare
 * absolute path, or `unix:` for the default socket) and `http://HOST:PORT`. The default socket is
 * `$XDG_RUNTIME_DIR/pg/pg.sock`, else `/tmp/pg-$UID/pg.sock`, in a folder only its owner can
 * enter. Socket paths are made absolute, as Deno's network permission names them.
 * @module
 */

import { join, resolve } from "node:path";
import { UsageError } from "../lib/errors.ts";

/** Environment variable that makes the image commands thin clients of a server. */
export const SERVER_ENV = "PG_SERVER";

/** A server address. */
export type ServerAddress =
  | { readonly transport: "unix"; readonly path: string }
  | { readonly transport: "tcp"; readonly host: string; readonly port: number };

/** The default socket path (see the module comment). */
export function defaultSocketPath(): string {
  const runtime = Deno.env.get("XDG_RUNTIME_DIR");
  if (runtime !== undefined && runtime !== "") return join(runtime, "pg", "pg.sock");
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    uid = null;
  }
  return join("/tmp", `pg-${uid ?? "user"}`, "pg.sock");
}

/** Parses a `--server` value (or PG_SERVER); `flag` names it in errors. */
export function parseServerUrl(text: string, flag = "--server"): ServerAddress {
  const bad = () =>
    new UsageError(
      `${flag} expects unix:/path/to/pg.sock or http://HOST:PORT, got '${text}'`,
    );
  if (text === "unix:" || text === "unix") return { transport: "unix", path: defaultSocketPath() };
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    if (path === "" || path.endsWith("/")) throw bad();
    return { transport: "unix", path: resolve(path) };
  }
  if (text.startsWith("/")) return { transport: "unix", path: resolve(text) };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad();
  }
  if (
    url.protocol !== "http:" || url.port === "" || (url.pathname !== "/" && url.pathname !== "")
  ) {
    throw bad();
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return { transport: "tcp", host, port: Number(url.port) };
}

/** The address as a user writes it. */
export function formatAddress(a: ServerAddress): string {
  if (a.transport === "unix") return `unix:${a.path}`;
  const host = a.host.includes(":") ? `[${a.host}]` : a.host;
  return `http://${host}:${a.port}`;
}

/**
 * The `--allow-net` value that reaches `a`: `unix:/abs/path` for a socket (Deno asks network
 * permission for Unix sockets too), `host:port` for TCP (`host` alone for port 0).
 */
export function netGrant(a: ServerAddress): string {
  if (a.transport === "unix") return `unix:${resolve(a.path)}`;
  const host = a.host.includes(":") ? `[${a.host}]` : a.host;
  return a.port === 0 ? host : `${host}:${a.port}`;
}

/** Whether this process may already use the network address of `grant`. */
export function netGranted(grant: string): boolean {
  return Deno.permissions.querySync({ name: "net", host: grant }).state === "granted";
}
