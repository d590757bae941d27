/**
 * Test helper, run as its own process with network access to one server address only (the test
 * runner has none): sends the HTTP requests of a plan read on stdin, all at once, and prints their
 * replies as one JSON array. `deno run --allow-read --allow-net=ADDR raw_client.ts ADDRESS`.
 *
 * Plan: `[{method, path, body?, image_file?, huge_bytes?, abort_after_ms?}]`. `image_file` puts
 * that file's bytes (base64) into `body.image`; `huge_bytes` sends a JSON body of that many bytes;
 * `abort_after_ms` drops the connection after that long (a client going away).
 *
 * `raw_client.ts probe HOST PORT` instead prints whether a TCP connection to HOST:PORT succeeds.
 * @module
 */

import { Buffer } from "node:buffer";
import http from "node:http";
import { parseServerUrl } from "../../cli/server_url.ts";

/** One request of a plan. */
interface Step {
  readonly method: string;
  readonly path: string;
  readonly body?: Record<string, unknown> | string;
  readonly image_file?: string;
  readonly huge_bytes?: number;
  readonly abort_after_ms?: number;
}

/** One reply (status 0 when the request failed or was aborted). */
interface Reply {
  readonly status: number;
  readonly body: string;
}

function send(address: string, step: Step): Promise<Reply> {
  const a = parseServerUrl(address);
  const target = a.transport === "unix" ? { socketPath: a.path } : { host: a.host, port: a.port };
  let payload: Buffer;
  if (step.huge_bytes !== undefined) {
    payload = Buffer.alloc(step.huge_bytes, 0x78);
    payload.write('{"x":"', 0);
    payload.write('"}', step.huge_bytes - 2);
  } else if (typeof step.body === "string") payload = Buffer.from(step.body);
  else if (step.body !== undefined) {
    const body = { ...step.body };
    if (step.image_file !== undefined) {
      body.image = Buffer.from(Deno.readFileSync(step.image_file)).toString("base64");
    }
    payload = Buffer.from(JSON.stringify(body));
  } else payload = Buffer.alloc(0);
  return new Promise((resolve) => {
    const req = http.request({
      ...target,
      path: step.path,
      method: step.method,
      headers: { "content-type": "application/json", "content-length": payload.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on(
        "end",
        () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
    });
    req.on("error", (err: Error) => resolve({ status: 0, body: err.message }));
    if (step.abort_after_ms !== undefined) {
      setTimeout(() => req.destroy(), step.abort_after_ms);
    }
    req.end(payload);
  });
}

async function probe(host: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: host, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "probe") {
    console.log(JSON.stringify(await probe(Deno.args[1], Number(Deno.args[2]))));
  } else {
    const plan: Step[] = JSON.parse(await new Response(Deno.stdin.readable).text());
    const replies = await Promise.all(plan.map((s) => send(Deno.args[0], s)));
    console.log(JSON.stringify(replies));
  }
}
