// embedding_q: Y[r, d] = W[ids[r], d] for r < rows, d < D, with the table W [V, D] stored as
// gemv_q.wgsl stores weights (FMT 0 f32, 1 f16 halves two per u32, 2 q8 / 3 q4 MatMulNBits
// blocks with scales S and zero points Z as ZP 0 / 4 / 8 there). An id >= V writes zeros.
// Bindings: 0 W (read, u32, row stride rw words) · 1 S (read, f32) · 2 Z (read, u32 bytes) ·
//   3 ids (read, u32, rows) · 4 Y (read_write, rows*D) · 5 params (uniform).
// Workgroup: 256 threads, one element each.
// Dispatch: (x, y, 1) with x*y*256 >= rows*D, x <= 65535.

override FMT: u32 = 0u;
override ZP: u32 = 0u;
override BS: u32 = 32u;

struct Params {
  rows: u32,
  D: u32,
  V: u32,
  rw: u32,
  blocks: u32,
  zs: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> W: array<u32>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<u32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

//! include quant_zero_points

fn value(n: u32, d: u32) -> f32 {
  let row = n * p.rw;
  if (FMT == 0u) {
    return bitcast<f32>(W[row + d]);
  }
  if (FMT == 1u) {
    return unpack2x16float(W[row + d / 2u])[d % 2u];
  }
  let b = d / BS;
  let sc = S[n * p.blocks + b];
  if (FMT == 2u) {
    let c = (W[row + d / 4u] >> ((d % 4u) * 8u)) & 255u;
    return (f32(c) - zero_point(n, b, 128.0)) * sc;
  }
  let c = (W[row + d / 8u] >> ((d % 8u) * 4u)) & 15u;
  return (f32(c) - zero_point(n, b, 8.0)) * sc;
}

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
    v = value(id, d);
  }
  Y[i] = v;
}
