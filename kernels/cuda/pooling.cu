// Max pooling and nearest upsampling, NHWC (scratchgan/ops/pooling.py).
//
//   maxpool  y[n, p, q, c] = max over taps (i, j) of x[n, p*sh + i - top, q*sw + j - left, c];
//            padded cells never win; on ties the first tap wins (strict >), and
//            argmax[n, p, q, c] = i*pw + j of the winner (int8, as the reference)
//   backward dx[n, h, w, c] = sum of dy over the windows whose winner is (h, w): a gather,
//            one thread per dx element, so overlapping windows need no atomics
//   upsample y[n, p, q, c] = x[n, p / sh, q / sw, c];  dx = sum of dy over each sh x sw block

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

struct Window {
    int N, H, W, C, ph, pw, sh, sw, top, left, Ho, Wo;
};

template <typename T>
__global__ void maxpool_forward(const T* x, Window g, T* y, signed char* argmax) {
    const long long total = (long long)g.N * g.Ho * g.Wo * g.C;
    GRID_STRIDE(e, total) {
        const int c = (int)(e % g.C);
        const int q = (int)((e / g.C) % g.Wo), p = (int)((e / ((long long)g.C * g.Wo)) % g.Ho);
        const long long n = e / ((long long)g.C * g.Wo * g.Ho);
        T best = T(0);
        int winner = -1;
        for (int i = 0; i < g.ph; ++i) {
            const int h = p * g.sh + i - g.top;
            if (h < 0 || h >= g.H) continue;
            for (int j = 0; j < g.pw; ++j) {
                const int w = q * g.sw + j - g.left;
                if (w < 0 || w >= g.W) continue;
                const T v = x[((n * g.H + h) * g.W + w) * g.C + c];
                if (winner < 0 || v > best || (v != v && best == best)) {  // the first NaN wins: NaN propagates
                    best = v;
                    winner = i * g.pw + j;
                }
            }
        }
        y[e] = best;
        argmax[e] = (signed char)winner;
    }
}

template <typename T>
__global__ void maxpool_backward(const T* dy, const signed char* argmax, Window g, T* dx) {
    const long long total = (long long)g.N * g.H * g.W * g.C;
    GRID_STRIDE(e, total) {
        const int c = (int)(e % g.C);
        const int w = (int)((e / g.C) % g.W), h = (int)((e / ((long long)g.C * g.W)) % g.H);
        const long long n = e / ((long long)g.C * g.W * g.H);
        const int hp = h + g.top, wp = w + g.left;
        T sum = T(0);
        for (int i = hp % g.sh; i < g.ph; i += g.sh) {
            const int p = (hp - i) / g.sh;
            if (hp - i < 0 || p >= g.Ho) continue;
            for (int j = wp % g.sw; j < g.pw; j += g.sw) {
                const int q = (wp - j) / g.sw;
                if (wp - j < 0 || q >= g.Wo) continue;
                const long long o = ((n * g.Ho + p) * g.Wo + q) * g.C + c;
                if (argmax[o] == i * g.pw + j) sum += dy[o];
            }
        }
        dx[e] = sum;
    }
}

template <typename T>
__global__ void upsample_nearest_forward(const T* x, int N, int H, int W, int C, int sh, int sw, T* y) {
    const long long total = (long long)N * H * sh * W * sw * C;
    GRID_STRIDE(e, total) {
        const int c = (int)(e % C);
        const int q = (int)((e / C) % (W * sw)), p = (int)((e / ((long long)C * W * sw)) % (H * sh));
        const long long n = e / ((long long)C * W * sw * H * sh);
        y[e] = x[((n * H + p / sh) * W + q / sw) * C + c];
    }
}

template <typename T>
__global__ void upsample_nearest_backward(const T* dy, int N, int H, int W, int C, int sh, int sw, T* dx) {
    const long long total = (long long)N * H * W * C;
    GRID_STRIDE(e, total) {
        const int c = (int)(e % C);
        const int w = (int)((e / C) % W), h = (int)((e / ((long long)C * W)) % H);
        const long long n = e / ((long long)C * W * H);
        T sum = T(0);
        for (int i = 0; i < sh; ++i)
            for (int j = 0; j < sw; ++j)
                sum += dy[((n * H * sh + h * sh + i) * (long long)(W * sw) + w * sw + j) * C + c];
        dx[e] = sum;
    }
}

#define INSTANTIATE(T)                                                                                  \
    template __global__ void maxpool_forward<T>(const T*, Window, T*, signed char*);                   \
    template __global__ void maxpool_backward<T>(const T*, const signed char*, Window, T*);            \
    template __global__ void upsample_nearest_forward<T>(const T*, int, int, int, int, int, int, T*);  \
    template __global__ void upsample_nearest_backward<T>(const T*, int, int, int, int, int, int, T*);
INSTANTIATE(float)
INSTANTIATE(double)
