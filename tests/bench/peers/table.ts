/**
 * Renders the NDJSON of `side_by_side.sh` as the markdown table in BENCHMARKS.md (a script).
 *
 *   deno run --allow-read tests/bench/peers/table.ts OUT.ndjson
 * @module
 */

interface Row {
  system?: string;
  backend?: string;
  dtype: string;
  model: string;
  read_bytes: number;
  read_cold_ms: number | null;
  read_warm_ms: number;
  load_cold_ms: number | null;
  load_warm_ms: number;
  loads_ms: number[];
  import_ms?: number;
  ttft_ms: number;
  decode_tokens_per_s: number;
  load_phases_ms?: Record<string, number>;
}

const s = (ms: number | null | undefined) => ms == null ? "—" : `${(ms / 1000).toFixed(1)} s`;
const lines = (await Deno.readTextFile(Deno.args[0])).split("\n");
console.log(
  "| system | weights | files | read cold / warm | load cold | load warm: min (each) | first token | decode |",
);
console.log("| --- | --- | --: | --: | --: | --: | --: | --: |");
for (const line of lines) {
  if (!line.startsWith("{")) continue;
  const r = JSON.parse(line) as Row;
  const name = r.system ?? `pg (${r.backend})`;
  const warmLoads = r.load_cold_ms === null ? r.loads_ms : r.loads_ms.slice(1);
  const extra = r.import_ms === undefined ? "" : ` (+ ${s(r.import_ms)} import)`;
  console.log(
    `| ${name} | ${r.dtype} | ${(r.read_bytes / 1e9).toFixed(2)} GB | ${s(r.read_cold_ms)} / ${
      s(r.read_warm_ms)
    } | ${s(r.load_cold_ms)}${extra} | ${s(Math.min(...warmLoads))} (${
      warmLoads.map((x) => (x / 1000).toFixed(1)).join(", ")
    }) | ${s(r.ttft_ms)} | ${r.decode_tokens_per_s.toFixed(2)} tok/s |`,
  );
}
