// add (residual, broadcast): Y[i] = A[i] + B[i % nb], i < n. nb = n is a plain residual add;
// nb = D adds one row to every row; nb = tokens*D adds a position table to each image.
// Bindings: 0 A (read, n) · 1 B (read, nb) · 2 Y (read_write, n) · 3 params (uniform).
// Workgroup: 256 threads, one element each.
// Dispatch: (x, y, 1) with x*y*256 >= n, x <= 65535.

struct Params {
  n: u32,
  nb: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let i = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (i < p.n) {
    Y[i] = A[i] + B[i % p.nb];
  }
}
