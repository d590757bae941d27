// rope (rotate-half, in place): for each (b, t, h) vector x of length D (even) and i < D/2,
//   a = pos[b*T + t] * theta^(-2i/D);
//   x[i] <- x[i] cos a - x[i + D/2] sin a;  x[i + D/2] <- x[i + D/2] cos a + x[i] sin a.
// Layout by element strides: x[b, t, h, d] = X[b*sb + t*st + h*sh + d] (token-major [B,T,H,D]
// is sb = T*H*D, st = H*D, sh = D; head-major [B,H,T,D] is sb = H*T*D, sh = T*D, st = D).
// Bindings: 0 X (read_write) · 1 pos (read, i32, B*T) · 2 params (uniform).
// Workgroup: 256 threads, one (b, t, h, i) pair each.
// Dispatch: (x, y, 1) with x*y*256 >= B*T*H*D/2, x <= 65535.

struct Params {
  B: u32,
  T: u32,
  H: u32,
  D: u32,
  sb: u32,
  st: u32,
  sh: u32,
  log_theta: f32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let half = p.D / 2u;
  let g = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (g >= p.B * p.T * p.H * half) {
    return;
  }
  let i = g % half;
  let h = (g / half) % p.H;
  let bt = g / (half * p.H);
  let t = bt % p.T;
  let b = bt / p.T;
  let inv_freq = exp(-f32(2u * i) / f32(p.D) * p.log_theta);
  let a = f32(pos[bt]) * inv_freq;
  let c = cos(a);
  let s = sin(a);
  let base = b * p.sb + t * p.st + h * p.sh;
  let x1 = X[base + i];
  let x2 = X[base + i + half];
  X[base + i] = x1 * c - x2 * s;
  X[base + i + half] = x2 * c + x1 * s;
}
