// sgd.cu: one launch of SGD (momentum, dampening, Nesterov, weight decay, maximize, pruning
// masks) over every parameter of a model.
//
// What each kernel computes
//   sgd_update_float / sgd_update_double: for every element of every tensor in the table,
//   in PyTorch's order (the NumPy twin is minigrad.optim.sgd.sgd_update_reference):
//       d   = (maximize ? -grad : grad) + weight_decay * w
//       buf = first_step ? d : momentum * buf + (1 - dampening) * d      (only with momentum)
//       d   = nesterov ? d + momentum * buf : buf                         (only with momentum)
//       w   = w - lr * d
//       w, buf = w * mask, buf * mask    (a pruned weight and its momentum stay exactly zero)
//   Each multiply and add is rounded on its own (__fmul_rn, __fadd_rn: no fused multiply-add),
//   so the result is the NumPy twin's, operation for operation.
//
// Multi-tensor launch shape
//   The host (minigrad/optim/sgd_cuda.py) uploads one table per step:
//     entries[n_tensors]   (TensorEntry: the four device pointers, numel, first chunk, group, flags)
//     groups[n_groups]     (GroupHyperparameters: lr, momentum, dampening, weight_decay as double)
//     chunk_tensor[n_chunks]  which tensor the block with that index works on
//   Every tensor is cut into chunks of chunk_size elements (a multiple of 4); block b updates
//   chunk (b - entries[t].first_chunk) of tensor t = chunk_tensor[b]. So the grid is
//   sum_t ceil(numel_t / chunk_size) blocks of BLOCK_THREADS threads, and a tensor of any size,
//   not a multiple of anything, gets its own blocks; the last chunk of a tensor is the only
//   partial one. A block strides through its chunk with 16-byte vector loads (float4, double2)
//   when every pointer of the tensor is 16-byte aligned (flag VECTORIZED), then finishes the
//   remaining (< 4) elements one by one; otherwise it goes element by element.
//   Indices are 64-bit: a tensor may hold more than 2^31 elements.
//   The host uses chunk_size = 4096 (CHUNK_SIZE in sgd_cuda.py) and BLOCK_THREADS = 256, so a
//   thread of a full float32 chunk does 4 float4 updates; ResNet-50 (161 tensors, 25.6M values)
//   is one launch of 6,334 blocks.
//
// Memory floor (bytes one step must move, per element, T = sizeof(float or double))
//   read  w (T), grad (T), buf (T; not on the first step, and only with momentum),
//         mask (T for a float mask, 1 for a bool/uint8 mask; only when masked)
//   write w (T), buf (T; only with momentum)
//   float32 with momentum: 20 B/element, 24 B with a float mask, 21 B with a byte mask.
//   The table itself is 56 B per tensor + 4 B per chunk: negligible.

#define BLOCK_THREADS 256
#define MASK_BYTE_ALIGNMENT 4  // the host sets VECTORIZED only for byte masks aligned to this

// Per-tensor flags (bit values shared with minigrad/optim/sgd_cuda.py).
#define FLAG_MOMENTUM   1    // the group has momentum: buf exists and is updated
#define FLAG_FIRST_STEP 2    // buf is created by this step: buf = d, not read
#define FLAG_NESTEROV   4
#define FLAG_MAXIMIZE   8
#define FLAG_MASK_SAME  16   // the mask has the parameter's dtype (0.0 or 1.0)
#define FLAG_MASK_BYTE  32   // the mask is one byte per element (bool or uint8)
#define FLAG_VECTORIZED 64   // every pointer is 16-byte aligned: vector loads are legal

template <typename T>
struct TensorEntry {
    T* param;
    const T* grad;
    T* momentum_buffer;       // null without momentum
    const void* mask;         // null when the parameter is not pruned
    long long numel;
    long long first_chunk;    // index of this tensor's first block
    int group;                // row of the groups table
    int flags;
};

struct GroupHyperparameters {
    double lr, momentum, dampening, weight_decay;
};

// Correctly rounded single operations: the compiler may not contract them into an FMA.
__device__ __forceinline__ float multiply(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float subtract(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double multiply(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double subtract(double a, double b) { return __dsub_rn(a, b); }

template <typename T> struct Vector;
// `bytes`: the one-byte mask entries of one vector, read with one load (the host
// sets VECTORIZED only when a byte mask is 4-byte aligned).
template <> struct Vector<float> { typedef float4 type; typedef unsigned int bytes; static const int width = 4; };
template <> struct Vector<double> { typedef double2 type; typedef unsigned short bytes; static const int width = 2; };
static_assert(sizeof(Vector<float>::bytes) <= MASK_BYTE_ALIGNMENT, "a byte mask load needs more alignment");
static_assert(sizeof(Vector<double>::bytes) <= MASK_BYTE_ALIGNMENT, "a byte mask load needs more alignment");

// The hyper-parameters rounded to T once per block, as NumPy rounds a Python float
// scalar to the array's dtype.
template <typename T>
struct Hyperparameters {
    T lr, momentum, one_minus_dampening, weight_decay;
    bool apply_weight_decay, apply_dampening;
    int flags;
};

template <typename T>
__device__ __forceinline__ Hyperparameters<T> read_hyperparameters(const GroupHyperparameters& group,
                                                                   int flags) {
    Hyperparameters<T> h;
    h.lr = static_cast<T>(group.lr);
    h.momentum = static_cast<T>(group.momentum);
    h.one_minus_dampening = static_cast<T>(1.0 - group.dampening);
    h.weight_decay = static_cast<T>(group.weight_decay);
    h.apply_weight_decay = group.weight_decay != 0.0;
    h.apply_dampening = group.dampening != 0.0;
    h.flags = flags;
    return h;
}

// One element of the update; `buffer` is untouched without momentum.
template <typename T>
__device__ __forceinline__ void update_element(T& weight, T grad, T& buffer, bool keep,
                                               const Hyperparameters<T>& h) {
    T direction = (h.flags & FLAG_MAXIMIZE) ? -grad : grad;
    if (h.apply_weight_decay) direction = add(direction, multiply(weight, h.weight_decay));
    if (h.flags & FLAG_MOMENTUM) {
        if (h.flags & FLAG_FIRST_STEP) {
            buffer = direction;
        } else {
            const T scaled = h.apply_dampening ? multiply(direction, h.one_minus_dampening) : direction;
            buffer = add(multiply(buffer, h.momentum), scaled);
        }
        direction = (h.flags & FLAG_NESTEROV) ? add(multiply(buffer, h.momentum), direction) : buffer;
    }
    weight = subtract(weight, multiply(direction, h.lr));
    if (!keep) {  // times the mask's 0, as NumPy's w *= mask does (so -0.0 stays -0.0)
        weight = multiply(weight, T(0));
        buffer = multiply(buffer, T(0));
    }
}

template <typename T>
__device__ __forceinline__ bool keeps(const TensorEntry<T>& entry, long long i) {
    if (entry.flags & FLAG_MASK_SAME) return static_cast<const T*>(entry.mask)[i] != T(0);
    if (entry.flags & FLAG_MASK_BYTE) return static_cast<const unsigned char*>(entry.mask)[i] != 0;
    return true;
}

template <typename T>
__device__ __forceinline__ void update_one(const TensorEntry<T>& entry, const Hyperparameters<T>& h,
                                           long long i) {
    const bool momentum = (h.flags & FLAG_MOMENTUM) != 0;
    T weight = entry.param[i];
    T buffer = (momentum && !(h.flags & FLAG_FIRST_STEP)) ? entry.momentum_buffer[i] : T(0);
    update_element(weight, entry.grad[i], buffer, keeps(entry, i), h);
    entry.param[i] = weight;
    if (momentum) entry.momentum_buffer[i] = buffer;
}

// `width` consecutive elements starting at i (a multiple of width), with 16-byte loads/stores.
template <typename T>
__device__ __forceinline__ void update_vector(const TensorEntry<T>& entry, const Hyperparameters<T>& h,
                                              long long i) {
    typedef typename Vector<T>::type V;
    const int width = Vector<T>::width;
    const bool momentum = (h.flags & FLAG_MOMENTUM) != 0;
    union Lanes { V vector; T lane[Vector<T>::width]; };
    Lanes weight, grad, buffer;
    unsigned int keep = (1u << width) - 1u;  // bit k: lane k is not pruned
    weight.vector = *reinterpret_cast<const V*>(entry.param + i);
    grad.vector = *reinterpret_cast<const V*>(entry.grad + i);
    if (momentum && !(h.flags & FLAG_FIRST_STEP)) {
        buffer.vector = *reinterpret_cast<const V*>(entry.momentum_buffer + i);
    } else {
#pragma unroll
        for (int k = 0; k < width; ++k) buffer.lane[k] = T(0);
    }
    if (h.flags & FLAG_MASK_SAME) {
        Lanes mask;
        mask.vector = *reinterpret_cast<const V*>(static_cast<const T*>(entry.mask) + i);
        keep = 0u;
#pragma unroll
        for (int k = 0; k < width; ++k) keep |= (mask.lane[k] != T(0) ? 1u : 0u) << k;
    } else if (h.flags & FLAG_MASK_BYTE) {  // the width bytes in one load, not width loads
        const typename Vector<T>::bytes packed =
            *reinterpret_cast<const typename Vector<T>::bytes*>(static_cast<const unsigned char*>(entry.mask) + i);
        keep = 0u;
#pragma unroll
        for (int k = 0; k < width; ++k) keep |= (((packed >> (8 * k)) & 0xffu) != 0u ? 1u : 0u) << k;
    }
#pragma unroll
    for (int k = 0; k < width; ++k)
        update_element(weight.lane[k], grad.lane[k], buffer.lane[k], ((keep >> k) & 1u) != 0u, h);
    *reinterpret_cast<V*>(entry.param + i) = weight.vector;
    if (momentum) *reinterpret_cast<V*>(entry.momentum_buffer + i) = buffer.vector;
}

template <typename T>
__device__ void sgd_multi_tensor(const TensorEntry<T>* __restrict__ entries,
                                 const GroupHyperparameters* __restrict__ groups,
                                 const int* __restrict__ chunk_tensor, long long chunk_size) {
    const TensorEntry<T> entry = entries[chunk_tensor[blockIdx.x]];
    const Hyperparameters<T> h = read_hyperparameters<T>(groups[entry.group], entry.flags);
    const long long start = (static_cast<long long>(blockIdx.x) - entry.first_chunk) * chunk_size;
    if (start < 0 || start >= entry.numel) return;   // a malformed table: touch nothing
    const long long end = min(start + chunk_size, entry.numel);
    long long scalar_start = start;
    if (entry.flags & FLAG_VECTORIZED) {
        const int width = Vector<T>::width;
        const long long vector_end = start + (end - start) / width * width;
        for (long long i = start + static_cast<long long>(threadIdx.x) * width; i < vector_end;
             i += static_cast<long long>(blockDim.x) * width) {
            update_vector(entry, h, i);
        }
        scalar_start = vector_end;
    }
    for (long long i = scalar_start + threadIdx.x; i < end; i += blockDim.x) {
        update_one(entry, h, i);
    }
}

extern "C" __global__ void __launch_bounds__(BLOCK_THREADS)
sgd_update_float(const TensorEntry<float>* entries, const GroupHyperparameters* groups,
                 const int* chunk_tensor, long long chunk_size) {
    sgd_multi_tensor<float>(entries, groups, chunk_tensor, chunk_size);
}

extern "C" __global__ void __launch_bounds__(BLOCK_THREADS)
sgd_update_double(const TensorEntry<double>* entries, const GroupHyperparameters* groups,
                  const int* chunk_tensor, long long chunk_size) {
    sgd_multi_tensor<double>(entries, groups, chunk_tensor, chunk_size);
}
