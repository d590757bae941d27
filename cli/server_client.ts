/**
 * JSON over HTTP to a `pg serve`, on its Unix socket or its TCP port (node:http, which reaches a
 * Unix socket with only the network permission for that socket). Errors the server sends come
 * back as ServerError (its kind, message and exit code); a server that cannot be reached is an
 * InputError naming the address.
 * @module
 */

import { Buffer } from "node:buffer";
import http from "node:http";
import { InputError, PgError } from "../lib/errors.ts";
import type { ErrorBody, Json } from "../lib/serve/protocol.ts";
import { formatAddress, type ServerAddress } from "./server_url.ts";

/** An error the server replied with. */
export class ServerError extends PgError {
  /** `kind` and `message` as the server sent them. */
  constructor(readonly kind: string, message: string, exitCode: number) {
    super(message, exitCode === 2 ? 2 : 3);
    this.name = "ServerError";
  }
}

/** A request aborted by its caller. */
export class Aborted extends Error {
  /** The request was cancelled. */
  constructor() {
    super("aborted");
    this.name = "Aborted";
  }
}

/** A connection to one server. */
export class ServerClient {
  private readonly agent = new http.Agent({ keepAlive: true });

  /** A client of the server at `address`. */
  constructor(readonly address: ServerAddress) {}

  /** POSTs `body` as JSON to `path` and returns the reply's JSON; an error reply throws. */
  async post(path: string, body: unknown, signal?: AbortSignal): Promise<Json> {
    const payload = Buffer.from(JSON.stringify(body));
    const where = formatAddress(this.address);
    const target = this.address.transport === "unix"
      ? { socketPath: this.address.path }
      : { host: this.address.host, port: this.address.port };
    const { status, text } = await new Promise<{ status: number; text: string }>(
      (resolve, reject) => {
        if (signal?.aborted) return reject(new Aborted());
        const req = http.request({
          ...target,
          agent: this.agent,
          path,
          method: "POST",
          headers: { "content-type": "application/json", "content-length": payload.length },
        }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              text: Buffer.concat(chunks).toString("utf8"),
            }));
          res.on("error", reject);
        });
        const onAbort = () => {
          req.destroy();
          reject(new Aborted());
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        req.on("error", (err: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(
            new InputError(
              `cannot reach pg serve at ${where} (--server / PG_SERVER): ${err.message}`,
            ),
          );
        });
        req.end(payload);
      },
    );
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new InputError(
        `pg serve at ${where} sent a reply that is not JSON (HTTP ${status}): ${
          text.slice(0, 120)
        }`,
      );
    }
    const error = errorOf(json);
    if (error !== undefined) throw new ServerError(error.kind, error.message, error.exit_code ?? 3);
    if (status < 200 || status >= 300) throw new InputError(`pg serve at ${where}: HTTP ${status}`);
    return json;
  }

  /** Closes idle connections. */
  close(): void {
    this.agent.destroy();
  }
}

/** The `error` member of a reply, when it has a well-formed one. */
export function errorOf(json: Json): ErrorBody | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  const e = json.error;
  if (e === null || typeof e !== "object" || Array.isArray(e)) return undefined;
  const kind = typeof e.kind === "string" ? e.kind : "server_error";
  const message = typeof e.message === "string" ? e.message : JSON.stringify(e);
  const code = typeof e.exit_code === "number" ? e.exit_code : undefined;
  return { kind, message, exit_code: code };
}
