// embedding: Y[r, d] = table[ids[r], d] * scale for r < rows, d < D; table is [V, D] row-major.
// An id >= V writes zeros (the host checks ids first; this only keeps reads in bounds).
// Bindings: 0 table (read, V*D) · 1 ids (read, u32, rows) · 2 Y (read_write, rows*D) ·
//           3 params (uniform).
// Workgroup: 256 threads, one element each.
// Dispatch: (x, y, 1) with x*y*256 >= rows*D, x <= 65535.

struct Params {
  rows: u32,
  D: u32,
  V: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let i = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (i >= p.rows * p.D) {
    return;
  }
  let r = i / p.D;
  let d = i % p.D;
  let id = ids[r];
  var v = 0.0;
  if (id < p.V) {
    v = table[id * p.D + d] * p.scale;
  }
  Y[i] = v;
}
