// conv2d: stride 1, zero padding `pad`, square kernel k (3×3 pad 1 and 1×1 pad 0 in the VQ-VAE):
//   Y[n, y, x, o] = bias[o] + Σ_{ky,kx,i} X[n, y+ky-pad, x+kx-pad, i] * W[o, i, ky, kx],
// optionally followed by ReLU. Activations are NHWC; W is in PyTorch Conv2d layout [O, I, k, k].
// Output size OH = H + 2 pad - k + 1, OW = W + 2 pad - k + 1.
// Bindings: 0 X (read, N*H*W*I) · 1 W (read, O*I*k*k) · 2 bias (read, O) ·
//           3 Y (read_write, N*OH*OW*O) · 4 params (uniform).
// Workgroup: 256 threads, one output value each.
// Dispatch: (x, y, 1) with x*y*256 >= N*OH*OW*O, x <= 65535.

struct Params {
  N: u32,
  H: u32,
  W: u32,
  I: u32,
  O: u32,
  k: u32,
  pad: u32,
  relu: u32,
  OH: u32,
  OW: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let g = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (g >= p.N * p.OH * p.OW * p.O) {
    return;
  }
  let o = g % p.O;
  let x = (g / p.O) % p.OW;
  let y = (g / (p.O * p.OW)) % p.OH;
  let n = g / (p.O * p.OW * p.OH);
  let kk = p.k * p.k;
  var acc = bias[o];
  for (var ky = 0u; ky < p.k; ky++) {
    let iy = i32(y + ky) - i32(p.pad);
    if (iy < 0 || iy >= i32(p.H)) {
      continue;
    }
    for (var kx = 0u; kx < p.k; kx++) {
      let ix = i32(x + kx) - i32(p.pad);
      if (ix < 0 || ix >= i32(p.W)) {
        continue;
      }
      let xb = ((n * p.H + u32(iy)) * p.W + u32(ix)) * p.I;
      let wb = o * p.I * kk + ky * p.k + kx;
      for (var i = 0u; i < p.I; i++) {
        acc = fma(X[xb + i], Wt[wb + i * kk], acc);
      }
    }
  }
  if (p.relu != 0u) {
    acc = max(acc, 0.0);
  }
  Y[g] = acc;
}
