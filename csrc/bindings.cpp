// The one Python module, fastcnn._core: converts and checks every argument,
// dispatches on dtype, and releases the GIL around the pure C++ kernels.
// Bad input raises TypeError / ValueError (std::invalid_argument) / IndexError
// (std::out_of_range) before any output is written.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include "activation.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "fma_peak.hpp"
#include "gemm.hpp"
#include "loss.hpp"
#include "optimizer.hpp"
#include "parallel.hpp"
#include "pool.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace py = pybind11;
using fastcnn::ConvShape;
using fastcnn::PoolShape;

namespace {

// Sizes, strides and paddings above this are refused, so that no index
// arithmetic on them can overflow 64 bits.
constexpr int64_t kMaxParameter = INT32_MAX;

struct Pair {
    int64_t h, w;
};

std::string type_name(py::handle obj) {
    return py::str(py::type::handle_of(obj).attr("__name__"));
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

std::string shape_text(const std::vector<py::ssize_t>& shape) {
    std::ostringstream out;
    out << "(";
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << (shape.size() == 1 ? ",)" : ")");
    return out.str();
}

std::string shape_text(const py::array& a) { return shape_text(shape_of(a)); }

std::string bytes_text(double bytes) {
    const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    int unit = 0;
    for (; bytes >= 1024 && unit < 8; ++unit) bytes /= 1024;
    std::ostringstream out;
    out.precision(unit ? 1 : 0);
    out << std::fixed << bytes << " " << units[unit];
    return out.str();
}

// This machine's memory in bytes, or INT64_MAX where that cannot be asked.
int64_t memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0 && pages <= INT64_MAX / page_size)
        return int64_t(pages) * page_size;
#endif
    return INT64_MAX;
}

// Arrays that could not fit in memory are refused, naming their size, before
// numpy is asked for them: its own errors for such sizes may name no shape, and
// with memory overcommit the allocation succeeds and filling it takes the
// machine down. (The product is taken in double: it cannot overflow.)
void require_fits_in_memory(const std::vector<py::ssize_t>& shape, int64_t item_size,
                            const std::string& what) {
    double bytes = double(item_size), span = double(item_size);
    for (py::ssize_t extent : shape) {
        bytes *= double(extent);
        span *= double(std::max<py::ssize_t>(extent, 1));
    }
    static const int64_t memory = memory_bytes();  // asked once: a system call
    if (bytes > double(memory))
        throw std::invalid_argument(what + " of shape " + shape_text(shape) + " would take " +
                                    bytes_text(bytes) + ", more than this machine's " +
                                    bytes_text(double(memory)) + " of memory");
    // An empty array still gets strides, the products of its other extents: they
    // must fit in ssize_t (NumPy refuses such a shape as "too big" too).
    if (span > double(PTRDIFF_MAX))
        throw std::invalid_argument(what + " of shape " + shape_text(shape) +
                                    " is too big: its strides would not fit in 64 bits");
}

std::string pair_text(Pair p) {
    return "(" + std::to_string(p.h) + ", " + std::to_string(p.w) + ")";
}

std::string size_text(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

int64_t to_int(py::handle obj, const std::string& name) {
    if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
        throw py::type_error(name + " must be an int or an (h, w) pair of ints, got " +
                             type_name(obj));
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow || value > kMaxParameter || value < -kMaxParameter)
        throw std::invalid_argument(name + " is out of range: " + std::string(py::str(obj)) +
                                    " (the limit is " + std::to_string(kMaxParameter) +
                                    " either way)");
    return value;
}

// An int, or a sequence of two ints (h, w).
Pair to_pair(py::handle obj, const std::string& name) {
    if (PyIndex_Check(obj.ptr()) || PyBool_Check(obj.ptr())) {
        const int64_t value = to_int(obj, name);
        return {value, value};
    }
    if (!PySequence_Check(obj.ptr()) || py::isinstance<py::str>(obj))
        throw py::type_error(name + " must be an int or an (h, w) pair of ints, got " +
                             type_name(obj));
    py::sequence items = py::reinterpret_borrow<py::sequence>(obj);
    if (items.size() != 2)
        throw std::invalid_argument(name + " must be an int or an (h, w) pair, got " +
                                    std::to_string(items.size()) + " values");
    return {to_int(items[0], name), to_int(items[1], name)};
}

Pair positive_pair(py::handle obj, const std::string& name) {
    const Pair p = to_pair(obj, name);
    if (p.h <= 0 || p.w <= 0)
        throw std::invalid_argument(name + " must be positive, got " + pair_text(p));
    return p;
}

Pair padding_pair(py::handle obj) {
    const Pair p = to_pair(obj, "padding");
    if (p.h < 0 || p.w < 0)
        throw std::invalid_argument("padding must be non-negative, got " + pair_text(p));
    return p;
}

// A float32 or float64 numpy array of the given rank.
py::array float_array(py::handle obj, const std::string& name, int rank, const char* layout) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(name + " must be a numpy array of float32 or float64, got " +
                             type_name(obj));
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const py::dtype dtype = a.dtype();
    if (dtype.kind() != 'f' || (dtype.itemsize() != 4 && dtype.itemsize() != 8))
        throw py::type_error(name + " must be float32 or float64, got " +
                             std::string(py::str(dtype)));
    if (a.ndim() != rank)
        throw std::invalid_argument(name + " must be " + std::to_string(rank) + "-D " + layout +
                                    ", got shape " + shape_text(a));
    return a;
}

void require_same_dtype(const py::array& a, const std::string& a_name, const py::array& b,
                        const std::string& b_name) {
    if (a.dtype().itemsize() != b.dtype().itemsize())
        throw py::type_error(a_name + " has dtype " + std::string(py::str(a.dtype())) + " but " +
                             b_name + " has dtype " + std::string(py::str(b.dtype())) +
                             "; convert both to float32 or both to float64");
}

bool is_float32(const py::array& a) { return a.dtype().itemsize() == 4; }

// What the kernels read: C-contiguous, aligned, native T. Misaligned data
// (a view at an odd byte offset) would be undefined behaviour to load as T.
template <typename T>
using KernelArray =
    py::array_t<T, py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_>;

// a as a KernelArray: the same object when it already is one, else a copy
// (a broadcast view may need more memory than there is). Throws rather than
// returning null as array_t::ensure does.
template <typename T>
KernelArray<T> contiguous(const py::array& a, const std::string& name) {
    const bool ready = KernelArray<T>::check_(a) &&
                       (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_);
    if (!ready) require_fits_in_memory(shape_of(a), sizeof(T), "a contiguous copy of " + name);
    return KernelArray<T>(a);
}

int64_t checked_product(std::initializer_list<int64_t> dims) {
    int64_t total = 1;
    for (int64_t d : dims) {
        if (d != 0 && total > INT64_MAX / d)
            throw std::invalid_argument("the output would have more than 2^63 elements");
        total *= d;
    }
    return total;
}

// Output size of a window sweep: (size + 2·pad − window) / stride + 1.
int64_t out_size(int64_t size, int64_t window, int64_t stride, int64_t pad) {
    return (size + 2 * pad - window) / stride + 1;
}

// Shape checks shared by the forward pass and both gradients.
ConvShape conv_shape(int64_t batch, int64_t channels, Pair input, int64_t filters, Pair kernel,
                     Pair stride, Pair padding) {
    if (kernel.h > input.h + 2 * padding.h || kernel.w > input.w + 2 * padding.w)
        throw std::invalid_argument(
            "kernel " + size_text(kernel.h, kernel.w) + " is larger than the padded input " +
            size_text(input.h + 2 * padding.h, input.w + 2 * padding.w) + " (input " +
            size_text(input.h, input.w) + ", padding " + pair_text(padding) + ")");
    ConvShape s{batch,    channels, input.h,  input.w,  filters,   kernel.h, kernel.w,
                stride.h, stride.w, padding.h, padding.w, 0,        0};
    s.out_h = out_size(input.h, kernel.h, stride.h, padding.h);
    s.out_w = out_size(input.w, kernel.w, stride.w, padding.w);
    checked_product({batch, filters, s.out_h, s.out_w});
    checked_product({batch, channels, input.h, input.w});
    return s;
}

PoolShape pool_shape(int64_t planes, Pair input, Pair size, Pair stride) {
    if (size.h > input.h || size.w > input.w)
        throw std::invalid_argument("pool window " + size_text(size.h, size.w) +
                                    " is larger than the input " +
                                    size_text(input.h, input.w));
    PoolShape s{planes, input.h, input.w, size.h, size.w, stride.h, stride.w, 0, 0};
    s.out_h = out_size(input.h, size.h, stride.h, 0);
    s.out_w = out_size(input.w, size.w, stride.w, 0);
    checked_product({planes, input.h, input.w});
    return s;
}

// grad_y's (H, W) must be what the forward pass made from input_size.
void require_output_size(const py::array& grad_y, int64_t out_h, int64_t out_w,
                         const std::string& made_from) {
    if (grad_y.shape(2) != out_h || grad_y.shape(3) != out_w)
        throw std::invalid_argument(made_from + " gives a " + size_text(out_h, out_w) +
                                    " output, but grad_y is " +
                                    size_text(grad_y.shape(2), grad_y.shape(3)) +
                                    " (shape " + shape_text(grad_y) + ")");
}

Pair pool_stride(py::handle stride, Pair size) {
    return stride.is_none() ? size : positive_pair(stride, "stride");
}

template <typename T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape, const std::string& what) {
    require_fits_in_memory(shape, sizeof(T), what);
    return py::array_t<T>(shape);
}

// ---- correlation -----------------------------------------------------------

template <typename T>
py::array run_correlate2d(const ConvShape& s, const py::array& x, const py::array& w,
                          const py::object& bias, bool relu) {
    auto xc = contiguous<T>(x, "x"), wc = contiguous<T>(w, "w");
    KernelArray<T> bc;
    if (!bias.is_none()) bc = contiguous<T>(py::reinterpret_borrow<py::array>(bias), "bias");
    auto y = new_array<T>({s.batch, s.filters, s.out_h, s.out_w}, "the output y");
    const T* bias_data = bias.is_none() ? nullptr : bc.data();
    T* out = y.mutable_data();
    py::gil_scoped_release release;
    fastcnn::correlate2d<T>(s, xc.data(), wc.data(), bias_data, out, relu);
    return y;
}

py::array correlate2d(py::object x_obj, py::object w_obj, py::object bias, py::object stride_obj,
                      py::object padding_obj, bool relu) {
    const py::array x = float_array(x_obj, "x", 4, "(N, C, H, W)");
    const py::array w = float_array(w_obj, "w", 4, "(F, C, kh, kw)");
    require_same_dtype(w, "w", x, "x");
    if (w.shape(1) != x.shape(1))
        throw std::invalid_argument("w has " + std::to_string(w.shape(1)) +
                                    " input channels but x has " + std::to_string(x.shape(1)) +
                                    " channels (x " + shape_text(x) + ", w " + shape_text(w) +
                                    ")");
    if (!bias.is_none()) {
        const py::array b = float_array(bias, "bias", 1, "(F,)");
        require_same_dtype(b, "bias", x, "x");
        if (b.shape(0) != w.shape(0))
            throw std::invalid_argument("bias must have shape (" + std::to_string(w.shape(0)) +
                                        ",), one value per filter of w, got " + shape_text(b));
    }
    const Pair stride = positive_pair(stride_obj, "stride");
    const Pair padding = padding_pair(padding_obj);
    if (w.shape(2) == 0 || w.shape(3) == 0)
        throw std::invalid_argument("w must have a kernel of at least 1x1, got shape " +
                                    shape_text(w));
    const ConvShape s = conv_shape(x.shape(0), x.shape(1), {x.shape(2), x.shape(3)}, w.shape(0),
                                   {w.shape(2), w.shape(3)}, stride, padding);
    return is_float32(x) ? run_correlate2d<float>(s, x, w, bias, relu)
                         : run_correlate2d<double>(s, x, w, bias, relu);
}

template <typename T>
py::object run_backward_weight(const ConvShape& s, const py::array& x, const py::array& grad_y,
                               bool bias_grad) {
    auto xc = contiguous<T>(x, "x"), gc = contiguous<T>(grad_y, "grad_y");
    auto grad_w =
        new_array<T>({s.filters, s.channels, s.kernel_h, s.kernel_w}, "the output grad_w");
    py::array_t<T> grad_b;
    if (bias_grad) grad_b = new_array<T>({s.filters}, "the output grad_b");
    T* out = grad_w.mutable_data();
    T* out_b = bias_grad ? grad_b.mutable_data() : nullptr;
    {
        py::gil_scoped_release release;
        fastcnn::correlate2d_backward_weight<T>(s, xc.data(), gc.data(), out, out_b);
    }
    if (bias_grad) return py::make_tuple(grad_w, grad_b);
    return std::move(grad_w);
}

py::object correlate2d_backward_weight(py::object x_obj, py::object grad_y_obj,
                                       py::object kernel_size, py::object stride_obj,
                                       py::object padding_obj, bool bias_grad) {
    const py::array x = float_array(x_obj, "x", 4, "(N, C, H, W)");
    const py::array grad_y = float_array(grad_y_obj, "grad_y", 4, "(N, F, Ho, Wo)");
    require_same_dtype(grad_y, "grad_y", x, "x");
    const Pair kernel = positive_pair(kernel_size, "kernel_size");
    const Pair stride = positive_pair(stride_obj, "stride");
    const Pair padding = padding_pair(padding_obj);
    if (grad_y.shape(0) != x.shape(0))
        throw std::invalid_argument("grad_y has a batch of " + std::to_string(grad_y.shape(0)) +
                                    " but x has " + std::to_string(x.shape(0)) + " (grad_y " +
                                    shape_text(grad_y) + ", x " + shape_text(x) + ")");
    const ConvShape s = conv_shape(x.shape(0), x.shape(1), {x.shape(2), x.shape(3)},
                                   grad_y.shape(1), kernel, stride, padding);
    require_output_size(grad_y, s.out_h, s.out_w,
                        "x " + shape_text(x) + " with kernel_size " + pair_text(kernel) +
                            ", stride " + pair_text(stride) + " and padding " +
                            pair_text(padding));
    return is_float32(x) ? run_backward_weight<float>(s, x, grad_y, bias_grad)
                         : run_backward_weight<double>(s, x, grad_y, bias_grad);
}

template <typename T>
py::array run_convolve2d_full(const ConvShape& s, const py::array& grad_y, const py::array& w) {
    auto gc = contiguous<T>(grad_y, "grad_y"), wc = contiguous<T>(w, "w");
    auto grad_x = new_array<T>({s.batch, s.channels, s.height, s.width}, "the output grad_x");
    T* out = grad_x.mutable_data();
    py::gil_scoped_release release;
    fastcnn::convolve2d_full<T>(s, gc.data(), wc.data(), out);
    return grad_x;
}

py::array convolve2d_full(py::object grad_y_obj, py::object w_obj, py::object input_size,
                          py::object stride_obj, py::object padding_obj) {
    const py::array grad_y = float_array(grad_y_obj, "grad_y", 4, "(N, F, Ho, Wo)");
    const py::array w = float_array(w_obj, "w", 4, "(F, C, kh, kw)");
    require_same_dtype(w, "w", grad_y, "grad_y");
    if (grad_y.shape(1) != w.shape(0))
        throw std::invalid_argument("grad_y has " + std::to_string(grad_y.shape(1)) +
                                    " channels but w has " + std::to_string(w.shape(0)) +
                                    " filters (grad_y " + shape_text(grad_y) + ", w " +
                                    shape_text(w) + ")");
    const Pair input = positive_pair(input_size, "input_size");
    const Pair stride = positive_pair(stride_obj, "stride");
    const Pair padding = padding_pair(padding_obj);
    if (w.shape(2) == 0 || w.shape(3) == 0)
        throw std::invalid_argument("w must have a kernel of at least 1x1, got shape " +
                                    shape_text(w));
    const ConvShape s = conv_shape(grad_y.shape(0), w.shape(1), input, w.shape(0),
                                   {w.shape(2), w.shape(3)}, stride, padding);
    require_output_size(grad_y, s.out_h, s.out_w,
                        "input_size " + pair_text(input) + " with kernel " +
                            size_text(w.shape(2), w.shape(3)) + ", stride " + pair_text(stride) +
                            " and padding " + pair_text(padding));
    return is_float32(grad_y) ? run_convolve2d_full<float>(s, grad_y, w)
                              : run_convolve2d_full<double>(s, grad_y, w);
}

// ---- pooling ---------------------------------------------------------------

template <typename T>
py::tuple run_maxpool2d(const PoolShape& s, const py::array& x) {
    auto xc = contiguous<T>(x, "x");
    const std::vector<py::ssize_t> shape{x.shape(0), x.shape(1), s.out_h, s.out_w};
    auto y = new_array<T>(shape, "the output y");
    auto argmax = new_array<int64_t>(shape, "the output argmax");
    T* out = y.mutable_data();
    int64_t* index = argmax.mutable_data();
    {
        py::gil_scoped_release release;
        fastcnn::maxpool2d<T>(s, xc.data(), out, index);
    }
    return py::make_tuple(y, argmax);
}

py::tuple maxpool2d(py::object x_obj, py::object size_obj, py::object stride_obj) {
    const py::array x = float_array(x_obj, "x", 4, "(N, C, H, W)");
    const Pair size = positive_pair(size_obj, "size");
    const Pair stride = pool_stride(stride_obj, size);
    const PoolShape s =
        pool_shape(x.shape(0) * x.shape(1), {x.shape(2), x.shape(3)}, size, stride);
    return is_float32(x) ? run_maxpool2d<float>(s, x) : run_maxpool2d<double>(s, x);
}

template <typename T>
py::array run_maxpool2d_backward(const PoolShape& s, const py::array& grad_y,
                                 const KernelArray<int64_t>& argmax) {
    auto gc = contiguous<T>(grad_y, "grad_y");
    auto grad_x =
        new_array<T>({grad_y.shape(0), grad_y.shape(1), s.height, s.width}, "the output grad_x");
    T* out = grad_x.mutable_data();
    py::gil_scoped_release release;
    fastcnn::maxpool2d_backward<T>(s, gc.data(), argmax.data(), out);
    return grad_x;
}

py::array maxpool2d_backward(py::object grad_y_obj, py::object argmax_obj,
                             py::object input_size) {
    const py::array grad_y = float_array(grad_y_obj, "grad_y", 4, "(N, C, Ho, Wo)");
    if (!py::isinstance<py::array>(argmax_obj))
        throw py::type_error("argmax must be a numpy array of int64, got " +
                             type_name(argmax_obj));
    const py::array argmax_any = py::reinterpret_borrow<py::array>(argmax_obj);
    const py::dtype dtype = argmax_any.dtype();
    if (dtype.kind() != 'i' || dtype.itemsize() != 8)
        throw py::type_error("argmax must be int64 (as maxpool2d returns it), got " +
                             std::string(py::str(dtype)));
    if (argmax_any.ndim() != 4 || shape_text(argmax_any) != shape_text(grad_y))
        throw std::invalid_argument("argmax must have grad_y's shape " + shape_text(grad_y) +
                                    ", got " + shape_text(argmax_any));
    const Pair input = positive_pair(input_size, "input_size");
    // Every pool window (size >= 1, stride >= 1) makes at most one output per input row/column.
    if (grad_y.shape(2) > input.h || grad_y.shape(3) > input.w)
        throw std::invalid_argument("input_size " + pair_text(input) +
                                    " is smaller than grad_y's " +
                                    size_text(grad_y.shape(2), grad_y.shape(3)) +
                                    " output: no pooling gives that");
    checked_product({grad_y.shape(0), grad_y.shape(1), input.h, input.w});
    const auto argmax = contiguous<int64_t>(argmax_any, "argmax");
    const int64_t plane = input.h * input.w;
    const int64_t* index = argmax.data();
    for (py::ssize_t i = 0, count = argmax.size(); i < count; ++i)
        if (index[i] < 0 || index[i] >= plane)
            throw std::out_of_range("argmax holds the index " + std::to_string(index[i]) +
                                    ", outside the " + size_text(input.h, input.w) +
                                    " input plane given by input_size (valid: 0 to " +
                                    std::to_string(plane - 1) + ")");
    PoolShape s{grad_y.shape(0) * grad_y.shape(1), input.h, input.w, 1, 1, 1, 1,
                grad_y.shape(2), grad_y.shape(3)};
    return is_float32(grad_y) ? run_maxpool2d_backward<float>(s, grad_y, argmax)
                              : run_maxpool2d_backward<double>(s, grad_y, argmax);
}

template <typename T>
py::array run_avgpool2d(const PoolShape& s, const py::array& x) {
    auto xc = contiguous<T>(x, "x");
    auto y = new_array<T>({x.shape(0), x.shape(1), s.out_h, s.out_w}, "the output y");
    T* out = y.mutable_data();
    py::gil_scoped_release release;
    fastcnn::avgpool2d<T>(s, xc.data(), out);
    return y;
}

py::array avgpool2d(py::object x_obj, py::object size_obj, py::object stride_obj) {
    const py::array x = float_array(x_obj, "x", 4, "(N, C, H, W)");
    const Pair size = positive_pair(size_obj, "size");
    const Pair stride = pool_stride(stride_obj, size);
    const PoolShape s =
        pool_shape(x.shape(0) * x.shape(1), {x.shape(2), x.shape(3)}, size, stride);
    return is_float32(x) ? run_avgpool2d<float>(s, x) : run_avgpool2d<double>(s, x);
}

template <typename T>
py::array run_avgpool2d_backward(const PoolShape& s, const py::array& grad_y) {
    auto gc = contiguous<T>(grad_y, "grad_y");
    auto grad_x =
        new_array<T>({grad_y.shape(0), grad_y.shape(1), s.height, s.width}, "the output grad_x");
    T* out = grad_x.mutable_data();
    py::gil_scoped_release release;
    fastcnn::avgpool2d_backward<T>(s, gc.data(), out);
    return grad_x;
}

py::array avgpool2d_backward(py::object grad_y_obj, py::object input_size, py::object size_obj,
                             py::object stride_obj) {
    const py::array grad_y = float_array(grad_y_obj, "grad_y", 4, "(N, C, Ho, Wo)");
    const Pair input = positive_pair(input_size, "input_size");
    const Pair size = positive_pair(size_obj, "size");
    const Pair stride = pool_stride(stride_obj, size);
    const PoolShape s = pool_shape(grad_y.shape(0) * grad_y.shape(1), input, size, stride);
    require_output_size(grad_y, s.out_h, s.out_w,
                        "input_size " + pair_text(input) + " with pool size " +
                            pair_text(size) + " and stride " + pair_text(stride));
    return is_float32(grad_y) ? run_avgpool2d_backward<float>(s, grad_y)
                              : run_avgpool2d_backward<double>(s, grad_y);
}

// ---- batch normalisation ---------------------------------------------------

// x as (N, C, S): an (N, C, H, W) or (N, C) float array.
py::array batch_array(py::handle obj, const std::string& name) {
    if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == 2)
        return float_array(obj, name, 2, "(N, C)");
    return float_array(obj, name, 4, "(N, C, H, W) or 2-D (N, C)");
}

fastcnn::BatchNormShape batchnorm_shape(const py::array& x) {
    const int64_t spatial = x.ndim() == 4 ? checked_product({x.shape(2), x.shape(3)}) : 1;
    checked_product({x.shape(0), x.shape(1), spatial});
    return {x.shape(0), x.shape(1), spatial};
}

// One value per channel of x, of x's dtype.
py::array channel_array(py::handle obj, const std::string& name, const py::array& x) {
    const py::array a = float_array(obj, name, 1, "(C,)");
    require_same_dtype(a, name, x, "x");
    if (a.shape(0) != x.shape(1))
        throw std::invalid_argument(name + " must have shape (" + std::to_string(x.shape(1)) +
                                    ",), one value per channel of x " + shape_text(x) +
                                    ", got " + shape_text(a));
    return a;
}

// A variance array: a negative value would put a NaN in every output of its channel.
template <typename T>
void require_non_negative(const KernelArray<T>& var) {
    for (py::ssize_t c = 0; c < var.size(); ++c)
        if (var.data()[c] < 0)
            throw std::invalid_argument("var must be non-negative (a variance), got " +
                                        std::string(py::str(py::float_(var.data()[c]))) +
                                        " for channel " + std::to_string(c));
}

double eps_value(py::handle obj) {
    if (PyBool_Check(obj.ptr()) || !(PyFloat_Check(obj.ptr()) || PyIndex_Check(obj.ptr())))
        throw py::type_error("eps must be a number, got " + type_name(obj));
    const double eps = obj.cast<double>();
    if (!(eps > 0) || !std::isfinite(eps))
        throw std::invalid_argument("eps must be a positive finite number, got " +
                                    std::string(py::str(obj)));
    return eps;
}

template <typename T>
py::tuple run_batchnorm_forward(const py::array& x, const py::array& gamma,
                                const py::array& beta, double eps) {
    const fastcnn::BatchNormShape s = batchnorm_shape(x);
    auto xc = contiguous<T>(x, "x"), gc = contiguous<T>(gamma, "gamma"),
         bc = contiguous<T>(beta, "beta");
    auto y = new_array<T>(shape_of(x), "the output y");
    auto mean = new_array<T>({s.channels}, "the output mean");
    auto var = new_array<T>({s.channels}, "the output var");
    T *out = y.mutable_data(), *mean_out = mean.mutable_data(), *var_out = var.mutable_data();
    {
        py::gil_scoped_release release;
        fastcnn::batchnorm_forward<T>(s, xc.data(), gc.data(), bc.data(), eps, out, mean_out,
                                      var_out);
    }
    return py::make_tuple(y, mean, var);
}

py::tuple batchnorm_forward(py::object x_obj, py::object gamma_obj, py::object beta_obj,
                            py::object eps_obj) {
    const py::array x = batch_array(x_obj, "x");
    const py::array gamma = channel_array(gamma_obj, "gamma", x);
    const py::array beta = channel_array(beta_obj, "beta", x);
    const double eps = eps_value(eps_obj);
    const fastcnn::BatchNormShape s = batchnorm_shape(x);
    // As torch.nn.functional.batch_norm: one value has no batch variance to speak of.
    if (s.batch * s.spatial <= 1)
        throw std::invalid_argument(
            "Expected more than 1 value per channel when training, got x of shape " +
            shape_text(x) + " (N·H·W = " + std::to_string(s.batch * s.spatial) + ")");
    return is_float32(x) ? run_batchnorm_forward<float>(x, gamma, beta, eps)
                         : run_batchnorm_forward<double>(x, gamma, beta, eps);
}

template <typename T>
py::array run_batchnorm_inference(const py::array& x, const py::array& gamma,
                                  const py::array& beta, const py::array& mean,
                                  const py::array& var, double eps) {
    const fastcnn::BatchNormShape s = batchnorm_shape(x);
    auto vc = contiguous<T>(var, "var");
    require_non_negative<T>(vc);
    auto xc = contiguous<T>(x, "x"), gc = contiguous<T>(gamma, "gamma"),
         bc = contiguous<T>(beta, "beta"), mc = contiguous<T>(mean, "mean");
    auto y = new_array<T>(shape_of(x), "the output y");
    T* out = y.mutable_data();
    py::gil_scoped_release release;
    fastcnn::batchnorm_inference<T>(s, xc.data(), gc.data(), bc.data(), mc.data(), vc.data(), eps,
                                    out);
    return y;
}

py::array batchnorm_inference(py::object x_obj, py::object gamma_obj, py::object beta_obj,
                              py::object mean_obj, py::object var_obj, py::object eps_obj) {
    const py::array x = batch_array(x_obj, "x");
    const py::array gamma = channel_array(gamma_obj, "gamma", x);
    const py::array beta = channel_array(beta_obj, "beta", x);
    const py::array mean = channel_array(mean_obj, "mean", x);
    const py::array var = channel_array(var_obj, "var", x);
    const double eps = eps_value(eps_obj);
    return is_float32(x) ? run_batchnorm_inference<float>(x, gamma, beta, mean, var, eps)
                         : run_batchnorm_inference<double>(x, gamma, beta, mean, var, eps);
}

template <typename T>
py::tuple run_batchnorm_backward(const py::array& grad_y, const py::array& x,
                                 const py::array& gamma, const py::array& mean,
                                 const py::array& var, double eps, bool training) {
    const fastcnn::BatchNormShape s = batchnorm_shape(x);
    auto vc = contiguous<T>(var, "var");
    require_non_negative<T>(vc);
    auto gyc = contiguous<T>(grad_y, "grad_y"), xc = contiguous<T>(x, "x"),
         gc = contiguous<T>(gamma, "gamma"), mc = contiguous<T>(mean, "mean");
    auto grad_x = new_array<T>(shape_of(x), "the output grad_x");
    auto grad_gamma = new_array<T>({s.channels}, "the output grad_gamma");
    auto grad_beta = new_array<T>({s.channels}, "the output grad_beta");
    T *gx = grad_x.mutable_data(), *gg = grad_gamma.mutable_data(),
      *gb = grad_beta.mutable_data();
    {
        py::gil_scoped_release release;
        fastcnn::batchnorm_backward<T>(s, gyc.data(), xc.data(), gc.data(), mc.data(), vc.data(),
                                       eps, training, gx, gg, gb);
    }
    return py::make_tuple(grad_x, grad_gamma, grad_beta);
}

py::tuple batchnorm_backward(py::object grad_y_obj, py::object x_obj, py::object gamma_obj,
                             py::object mean_obj, py::object var_obj, py::object eps_obj,
                             bool training) {
    const py::array grad_y = batch_array(grad_y_obj, "grad_y");
    const py::array x = batch_array(x_obj, "x");
    require_same_dtype(grad_y, "grad_y", x, "x");
    if (shape_of(grad_y) != shape_of(x))
        throw std::invalid_argument("grad_y must have x's shape " + shape_text(x) + ", got " +
                                    shape_text(grad_y));
    const py::array gamma = channel_array(gamma_obj, "gamma", x);
    const py::array mean = channel_array(mean_obj, "mean", x);
    const py::array var = channel_array(var_obj, "var", x);
    const double eps = eps_value(eps_obj);
    return is_float32(x) ? run_batchnorm_backward<float>(grad_y, x, gamma, mean, var, eps, training)
                         : run_batchnorm_backward<double>(grad_y, x, gamma, mean, var, eps,
                                                          training);
}

// ---- matmul ----------------------------------------------------------------

template <typename T>
fastcnn::MatrixRef<T> matrix_ref(const py::array& a, bool transpose) {
    const int64_t rows = a.strides(0) / int64_t(sizeof(T)), cols = a.strides(1) / int64_t(sizeof(T));
    const T* data = static_cast<const T*>(a.data());
    return transpose ? fastcnn::MatrixRef<T>{data, cols, rows} : fastcnn::MatrixRef<T>{data, rows, cols};
}

// Strides that are not whole elements (possible with some views) get a copy,
// as does data in the other byte order (read from the descriptor: asking the
// dtype's `isnative` attribute costs a Python attribute lookup per call).
template <typename T>
py::array element_strided(const py::array& a, const std::string& name) {
    const bool whole = a.strides(0) % py::ssize_t(sizeof(T)) == 0 &&
                       a.strides(1) % py::ssize_t(sizeof(T)) == 0 &&
                       reinterpret_cast<std::uintptr_t>(a.data()) % sizeof(T) == 0;
    const char order = a.dtype().byteorder();
    constexpr char kNative = PY_BIG_ENDIAN ? '>' : '<';
    if (whole && (order == '=' || order == '|' || order == kNative)) return a;
    require_fits_in_memory(shape_of(a), sizeof(T), "a copy of " + name);
    return contiguous<T>(py::array(a.attr("copy")()), name);
}

template <typename T>
py::array run_matmul(const py::array& a_in, const py::array& b_in, bool transpose_a,
                     bool transpose_b, int64_t m, int64_t n, int64_t k) {
    const py::array a = element_strided<T>(a_in, "a"), b = element_strided<T>(b_in, "b");
    const auto a_ref = matrix_ref<T>(a, transpose_a), b_ref = matrix_ref<T>(b, transpose_b);
    auto c = new_array<T>({m, n}, "the output");
    T* out = c.mutable_data();
    // Releasing the GIL and taking it back costs more than a tiny product.
    std::optional<py::gil_scoped_release> release;
    if (m * n * k >= fastcnn::kGemmReleaseGilWork) release.emplace();
    fastcnn::gemm<T>(m, n, k, a_ref, b_ref, out, n, false, true);
    return c;
}

// A transpose flag: True, False or a NumPy bool, nothing else (an int or None
// is more likely a misplaced argument than a flag).
bool transpose_flag(py::handle flag, const char* name) {
    if (flag.ptr() == Py_True) return true;
    if (flag.ptr() == Py_False) return false;
    static PyObject* const numpy_bool = py::object(py::module_::import("numpy").attr("bool_")).release().ptr();
    if (!PyObject_TypeCheck(flag.ptr(), reinterpret_cast<PyTypeObject*>(numpy_bool)))
        throw py::type_error(std::string(name) + " must be True or False, got " +
                             py::repr(flag).cast<std::string>());
    return PyObject_IsTrue(flag.ptr()) == 1;
}

py::array matmul(py::handle a_obj, py::handle b_obj, py::handle transpose_a_obj,
                 py::handle transpose_b_obj) {
    const bool transpose_a = transpose_flag(transpose_a_obj, "transpose_a");
    const bool transpose_b = transpose_flag(transpose_b_obj, "transpose_b");
    const py::array a = float_array(a_obj, "a", 2, "(rows, columns)");
    const py::array b = float_array(b_obj, "b", 2, "(rows, columns)");
    require_same_dtype(b, "b", a, "a");
    const int64_t m = a.shape(transpose_a ? 1 : 0), k = a.shape(transpose_a ? 0 : 1);
    const int64_t b_rows = b.shape(transpose_b ? 1 : 0), n = b.shape(transpose_b ? 0 : 1);
    if (k != b_rows)
        throw std::invalid_argument(
            "a and b cannot be multiplied: " + std::string(transpose_a ? "a.T" : "a") + " is " +
            size_text(m, k) + " and " + (transpose_b ? "b.T" : "b") + " is " +
            size_text(b_rows, n) + " (a " + shape_text(a) + ", b " + shape_text(b) + ")");
    return is_float32(a) ? run_matmul<float>(a, b, transpose_a, transpose_b, m, n, k)
                         : run_matmul<double>(a, b, transpose_a, transpose_b, m, n, k);
}

// ---- FMA peak ----------------------------------------------------------------

double fma_peak(py::object dtype_obj, int threads, double seconds) {
    const py::dtype dtype = py::dtype::from_args(dtype_obj);
    const bool single = dtype.is(py::dtype::of<float>()), twice = dtype.is(py::dtype::of<double>());
    if (!single && !twice)
        throw py::type_error("dtype must be float32 or float64, got " +
                             py::str(dtype_obj).cast<std::string>());
    if (threads < 1)
        throw std::invalid_argument("threads must be at least 1, got " + std::to_string(threads));
    if (!(seconds > 0 && seconds <= 60))
        throw std::invalid_argument("seconds must be in (0, 60], got " + std::to_string(seconds));
    py::gil_scoped_release release;
    return fastcnn::fma_peak(twice, threads, seconds);
}

// ---- activations -------------------------------------------------------------

template <typename T>
py::array run_relu(const py::array& x) {
    auto xc = contiguous<T>(x, "x");
    auto y = new_array<T>(shape_of(x), "the output y");
    T* out = y.mutable_data();
    py::gil_scoped_release release;
    fastcnn::relu<T>(xc.size(), xc.data(), out);
    return y;
}

py::array relu(py::object x_obj) {
    if (!py::isinstance<py::array>(x_obj))
        throw py::type_error("x must be a numpy array of float32 or float64, got " +
                             type_name(x_obj));
    const int rank = int(py::reinterpret_borrow<py::array>(x_obj).ndim());
    const py::array x = float_array(x_obj, "x", rank, "(any shape)");
    return is_float32(x) ? run_relu<float>(x) : run_relu<double>(x);
}

template <typename T>
py::array run_relu_backward(const py::array& grad_y, const py::array& y) {
    auto gc = contiguous<T>(grad_y, "grad_y"), yc = contiguous<T>(y, "y");
    auto grad_x = new_array<T>(shape_of(y), "the output grad_x");
    T* out = grad_x.mutable_data();
    py::gil_scoped_release release;
    fastcnn::relu_backward<T>(yc.size(), gc.data(), yc.data(), out);
    return grad_x;
}

py::array relu_backward(py::object grad_y_obj, py::object y_obj) {
    if (!py::isinstance<py::array>(y_obj))
        throw py::type_error("y must be a numpy array of float32 or float64, got " +
                             type_name(y_obj));
    const int rank = int(py::reinterpret_borrow<py::array>(y_obj).ndim());
    const py::array y = float_array(y_obj, "y", rank, "(any shape)");
    const py::array grad_y = float_array(grad_y_obj, "grad_y", rank, "(the shape of y)");
    require_same_dtype(grad_y, "grad_y", y, "y");
    if (shape_of(grad_y) != shape_of(y))
        throw std::invalid_argument("grad_y must have the shape of y " + shape_text(y) +
                                    ", got " + shape_text(grad_y));
    return is_float32(y) ? run_relu_backward<float>(grad_y, y)
                         : run_relu_backward<double>(grad_y, y);
}

// ---- loss --------------------------------------------------------------------

template <typename T>
py::tuple run_softmax_cross_entropy(const py::array& logits, const KernelArray<int64_t>& labels) {
    auto zc = contiguous<T>(logits, "logits");
    const int64_t rows = zc.shape(0), classes = zc.shape(1);
    const int64_t* label = labels.data();
    for (int64_t r = 0; r < rows; ++r)
        if (label[r] < 0 || label[r] >= classes)
            throw std::invalid_argument("labels must be in [0, " + std::to_string(classes - 1) +
                                        "] for " + std::to_string(classes) +
                                        " classes, got " + std::to_string(label[r]) +
                                        " at row " + std::to_string(r));
    auto grad = new_array<T>({rows, classes}, "the output grad");
    T* out = grad.mutable_data();
    fastcnn::SoftmaxCrossEntropy result;
    {
        py::gil_scoped_release release;
        result = fastcnn::softmax_cross_entropy<T>(rows, classes, zc.data(), label, out);
    }
    return py::make_tuple(result.loss_sum / double(rows), grad, result.correct);
}

py::tuple softmax_cross_entropy(py::object logits_obj, py::object labels_obj) {
    const py::array logits = float_array(logits_obj, "logits", 2, "(N, classes)");
    if (!py::isinstance<py::array>(labels_obj))
        throw py::type_error("labels must be a numpy array of integers, got " +
                             type_name(labels_obj));
    const py::array labels_in = py::reinterpret_borrow<py::array>(labels_obj);
    const char kind = labels_in.dtype().kind();
    if (kind != 'i' && kind != 'u')
        throw py::type_error("labels must be integers, got dtype " +
                             std::string(py::str(labels_in.dtype())));
    if (labels_in.ndim() != 1 || labels_in.shape(0) != logits.shape(0))
        throw std::invalid_argument("labels must be (N,) = (" + std::to_string(logits.shape(0)) +
                                    ",) for logits " + shape_text(logits) + ", got shape " +
                                    shape_text(labels_in));
    if (logits.shape(0) == 0 || logits.shape(1) == 0)
        throw std::invalid_argument("logits must hold one or more rows and classes, got shape " +
                                    shape_text(logits));
    const auto labels = KernelArray<int64_t>::ensure(labels_in);
    if (!labels) throw py::error_already_set();
    return is_float32(logits) ? run_softmax_cross_entropy<float>(logits, labels)
                              : run_softmax_cross_entropy<double>(logits, labels);
}

// ---- optimizers --------------------------------------------------------------

// Whether the update was made: false (nothing done) unless parameter is a
// writeable, aligned, C-contiguous float32/float64 array and gradient an array
// of its shape and dtype; the caller then takes NumPy's general path.
bool gradient_descent_update(py::handle parameter_obj, py::handle gradient_obj,
                             double learning_rate) {
    if (!py::isinstance<py::array>(parameter_obj) || !py::isinstance<py::array>(gradient_obj))
        return false;
    auto parameter = py::reinterpret_borrow<py::array>(parameter_obj);
    const auto gradient = py::reinterpret_borrow<py::array>(gradient_obj);
    const int flags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                      py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                      py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    const bool single = parameter.dtype().is(py::dtype::of<float>());
    if (!(single || parameter.dtype().is(py::dtype::of<double>())) ||
        !gradient.dtype().is(parameter.dtype()) || (parameter.flags() & flags) != flags ||
        shape_of(parameter) != shape_of(gradient))
        return false;
    if (single) {
        auto g = contiguous<float>(gradient, "gradient");
        py::gil_scoped_release release;
        fastcnn::gradient_descent_update<float>(
            int64_t(parameter.size()), static_cast<float*>(parameter.mutable_data()), g.data(),
            learning_rate);
    } else {
        auto g = contiguous<double>(gradient, "gradient");
        py::gil_scoped_release release;
        fastcnn::gradient_descent_update<double>(
            int64_t(parameter.size()), static_cast<double*>(parameter.mutable_data()), g.data(),
            learning_rate);
    }
    return true;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastcnn's C++ kernels (private: use fastcnn.kernels)";
    m.def("correlate2d", &correlate2d, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
          py::arg("stride") = 1, py::arg("padding") = 0, py::arg("relu") = false);
    m.def("relu", &relu, py::arg("x"));
    m.def("gradient_descent_update", &gradient_descent_update, py::arg("parameter"),
          py::arg("gradient"), py::arg("learning_rate"));
    m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"));
    m.def("relu_backward", &relu_backward, py::arg("grad_y"), py::arg("y"));
    m.def("correlate2d_backward_weight", &correlate2d_backward_weight, py::arg("x"),
          py::arg("grad_y"), py::arg("kernel_size"), py::arg("stride") = 1,
          py::arg("padding") = 0, py::arg("bias_grad") = false);
    m.def("convolve2d_full", &convolve2d_full, py::arg("grad_y"), py::arg("w"),
          py::arg("input_size"), py::arg("stride") = 1, py::arg("padding") = 0);
    m.def("maxpool2d", &maxpool2d, py::arg("x"), py::arg("size") = 2,
          py::arg("stride") = py::none());
    m.def("maxpool2d_backward", &maxpool2d_backward, py::arg("grad_y"), py::arg("argmax"),
          py::arg("input_size"));
    m.def("avgpool2d", &avgpool2d, py::arg("x"), py::arg("size") = 2,
          py::arg("stride") = py::none());
    m.def("avgpool2d_backward", &avgpool2d_backward, py::arg("grad_y"), py::arg("input_size"),
          py::arg("size") = 2, py::arg("stride") = py::none());
    m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("transpose_a") = py::bool_(false),
          py::arg("transpose_b") = py::bool_(false));

    m.def("fma_peak", &fma_peak, py::arg("dtype"), py::arg("threads") = 1,
          py::arg("seconds") = 0.2,
          "This host's measured peak in GFLOP/s: `threads` threads each running independent\n"
          "fused multiply-adds on registers for about `seconds` on the active SIMD path, in\n"
          "dtype (float32 or float64). TypeError for another dtype, ValueError for threads < 1\n"
          "or seconds outside (0, 60].");
    m.def("batchnorm_forward", &batchnorm_forward, py::arg("x"), py::arg("gamma"),
          py::arg("beta"), py::arg("eps") = 1e-5);
    m.def("batchnorm_inference", &batchnorm_inference, py::arg("x"), py::arg("gamma"),
          py::arg("beta"), py::arg("mean"), py::arg("var"), py::arg("eps") = 1e-5);
    m.def("batchnorm_backward", &batchnorm_backward, py::arg("grad_y"), py::arg("x"),
          py::arg("gamma"), py::arg("mean"), py::arg("var"), py::arg("eps") = 1e-5,
          py::arg("training") = true);

    m.def("set_num_threads", &fastcnn::set_num_threads, py::arg("n"));
    m.def("retain_freed_memory", &fastcnn::retain_freed_memory);
    m.def("get_num_threads", &fastcnn::num_threads);
    m.def("simd_path", &fastcnn::simd_path);
    m.def("supported_simd_paths", &fastcnn::supported_simd_paths);
    m.def("set_simd_path", &fastcnn::set_simd_path, py::arg("name"));
}
