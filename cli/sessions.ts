/**
 * Opens the model step of a run: in this process, or on the `pg serve` named by `--server` /
 * PG_SERVER.
 * @module
 */

import type { ModelArgs } from "./model_args.ts";
import { LocalSession, type ModelSession } from "./model_session.ts";
import { RemoteSession } from "./remote_session.ts";
import { parseServerUrl } from "./server_url.ts";

/** The session for `args` (remote when `args.server` is set), for a run with `prompt`. */
export async function openSession(args: ModelArgs, prompt: string): Promise<ModelSession> {
  if (args.server === undefined) return await LocalSession.open(args, prompt);
  return await RemoteSession.open(parseServerUrl(args.server), args, prompt);
}
