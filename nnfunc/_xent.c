/* nnfunc._xent: softmax cross-entropy from integer labels, one compiled pass per row.
 *
 * For logits z of shape (..., c) and integer labels y of shape z.shape[:-1], over the
 * N = z.size / c rows, with x_j = z_j - max(z) (so x_j <= 0 and e_j = exp(x_j) <= 1),
 * s = sum_j e_j and o = s - e_y = sum_{j != y} e_j:
 *
 *     term    = -log softmax(z)_y = log(s) - x_y   = log1p(o / e_y)
 *     loss    = (1/N) sum_rows term
 *     dL/dz_j = e_j / (N s)    (j != y)
 *     dL/dz_y = -o / (N s)     (= (softmax(z)_y - 1) / N without the cancellation)
 *
 * Everything is computed in double precision and rounded once to the logits' dtype
 * (float32 or float64): the term from log1p where x_y >= -1 (a loss near 0 keeps its
 * digits), else from log(s) - x_y (two positive parts, no cancellation); the label's
 * gradient from o, never from softmax - 1. The row sums run in eight interleaved
 * lanes (a fixed order), the loss sums with Neumaier's compensation. For float32
 * logits every output is within one unit in the last place of the exact value.
 *
 * exp is our own, so that it vectorises: x = k ln2 + r with |r| <= ln2/2 (ln2 split
 * in two parts, the first exact in k * ln2_hi for |k| < 2^11), e^r by its Taylor
 * series (to r^13 for float64 logits, truncation < 1e-17 relative; to r^9 for
 * float32 ones, < 1e-11), times 2^k as two powers of two so that results below the
 * smallest normal double round once, correctly. x is clamped at -1000 first
 * (e^-1000 is 0 in double).
 *
 * The arrays come through the buffer protocol (no NumPy header): z float32 or float64
 * of native byte order, any strides of whole elements; y any integer format of 1, 2,
 * 4 or 8 bytes, any strides; the outputs (a gradient shaped like z, per-row terms
 * shaped like y) C-contiguous in z's format, or None. Anything else — another dtype,
 * an empty array, a label out of [0, c), a NaN or infinite maximum — returns
 * NotImplemented, and the caller takes NumPy's path, which gives the error or the
 * NaN that input deserves.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER)
#define restrict __restrict
#endif

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) &&                   \
    (defined(__GNUC__) || defined(__clang__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#define MAX_DIMS 32
#define PAD 4                  /* doubles in an AVX2 vector */
#define STACK_CLASSES 512      /* rows up to this long use a scratch row on the stack */
#define RELEASE_GIL_FROM 16384 /* elements; below this the GIL is kept */

static inline double from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t to_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* e^x for x <= 0 (see the top of the file), its Taylor series to r^degree: 13 for
 * float64 logits, 9 for float32 ones (truncation < 1e-11 relative, far below half a
 * float32 ulp, 3e-8). */
static inline double exp_nonpositive(double x, int degree) {
    const double shift = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
    const double ln2_lo = 1.90821492927058770002e-10;
    x = x < -1000.0 ? -1000.0 : x;
    const double t = x * log2e + shift;
    const double kd = t - shift;
    const uint64_t minus_k = to_bits(shift) - to_bits(t); /* -kd as an integer, >= 0 */
    const double r = (x - kd * ln2_hi) - kd * ln2_lo;
    double p = 1.0;
    if (degree == 13) {
        p = 1.0 / 6227020800.0; /* 1/13! */
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
    } else {
        p = 1.0 / 362880.0; /* 1/9! */
    }
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* 2^k = 2^-h 2^-(-k-h), h = -k/2 <= 722: both normal (unsigned arithmetic only,
     * which every vector instruction set has) */
    const uint64_t h = minus_k >> 1;
    return (p * from_bits((1023 - h) << 52)) * from_bits((1023 - (minus_k - h)) << 52);
}

/* d[j] = e^(d[j] - m) over a row of float64 logits (the vectorised part). The
 * difference x is rounded; its rounding error dx comes from Knuth's two-sum, and
 * e^(x + dx) = e^x (1 + dx) to within dx^2 < 1e-26. */
CLONES static void exp_row_double(Py_ssize_t c, double *restrict d, double m) {
    for (Py_ssize_t j = 0; j < c; j++) {
        const double a = d[j], x = a - m;
        const double a_part = x + m, m_part = x - a_part;
        const double dx = (a - a_part) - (m + m_part);
        const double e = exp_nonpositive(x, 13);
        d[j] = x < -1000.0 ? 0.0 : e + e * dx; /* an infinite a makes dx NaN */
    }
}

/* The same for float32 logits, whose differences double precision holds exactly
 * (to within 1e-20 relative when their exponents lie 29 apart). */
CLONES static void exp_row_float(Py_ssize_t c, double *restrict d, double m) {
    for (Py_ssize_t j = 0; j < c; j++) {
        d[j] = exp_nonpositive(d[j] - m, 9);
    }
}

/* sum_j d[j] in eight interleaved lanes, combined pairwise. */
static double lane_sum(Py_ssize_t c, const double *d) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t j = 0;
    for (; j + 8 <= c; j += 8) {
        for (int l = 0; l < 8; l++) {
            lane[l] += d[j + l];
        }
    }
    for (int l = 0; j < c; j++, l++) {
        lane[l] += d[j];
    }
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* Neumaier's compensated running sum. */
typedef struct {
    double sum, carry;
} compensated;

static inline void add(compensated *a, double x) {
    const double t = a->sum + x;
    a->carry += fabs(a->sum) >= fabs(x) ? (a->sum - t) + x : (x - t) + a->sum;
    a->sum = t;
}

typedef struct {
    Py_ssize_t rows, classes, outer; /* outer: the number of leading dims, ndim - 1 */
    Py_ssize_t shape[MAX_DIMS], z_strides[MAX_DIMS], y_strides[MAX_DIMS];
    Py_ssize_t class_stride;
    const char *z, *y;
    char y_format;
    Py_ssize_t y_size;
} rows_t;

/* The label at byte address p, or -1 for one no int64 can hold. */
static inline long long label_at(const char *p, char format, Py_ssize_t size) {
    const int is_signed = format >= 'a'; /* struct's codes: lower case signed, upper not */
    switch (size) {
    case 1:
        return is_signed ? (long long)*(const int8_t *)p : (long long)*(const uint8_t *)p;
    case 2: {
        int16_t s;
        memcpy(&s, p, 2);
        return is_signed ? (long long)s : (long long)(uint16_t)s;
    }
    case 4: {
        int32_t s;
        memcpy(&s, p, 4);
        return is_signed ? (long long)s : (long long)(uint32_t)s;
    }
    default: {
        int64_t s;
        memcpy(&s, p, 8);
        return is_signed || s >= 0 ? (long long)s : -1;
    }
    }
}

#define XENT(T)                                                                          \
    /* 0 when every row was done; 1 for a label out of range or a non-finite max */      \
    static int xent_##T(const rows_t *a, double *scratch, T *restrict g, T *restrict terms, \
                        double *mean) {                                                   \
        const Py_ssize_t c = a->classes;                                                  \
        const Py_ssize_t padded = (c + PAD - 1) / PAD * PAD;                              \
        Py_ssize_t index[MAX_DIMS] = {0};                                                 \
        Py_ssize_t zo = 0, yo = 0;                                                        \
        compensated total = {0.0, 0.0};                                                   \
        const double n = (double)a->rows;                                                 \
        for (Py_ssize_t i = 0; i < a->rows; i++) {                                        \
            const char *row = a->z + zo;                                                  \
            long long y = label_at(a->y + yo, a->y_format, a->y_size);                    \
            if (y < 0 || y >= c) {                                                        \
                return 1;                                                                 \
            }                                                                             \
            double m = -INFINITY;                                                         \
            int nan = 0;                                                                  \
            if (a->class_stride == (Py_ssize_t)sizeof(T)) { /* a contiguous row */        \
                const T *restrict r = (const T *)row;                                     \
                for (Py_ssize_t j = 0; j < c; j++) {                                      \
                    scratch[j] = (double)r[j];                                            \
                    m = scratch[j] > m ? scratch[j] : m;                                  \
                    nan |= scratch[j] != scratch[j];                                      \
                }                                                                         \
            } else {                                                                      \
                for (Py_ssize_t j = 0; j < c; j++) {                                      \
                    T v;                                                                  \
                    memcpy(&v, row + j * a->class_stride, sizeof v);                      \
                    scratch[j] = (double)v;                                               \
                    m = scratch[j] > m ? scratch[j] : m;                                  \
                    nan |= scratch[j] != scratch[j];                                      \
                }                                                                         \
            }                                                                             \
            if (nan || !isfinite(m)) {                                                    \
                return 1;                                                                 \
            }                                                                             \
            /* padded with -inf (e^-inf is 0) to whole vectors: no scalar tails */        \
            for (Py_ssize_t j = c; j < padded; j++) {                                     \
                scratch[j] = -INFINITY;                                                   \
            }                                                                             \
            const double x_y = scratch[y] - m;                                            \
            exp_row_##T(padded, scratch, m);                                                  \
            const double e_y = scratch[y];                                                \
            scratch[y] = 0.0;                                                             \
            const double o = lane_sum(padded, scratch);                                   \
            const double s = o + e_y;                                                     \
            const double term = x_y >= -1.0 ? log1p(o / e_y) : log(s) - x_y;              \
            add(&total, term);                                                            \
            if (terms != NULL) {                                                          \
                terms[i] = (T)term;                                                       \
            }                                                                             \
            if (g != NULL) {                                                              \
                const double scale = 1.0 / (n * s);                                       \
                T *restrict out = g + i * c;                                              \
                for (Py_ssize_t j = 0; j < c; j++) {                                      \
                    out[j] = (T)(scratch[j] * scale);                                     \
                }                                                                         \
                out[y] = (T)(0.0 - o * scale); /* +0, not -0, for one class */                                                 \
            }                                                                             \
            /* the next row: an odometer over the leading dims */                         \
            for (Py_ssize_t d = a->outer - 1; d >= 0; d--) {                              \
                zo += a->z_strides[d];                                                    \
                yo += a->y_strides[d];                                                    \
                if (++index[d] < a->shape[d]) {                                           \
                    break;                                                                \
                }                                                                         \
                zo -= a->z_strides[d] * a->shape[d];                                      \
                yo -= a->y_strides[d] * a->shape[d];                                      \
                index[d] = 0;                                                             \
            }                                                                             \
        }                                                                                 \
        /* an infinite term (a labelled logit of -inf) leaves a NaN carry behind */     \
        *mean = (isinf(total.sum) ? total.sum : total.sum + total.carry) / n;                                            \
        return 0;                                                                         \
    }

XENT(float)
XENT(double)

/* Whether an output buffer fits: C-contiguous, in z's format, of `count` elements. */
static int fits(const Py_buffer *b, const Py_buffer *z, Py_ssize_t count) {
    return strcmp(b->format, z->format) == 0 && b->len == count * z->itemsize &&
           PyBuffer_IsContiguous(b, 'C');
}

static int aligned(const Py_buffer *b) {
    if ((uintptr_t)b->buf % (uintptr_t)b->itemsize != 0) {
        return 0;
    }
    for (int d = 0; d < b->ndim; d++) {
        if (b->strides[d] % b->itemsize != 0) {
            return 0;
        }
    }
    return 1;
}

PyDoc_STRVAR(xent_doc,
             "softmax_cross_entropy(z, y, g, terms)\n--\n\n"
             "The mean loss as a float, the gradient written into g and each row's loss\n"
             "into terms (either may be None); NotImplemented where NumPy's path must\n"
             "answer (see the module source).");

static PyObject *py_xent(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "softmax_cross_entropy takes 4 arguments, got %zd",
                     nargs);
        return NULL;
    }
    Py_buffer view[4];
    int taken = 0, ok = 1;
    const int flags[4] = {PyBUF_RECORDS_RO, PyBUF_RECORDS_RO, PyBUF_RECORDS, PyBUF_RECORDS};
    for (; taken < 4; taken++) {
        if (taken >= 2 && args[taken] == Py_None) {
            view[taken].obj = NULL;
            continue;
        }
        if (PyObject_GetBuffer(args[taken], &view[taken], flags[taken]) < 0) {
            PyErr_Clear();
            ok = 0;
            break;
        }
    }
    const Py_buffer *z = &view[0], *y = &view[1];
    rows_t a;
    ok = ok && z->ndim >= 2 && z->ndim <= MAX_DIMS && y->ndim == z->ndim - 1 &&
         (strcmp(z->format, "f") == 0 || strcmp(z->format, "d") == 0) && aligned(z) &&
         y->format[0] != '\0' && y->format[1] == '\0' && strchr("bBhHiIlLqQnN", y->format[0]) &&
         (y->itemsize == 1 || y->itemsize == 2 || y->itemsize == 4 || y->itemsize == 8) &&
         z->len > 0;
    if (ok) {
        a.outer = z->ndim - 1;
        a.classes = z->shape[a.outer];
        a.class_stride = z->strides[a.outer];
        a.rows = 1;
        for (Py_ssize_t d = 0; d < a.outer; d++) {
            ok = ok && y->shape[d] == z->shape[d];
            a.shape[d] = z->shape[d];
            a.z_strides[d] = z->strides[d];
            a.y_strides[d] = y->strides[d];
            a.rows *= z->shape[d];
        }
        a.z = z->buf;
        a.y = y->buf;
        a.y_format = y->format[0];
        a.y_size = y->itemsize;
        ok = ok && (view[2].obj == NULL || fits(&view[2], z, a.rows * a.classes)) &&
             (view[3].obj == NULL || fits(&view[3], z, a.rows));
    }
    double mean = 0.0;
    if (ok) {
        double stack[STACK_CLASSES + PAD];
        double *scratch = a.classes <= STACK_CLASSES
                              ? stack
                              : PyMem_RawMalloc(sizeof(double) * (size_t)(a.classes + PAD));
        if (scratch == NULL) {
            ok = 0;
        } else {
            PyThreadState *state =
                a.rows * a.classes >= RELEASE_GIL_FROM ? PyEval_SaveThread() : NULL;
            int declined = z->itemsize == 4
                ? xent_float(&a, scratch, view[2].obj ? view[2].buf : NULL,
                             view[3].obj ? view[3].buf : NULL, &mean)
                : xent_double(&a, scratch, view[2].obj ? view[2].buf : NULL,
                              view[3].obj ? view[3].buf : NULL, &mean);
            if (state != NULL) {
                PyEval_RestoreThread(state);
            }
            if (scratch != stack) {
                PyMem_RawFree(scratch);
            }
            ok = !declined;
        }
    }
    for (int i = 0; i < taken; i++) {
        if (view[i].obj != NULL) {
            PyBuffer_Release(&view[i]);
        }
    }
    if (!ok) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    return PyFloat_FromDouble(mean);
}

static PyMethodDef methods[] = {
    {"softmax_cross_entropy", (PyCFunction)(void (*)(void))py_xent, METH_FASTCALL, xent_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_xent",
    "Softmax cross-entropy from integer labels as one compiled pass per row.",
    0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__xent(void) { return PyModule_Create(&module); }
