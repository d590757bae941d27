import { convertFixture } from "./generate/fixture_models.ts";
import { onnx } from "../lib/onnx/proto.ts";
for (const p of ["fp32", "q8", "q4", "fp16"] as const) {
  const dir = `/tmp/wg/pg2-${p}`;
  try {
    Deno.statSync(dir);
  } catch {
    await Deno.mkdir(dir, { recursive: true });
    await convertFixture("pg2-tiny", "hf", dir, p);
  }
}
for (const p of ["fp32", "q4"]) {
  for (const f of Deno.readDirSync(`/tmp/wg/pg2-${p}/onnx`)) {
    const m = onnx.ModelProto.decode(
      Deno.readFileSync(`/tmp/wg/pg2-${p}/onnx/${f.name}`),
    ) as unknown as {
      graph: { initializer: { name: string; dims: number[]; dataType: number }[] };
    };
    console.log(
      p,
      f.name,
      m.graph.initializer.filter((t) => !/layers\.[12]\./.test(t.name)).map((t) =>
        `${t.name}:${t.dataType}[${t.dims.join(",")}]`
      ).join(" "),
    );
  }
}
