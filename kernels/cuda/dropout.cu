// Inverted dropout (scratchgan/ops/dropout.py), rate = probability of dropping (Keras's meaning):
//
//   keep = u >= rate   for u ~ U[0, 1) drawn on the device (cupy.random), scale = 1 / (1 - rate)
//   y  = x * keep * scale
//   dx = dy * keep * scale

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

template <typename T>
__global__ void dropout_forward(const T* x, const float* u, float rate, T scale, long long n, T* y,
                                unsigned char* keep) {
    GRID_STRIDE(i, n) {
        const bool k = u[i] >= rate;
        keep[i] = k;
        y[i] = k ? x[i] * scale : T(0);
    }
}

template <typename T>
__global__ void dropout_backward(const T* dy, const unsigned char* keep, T scale, long long n, T* dx) {
    GRID_STRIDE(i, n) { dx[i] = keep[i] ? dy[i] * scale : T(0); }
}

#define INSTANTIATE(T)                                                                                        \
    template __global__ void dropout_forward<T>(const T*, const float*, float, T, long long, T*, unsigned char*); \
    template __global__ void dropout_backward<T>(const T*, const unsigned char*, T, long long, T*);
INSTANTIATE(float)
INSTANTIATE(double)
