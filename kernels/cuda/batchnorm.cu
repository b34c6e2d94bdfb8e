// Batch normalisation over the last axis (scratchgan/ops/batchnorm.py); x is seen as
// m rows of C channels (N*H*W rows for images).
//
//   training forward   mu = mean(x), var = mean((x - mu)^2), inv_std = 1 / sqrt(var + eps)
//                      xhat = (x - mu) * inv_std,  y = gamma * xhat + beta
//   training backward  dbeta = sum(dy), dgamma = sum(dy * xhat)
//                      dx = gamma * inv_std / m * (m * dy - dbeta - xhat * dgamma)
//
// The per-channel sums are block reductions: blockIdx.x picks the channel, the block's
// threads stride over the rows and meet in shared memory; moments are accumulated in
// double around a shift (the channel's first value), as the Numba kernel does, so a
// large mean does not cancel the variance. The element-wise passes are grid-stride loops.

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// The block size of the per-channel reductions, and the size of block_sum2's shared arrays.
// kernels/cuda/launch.py reads this line (kernels/cuda/__init__.py: define_value), so the
// launches and the kernels cannot disagree. Any block of 1 to REDUCE_THREADS threads sums
// correctly; a larger one is refused by the kernels' guard (their outputs become NaN).
#define REDUCE_THREADS 256

// Sums two per-thread values over the block (blockDim.x <= REDUCE_THREADS, any count);
// every thread gets the totals.
__device__ void block_sum2(double* a, double* b) {
    __shared__ double sa[REDUCE_THREADS], sb[REDUCE_THREADS];
    __syncthreads();  // a previous call's readers of sa[0] are done before it is overwritten
    sa[threadIdx.x] = *a;
    sb[threadIdx.x] = *b;
    __syncthreads();
    unsigned half = 1;  // the largest power of two below blockDim.x (1 for one or two threads)
    while (2 * half < blockDim.x) half *= 2;
    for (unsigned stride = half; stride > 0; stride /= 2) {
        if (threadIdx.x < stride && threadIdx.x + stride < blockDim.x) {
            sa[threadIdx.x] += sa[threadIdx.x + stride];
            sb[threadIdx.x] += sb[threadIdx.x + stride];
        }
        __syncthreads();
    }
    *a = sa[0];
    *b = sb[0];
}

// True (and NaN in the two outputs of channel c) when the block is larger than block_sum2's
// shared arrays: a launch that does not follow REDUCE_THREADS is a visible error, not a
// write past shared memory. The whole block returns together, so no barrier is left waiting.
template <typename T>
__device__ bool block_too_large(int c, T* out1, T* out2) {
    if (blockDim.x <= REDUCE_THREADS) return false;
    if (threadIdx.x == 0) out1[c] = out2[c] = (T)nan("");
    return true;
}

// Launch with C blocks of REDUCE_THREADS threads.
template <typename T>
__global__ void channel_moments(const T* x, long long m, int C, T* mean, T* var) {
    const int c = blockIdx.x;
    if (block_too_large(c, mean, var)) return;
    const double shift = (double)x[c];
    double s = 0.0, ss = 0.0;
    for (long long r = threadIdx.x; r < m; r += blockDim.x) {
        const double d = (double)x[r * C + c] - shift;
        s += d;
        ss += d * d;
    }
    block_sum2(&s, &ss);
    if (threadIdx.x == 0) {
        const double d_mean = s / (double)m;
        mean[c] = (T)(shift + d_mean);
        const double v = ss / (double)m - d_mean * d_mean;
        var[c] = (T)(v < 0.0 ? 0.0 : v);  // not fmax: a NaN variance stays NaN, as in NumPy
    }
}

template <typename T>
__global__ void batchnorm_apply(const T* x, const T* gamma, const T* beta, const T* mean, const T* inv_std,
                                long long n, int C, T* y, T* xhat) {
    GRID_STRIDE(i, n) {
        const int c = (int)(i % C);
        const T h = (x[i] - mean[c]) * inv_std[c];
        xhat[i] = h;
        y[i] = gamma[c] * h + beta[c];
    }
}

// dbeta[c] = sum dy, dgamma[c] = sum dy * xhat. Launch like channel_moments.
template <typename T>
__global__ void channel_grad_sums(const T* dy, const T* xhat, long long m, int C, T* dbeta, T* dgamma) {
    const int c = blockIdx.x;
    if (block_too_large(c, dbeta, dgamma)) return;
    double s = 0.0, sx = 0.0;
    for (long long r = threadIdx.x; r < m; r += blockDim.x) {
        const double d = (double)dy[r * C + c];
        s += d;
        sx += d * (double)xhat[r * C + c];
    }
    block_sum2(&s, &sx);
    if (threadIdx.x == 0) {
        dbeta[c] = (T)s;
        dgamma[c] = (T)sx;
    }
}

template <typename T>
__global__ void batchnorm_backward_apply(const T* dy, const T* xhat, const T* gamma, const T* inv_std,
                                         const T* dbeta, const T* dgamma, long long m, long long n, int C, T* dx) {
    GRID_STRIDE(i, n) {
        const int c = (int)(i % C);
        dx[i] = gamma[c] * inv_std[c] / T(m) * (T(m) * dy[i] - dbeta[c] - xhat[i] * dgamma[c]);
    }
}

#define INSTANTIATE(T)                                                                                    \
    template __global__ void channel_moments<T>(const T*, long long, int, T*, T*);                       \
    template __global__ void batchnorm_apply<T>(const T*, const T*, const T*, const T*, const T*,        \
                                                long long, int, T*, T*);                                  \
    template __global__ void channel_grad_sums<T>(const T*, const T*, long long, int, T*, T*);           \
    template __global__ void batchnorm_backward_apply<T>(const T*, const T*, const T*, const T*,         \
                                                         const T*, const T*, long long, long long, int, T*);
INSTANTIATE(float)
INSTANTIATE(double)
