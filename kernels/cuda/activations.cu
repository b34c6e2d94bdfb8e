// Element-wise activations and their derivatives (scratchgan/ops/activations.py).
//
//   leaky_relu  y = x > 0 ? x : a*x          dx = dy * (x > 0 ? 1 : a)     (relu: a = 0)
//   tanh        y = tanh(x)                  dx = dy * (1 - y^2)
//   sigmoid     y = 1 / (1 + exp(-x))        dx = dy * y * (1 - y)
//               computed as e = exp(-|x|), y = x >= 0 ? 1/(1+e) : e/(1+e): exp never overflows
//
// One thread per element in a grid-stride loop; T is float or double (instantiated at the end).

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

template <typename T>
__global__ void leaky_relu_forward(const T* x, T slope, long long n, T* y, unsigned char* mask) {
    GRID_STRIDE(i, n) {
        const bool positive = x[i] > T(0);
        mask[i] = positive;
        y[i] = positive ? x[i] : slope * x[i];
    }
}

template <typename T>
__global__ void leaky_relu_backward(const T* dy, const unsigned char* mask, T slope, long long n, T* dx) {
    GRID_STRIDE(i, n) { dx[i] = mask[i] ? dy[i] : slope * dy[i]; }
}

template <typename T>
__global__ void tanh_forward(const T* x, long long n, T* y) {
    GRID_STRIDE(i, n) { y[i] = tanh(x[i]); }
}

template <typename T>
__global__ void tanh_backward(const T* dy, const T* y, long long n, T* dx) {
    GRID_STRIDE(i, n) { dx[i] = dy[i] * (T(1) - y[i] * y[i]); }
}

template <typename T>
__global__ void sigmoid_forward(const T* x, long long n, T* y) {
    GRID_STRIDE(i, n) {
        const T e = exp(-fabs(x[i]));
        y[i] = x[i] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    }
}

template <typename T>
__global__ void sigmoid_backward(const T* dy, const T* y, long long n, T* dx) {
    GRID_STRIDE(i, n) { dx[i] = dy[i] * y[i] * (T(1) - y[i]); }
}

#define INSTANTIATE(T)                                                                                         \
    template __global__ void leaky_relu_forward<T>(const T*, T, long long, T*, unsigned char*);               \
    template __global__ void leaky_relu_backward<T>(const T*, const unsigned char*, T, long long, T*);        \
    template __global__ void tanh_forward<T>(const T*, long long, T*);                                        \
    template __global__ void tanh_backward<T>(const T*, const T*, long long, T*);                             \
    template __global__ void sigmoid_forward<T>(const T*, long long, T*);                                     \
    template __global__ void sigmoid_backward<T>(const T*, const T*, long long, T*);
INSTANTIATE(float)
INSTANTIATE(double)
