// rmsnorm (Gemma): Y[r, :] = X[r, :] * inverseSqrt(mean(X[r, :]^2) + eps) * (1 + w).
// Bindings: 0 X (read, rows*D) · 1 w (read, D) · 2 Y (read_write, rows*D) · 3 params (uniform).
// Workgroup: 256 threads per row; the sum of squares is reduced in workgroup memory.
// Dispatch: (x, y, 1) with x*y >= rows, x <= 65535; row = x_id + y_id * x_count.

struct Params {
  rows: u32,
  D: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 256u;
var<workgroup> red: array<f32, 256>;

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
    let v = X[base + i];
    s = fma(v, v, s);
  }
  red[lid.x] = s;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (lid.x < off) {
      red[lid.x] += red[lid.x + off];
    }
    workgroupBarrier();
  }
  let inv = inverseSqrt(red[0] / f32(p.D) + p.eps);
  for (var i = lid.x; i < p.D; i += WG) {
    Y[base + i] = X[base + i] * inv * (1.0 + w[i]);
  }
}
