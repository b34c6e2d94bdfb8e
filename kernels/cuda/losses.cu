// Binary cross-entropy on probabilities, as Keras (scratchgan/ops/losses.py), eps = 1e-7:
//
//   pc = clip(p, eps, 1 - eps)
//   term[i] = -(t*log(pc) + (1-t)*log(1-pc))            L = mean(term), reduced by CuPy
//   dL/dp   = (pc - t) / (pc * (1 - pc)) / n   where eps < p < 1 - eps, else 0 (the clip)
//
// On logits z: term = max(z, 0) - z*t + log(1 + exp(-|z|)),  dL/dz = (sigmoid(z) - t) / n.

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

template <typename T>
__global__ void bce_forward_terms(const T* p, const T* t, T eps, long long n, T* term, T* pc) {
    GRID_STRIDE(i, n) {
        // not fmin/fmax: they return the non-NaN operand, and a NaN must stay NaN as in NumPy's clip
        const T c = p[i] < eps ? eps : (p[i] > T(1) - eps ? T(1) - eps : p[i]);
        pc[i] = c;
        term[i] = -(t[i] * log(c) + (T(1) - t[i]) * log(T(1) - c));
    }
}

template <typename T>
__global__ void bce_backward(const T* p, const T* pc, const T* t, T eps, long long n, T* dp) {
    GRID_STRIDE(i, n) {
        const bool inside = p[i] > eps && p[i] < T(1) - eps;
        dp[i] = inside ? (pc[i] - t[i]) / (pc[i] * (T(1) - pc[i])) / T(n) : T(0);
    }
}

template <typename T>
__global__ void bce_logits_forward_terms(const T* z, const T* t, long long n, T* term, T* sig) {
    GRID_STRIDE(i, n) {
        const T e = exp(-fabs(z[i]));
        sig[i] = z[i] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
        term[i] = (z[i] > T(0) ? z[i] : T(0)) - z[i] * t[i] + log1p(e);  // NaN propagates through -z*t
    }
}

template <typename T>
__global__ void bce_logits_backward(const T* sig, const T* t, long long n, T* dz) {
    GRID_STRIDE(i, n) { dz[i] = (sig[i] - t[i]) / T(n); }
}

#define INSTANTIATE(T)                                                                                 \
    template __global__ void bce_forward_terms<T>(const T*, const T*, T, long long, T*, T*);          \
    template __global__ void bce_backward<T>(const T*, const T*, const T*, T, long long, T*);         \
    template __global__ void bce_logits_forward_terms<T>(const T*, const T*, long long, T*, T*);      \
    template __global__ void bce_logits_backward<T>(const T*, const T*, long long, T*);
INSTANTIATE(float)
INSTANTIATE(double)
