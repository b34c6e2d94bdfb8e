// Runs the CUDA kernels of kernels/cuda on the CPU, so their arithmetic and indexing can be
// checked against the NumPy reference where there is no GPU (tests/test_cuda_on_cpu.py).
//
// The CUDA keywords become plain C++ (__global__ and __device__ vanish, __shared__ becomes
// static), blockIdx/blockDim/gridDim are globals and threadIdx is thread_local, and a
// "launch" calls the kernel once per (block, thread), one after another. That is exact for
// the grid-stride kernels. The block reductions (batch norm's channel sums) are run both
// ways: with one thread per block in turn, and, by launch_threads, with a real thread per
// CUDA thread of a block, which meet at __syncthreads (a barrier), so that the shared-memory
// reduction itself runs as on a GPU. What this cannot show (occupancy, speed, the GPU's
// memory model) waits for a GPU.
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using std::exp;
using std::fabs;
using std::fmax;
using std::fmin;
using std::log;
using std::log1p;
using std::nan;
using std::sqrt;
using std::tanh;

struct Dim3 {
    unsigned x = 0, y = 0, z = 0;
};
static Dim3 blockIdx, blockDim, gridDim;
static thread_local Dim3 threadIdx;
#define __global__
#define __device__
#define __shared__ static

// The block's barrier: a no-op when one thread runs the block, a real one under launch_threads.
static struct {
    std::mutex mutex;
    std::condition_variable all_arrived;
    unsigned threads = 0, arrived = 0, generation = 0;
} block_barrier;

static void __syncthreads() {
    std::unique_lock<std::mutex> lock(block_barrier.mutex);
    if (block_barrier.threads <= 1) return;
    const unsigned generation = block_barrier.generation;
    if (++block_barrier.arrived == block_barrier.threads) {
        block_barrier.arrived = 0;
        ++block_barrier.generation;
        block_barrier.all_arrived.notify_all();
    } else {
        block_barrier.all_arrived.wait(lock, [&] { return generation != block_barrier.generation; });
    }
}

#include "../../kernels/cuda/activations.cu"
#undef INSTANTIATE
#include "../../kernels/cuda/optim.cu"
#undef INSTANTIATE
#include "../../kernels/cuda/losses.cu"
#undef INSTANTIATE
#include "../../kernels/cuda/dropout.cu"
#undef INSTANTIATE
#include "../../kernels/cuda/conv.cu"
#undef INSTANTIATE
#include "../../kernels/cuda/pooling.cu"
#undef INSTANTIATE
#include "../../kernels/cuda/batchnorm.cu"
#undef INSTANTIATE

// grid x block "threads", run in turn; odd sizes so the grid-stride loops wrap
template <typename... A, typename... B>
static void launch(void (*kernel)(A...), unsigned grid, unsigned block, B... args) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b;
            threadIdx.x = t;
            kernel(args...);
        }
}

// grid blocks one after another, each with block real threads that meet at __syncthreads
template <typename... A, typename... B>
static void launch_threads(void (*kernel)(A...), unsigned grid, unsigned block, B... args) {
    gridDim.x = grid;
    blockDim.x = block;
    block_barrier.threads = block;
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx.x = b;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([=] {
                threadIdx.x = t;
                kernel(args...);
            });
        for (auto& thread : threads) thread.join();
    }
    block_barrier.threads = 0;
}

#define EW 3, 5  // element-wise launches: 3 blocks of 5 threads

#define EXPORT(T, S)                                                                                          \
    extern "C" void leaky_relu_forward_##S(const T* x, T a, long long n, T* y, unsigned char* m) {           \
        launch(leaky_relu_forward<T>, EW, x, a, n, y, m); }                                                 \
    extern "C" void leaky_relu_backward_##S(const T* dy, const unsigned char* m, T a, long long n, T* dx) {  \
        launch(leaky_relu_backward<T>, EW, dy, m, a, n, dx); }                                              \
    extern "C" void tanh_forward_##S(const T* x, long long n, T* y) { launch(tanh_forward<T>, EW, x, n, y); } \
    extern "C" void tanh_backward_##S(const T* dy, const T* y, long long n, T* dx) {                         \
        launch(tanh_backward<T>, EW, dy, y, n, dx); }                                                       \
    extern "C" void sigmoid_forward_##S(const T* x, long long n, T* y) { launch(sigmoid_forward<T>, EW, x, n, y); } \
    extern "C" void sigmoid_backward_##S(const T* dy, const T* y, long long n, T* dx) {                      \
        launch(sigmoid_backward<T>, EW, dy, y, n, dx); }                                                    \
    extern "C" void adam_update_##S(T* p, const T* g, T* m, T* v, const T* al, T b1, T b2, T eps, long long n) { \
        launch(adam_update<T>, EW, p, g, m, v, al, b1, b2, eps, n); }                                       \
    extern "C" void sgd_momentum_update_##S(T* p, const T* g, T* u, T lr, T mu, int nest, long long n) {     \
        launch(sgd_momentum_update<T>, EW, p, g, u, lr, mu, nest, n); }                                     \
    extern "C" void sgd_update_##S(T* p, const T* g, T lr, long long n) { launch(sgd_update<T>, EW, p, g, lr, n); } \
    extern "C" void rmsprop_update_##S(T* p, const T* g, T* v, const T* lr, T rho, T eps, long long n) {     \
        launch(rmsprop_update<T>, EW, p, g, v, lr, rho, eps, n); }                                          \
    extern "C" void bce_forward_terms_##S(const T* p, const T* t, T eps, long long n, T* term, T* pc) {      \
        launch(bce_forward_terms<T>, EW, p, t, eps, n, term, pc); }                                         \
    extern "C" void bce_backward_##S(const T* p, const T* pc, const T* t, T eps, long long n, T* dp) {       \
        launch(bce_backward<T>, EW, p, pc, t, eps, n, dp); }                                                \
    extern "C" void bce_logits_forward_terms_##S(const T* z, const T* t, long long n, T* term, T* sig) {     \
        launch(bce_logits_forward_terms<T>, EW, z, t, n, term, sig); }                                      \
    extern "C" void bce_logits_backward_##S(const T* sig, const T* t, long long n, T* dz) {                  \
        launch(bce_logits_backward<T>, EW, sig, t, n, dz); }                                                \
    extern "C" void dropout_forward_##S(const T* x, const float* u, float rate, T scale, long long n, T* y,   \
                                        unsigned char* keep) {                                               \
        launch(dropout_forward<T>, EW, x, u, rate, scale, n, y, keep); }                                    \
    extern "C" void dropout_backward_##S(const T* dy, const unsigned char* keep, T scale, long long n, T* dx) { \
        launch(dropout_backward<T>, EW, dy, keep, scale, n, dx); }                                          \
    extern "C" void im2col_##S(const T* x, Geometry g, T* cols) { launch(im2col<T>, EW, x, g, cols); }      \
    extern "C" void col2im_##S(const T* cols, Geometry g, T* x) { launch(col2im<T>, EW, cols, g, x); }      \
    extern "C" void maxpool_forward_##S(const T* x, Window g, T* y, signed char* am) {                       \
        launch(maxpool_forward<T>, EW, x, g, y, am); }                                                      \
    extern "C" void maxpool_backward_##S(const T* dy, const signed char* am, Window g, T* dx) {              \
        launch(maxpool_backward<T>, EW, dy, am, g, dx); }                                                   \
    extern "C" void upsample_nearest_forward_##S(const T* x, int n, int h, int w, int c, int sh, int sw, T* y) { \
        launch(upsample_nearest_forward<T>, EW, x, n, h, w, c, sh, sw, y); }                                \
    extern "C" void upsample_nearest_backward_##S(const T* dy, int n, int h, int w, int c, int sh, int sw, T* dx) { \
        launch(upsample_nearest_backward<T>, EW, dy, n, h, w, c, sh, sw, dx); }                             \
    extern "C" void channel_moments_##S(const T* x, long long m, int c, T* mean, T* var) {                   \
        launch(channel_moments<T>, (unsigned)c, 1, x, m, c, mean, var); }                                    \
    extern "C" void batchnorm_apply_##S(const T* x, const T* g, const T* b, const T* mean, const T* inv,     \
                                        long long n, int c, T* y, T* xhat) {                                 \
        launch(batchnorm_apply<T>, EW, x, g, b, mean, inv, n, c, y, xhat); }                                \
    extern "C" void channel_grad_sums_##S(const T* dy, const T* xhat, long long m, int c, T* db, T* dg) {    \
        launch(channel_grad_sums<T>, (unsigned)c, 1, dy, xhat, m, c, db, dg); }                              \
    extern "C" void channel_moments_threads_##S(const T* x, long long m, int c, T* mean, T* var, unsigned b) { \
        launch_threads(channel_moments<T>, (unsigned)c, b, x, m, c, mean, var); }                            \
    extern "C" void channel_grad_sums_threads_##S(const T* dy, const T* xhat, long long m, int c, T* db,      \
                                                  T* dg, unsigned b) {                                        \
        launch_threads(channel_grad_sums<T>, (unsigned)c, b, dy, xhat, m, c, db, dg); }                      \
    extern "C" void batchnorm_backward_apply_##S(const T* dy, const T* xhat, const T* g, const T* inv,       \
                                                 const T* db, const T* dg, long long m, long long n, int c, T* dx) { \
        launch(batchnorm_backward_apply<T>, EW, dy, xhat, g, inv, db, dg, m, n, c, dx); }

EXPORT(float, f)
EXPORT(double, d)
