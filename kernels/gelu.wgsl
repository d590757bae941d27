// gelu: Y[i] = gelu_tanh(X[i]) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise.
// Bindings: 0 X (read, n) · 1 Y (read_write, n) · 2 params (uniform).
// Workgroup: 256 threads, one element each.
// Dispatch: (x, y, 1) with x*y*256 >= n, x <= 65535; i = (x_id + y_id * x_count) * 256 + local.

struct Params {
  n: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn gelu_tanh(x: f32) -> f32 {
  // tanh's argument is clamped: tanh(±10) is ±1 in f32, and large inputs must not overflow.
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -10.0, 10.0);
  return 0.5 * x * (1.0 + tanh(u));
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let i = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (i < p.n) {
    Y[i] = gelu_tanh(X[i]);
  }
}
