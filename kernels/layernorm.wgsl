// layernorm (SigLIP): Y[r, :] = (X[r, :] - mean) * inverseSqrt(var + eps) * w + b,
// var the biased variance over the row (two passes: mean, then mean of squared deviations).
// Bindings: 0 X (read, rows*D) · 1 w (read, D) · 2 b (read, D) · 3 Y (read_write, rows*D) ·
//           4 params (uniform).
// Workgroup: 256 threads per row, reductions in workgroup memory.
// Dispatch: (x, y, 1) with x*y >= rows, x <= 65535; row = x_id + y_id * x_count.

struct Params {
  rows: u32,
  D: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG = 256u;
var<workgroup> red: array<f32, 256>;

fn reduce_sum(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      red[t] += red[t + off];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.D;
  var s = 0.0;
  for (var i = lid.x; i < p.D; i += WG) {
    s += X[base + i];
  }
  let mean = reduce_sum(s, lid.x) / f32(p.D);
  var q = 0.0;
  for (var i = lid.x; i < p.D; i += WG) {
    let d = X[base + i] - mean;
    q = fma(d, d, q);
  }
  let inv = inverseSqrt(reduce_sum(q, lid.x) / f32(p.D) + p.eps);
  for (var i = lid.x; i < p.D; i += WG) {
    Y[base + i] = (X[base + i] - mean) * inv * w[i] + b[i];
  }
}
