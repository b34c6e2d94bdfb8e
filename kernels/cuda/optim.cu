// Fused in-place optimizer updates, one thread per parameter element
// (scratchgan/ops/optim.py; Keras's rules, t >= 1 the step number):
//
//   adam     m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  p -= alpha * m / (sqrt(v) + eps)
//            with alpha = lr * sqrt(1 - b2^t) / (1 - b1^t), computed on the host and read from
//            a device buffer (it changes every step; a captured CUDA graph keeps the buffer)
//   sgd      u = mu*u - lr*g;  p += u  (Nesterov: p += mu*u - lr*g);  without momentum p -= lr*g
//   rmsprop  v = rho*v + (1-rho)*g^2;  p -= lr * g / sqrt(v + eps), lr read from a device buffer (decay)
//
// Gradient clipping (clipvalue) happens before, in the optimizer, as in the reference.

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

template <typename T>
__global__ void adam_update(T* p, const T* g, T* m, T* v, const T* step_size, T b1, T b2, T eps, long long n) {
    const T alpha = step_size[0];
    GRID_STRIDE(i, n) {
        const T gi = g[i];
        const T mi = b1 * m[i] + (T(1) - b1) * gi;
        const T vi = b2 * v[i] + (T(1) - b2) * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] -= alpha * mi / (sqrt(vi) + eps);
    }
}

template <typename T>
__global__ void sgd_momentum_update(T* p, const T* g, T* u, T lr, T mu, int nesterov, long long n) {
    GRID_STRIDE(i, n) {
        const T ui = mu * u[i] - lr * g[i];
        u[i] = ui;
        p[i] += nesterov ? mu * ui - lr * g[i] : ui;
    }
}

template <typename T>
__global__ void sgd_update(T* p, const T* g, T lr, long long n) {
    GRID_STRIDE(i, n) { p[i] -= lr * g[i]; }
}

template <typename T>
__global__ void rmsprop_update(T* p, const T* g, T* v, const T* rate, T rho, T eps, long long n) {
    const T lr = rate[0];
    GRID_STRIDE(i, n) {
        const T gi = g[i];
        const T vi = rho * v[i] + (T(1) - rho) * (gi * gi);
        v[i] = vi;
        p[i] -= lr * gi / sqrt(vi + eps);
    }
}

#define INSTANTIATE(T)                                                                                 \
    template __global__ void adam_update<T>(T*, const T*, T*, T*, const T*, T, T, T, long long);      \
    template __global__ void sgd_momentum_update<T>(T*, const T*, T*, T, T, int, long long);          \
    template __global__ void sgd_update<T>(T*, const T*, T, long long);                               \
    template __global__ void rmsprop_update<T>(T*, const T*, T*, const T*, T, T, long long);
INSTANTIATE(float)
INSTANTIATE(double)
