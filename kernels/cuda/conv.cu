// Layout transforms of the NHWC convolution (scratchgan/ops/conv.py); the GEMMs go to cuBLAS.
//
// x (N, H, W, C); window (kh, kw), strides (sh, sw), padding top/left (TensorFlow's "same"
// or 0 for "valid"); output (N, Ho, Wo). Padding is implicit: no padded copy is made.
//
//   im2col   cols[(n*Ho + p)*Wo + q, (i*kw + j)*C + c] = x[n, p*sh + i - top, q*sw + j - left, c]
//            (0 where that pixel is padding), so y = cols @ kernel.reshape(kh*kw*C, F)
//   col2im   its adjoint, as a gather: each x element sums the cols entries that copied it,
//            dx[n, h, w, c] = sum over taps (i, j) and outputs (p, q) with p*sh + i = h + top
//            and q*sw + j = w + left of cols[(n*Ho + p)*Wo + q, (i*kw + j)*C + c].
//            One thread per dx element: no atomics, the same sum order every run.
//
// The transposed convolution uses the same two kernels with the roles swapped, as the
// reference does.

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

struct Geometry {
    int N, H, W, C, kh, kw, sh, sw, top, left, Ho, Wo;
};

template <typename T>
__global__ void im2col(const T* x, Geometry g, T* cols) {
    const long long row_length = (long long)g.kh * g.kw * g.C;
    const long long total = (long long)g.N * g.Ho * g.Wo * row_length;
    GRID_STRIDE(e, total) {
        const long long row = e / row_length;
        const int k = (int)(e % row_length);  // (i*kw + j)*C + c
        const int c = k % g.C, tap = k / g.C;
        const int i = tap / g.kw, j = tap % g.kw;
        const int q = (int)(row % g.Wo), p = (int)((row / g.Wo) % g.Ho);
        const long long n = row / ((long long)g.Wo * g.Ho);
        const int h = p * g.sh + i - g.top, w = q * g.sw + j - g.left;
        const bool inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
        cols[e] = inside ? x[((n * g.H + h) * g.W + w) * g.C + c] : T(0);
    }
}

template <typename T>
__global__ void col2im(const T* cols, Geometry g, T* x) {
    const long long total = (long long)g.N * g.H * g.W * g.C;
    const long long row_length = (long long)g.kh * g.kw * g.C;
    GRID_STRIDE(e, total) {
        const int c = (int)(e % g.C);
        const int w = (int)((e / g.C) % g.W), h = (int)((e / ((long long)g.C * g.W)) % g.H);
        const long long n = e / ((long long)g.C * g.W * g.H);
        const int hp = h + g.top, wp = w + g.left;  // coordinates in the padded image
        T sum = T(0);
        for (int i = hp % g.sh; i < g.kh; i += g.sh) {  // taps whose row lands on a stride multiple
            const int p = (hp - i) / g.sh;
            if (hp - i < 0 || p >= g.Ho) continue;
            for (int j = wp % g.sw; j < g.kw; j += g.sw) {
                const int q = (wp - j) / g.sw;
                if (wp - j < 0 || q >= g.Wo) continue;
                sum += cols[((n * g.Ho + p) * g.Wo + q) * row_length + (i * g.kw + j) * g.C + c];
            }
        }
        x[e] = sum;
    }
}

#define INSTANTIATE(T)                                                  \
    template __global__ void im2col<T>(const T*, Geometry, T*);         \
    template __global__ void col2im<T>(const T*, Geometry, T*);
INSTANTIATE(float)
INSTANTIATE(double)
