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
#include "_loops.h"

#define MAX_DIMS 32
#define BLOCK 1024             /* doubles of logits worked on at once (up to one row) */

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

/* d[j] = e^(x_j + dx_j) over a block of float64 rows (the vectorised part), from the
 * rounded differences x_j = d[j] and their rounding errors dx_j (Knuth's two-sum):
 * e^(x + dx) = e^x (1 + dx) to within dx^2 < 1e-26. */
CLONES static void exp_block_double(Py_ssize_t count, double *restrict d,
                                    const double *restrict dx) {
    for (Py_ssize_t j = 0; j < count; j++) {
        const double x = d[j], e = exp_nonpositive(x, 13);
        d[j] = x < -1000.0 ? 0.0 : e + e * dx[j]; /* an infinite logit makes dx NaN */
    }
}

/* d[j] = e^(d[j]) over a block of float32 rows, whose differences double precision
 * holds exactly (to within 1e-20 relative when their exponents lie 29 apart). */
CLONES static void exp_block_float(Py_ssize_t count, double *restrict d) {
    for (Py_ssize_t j = 0; j < count; j++) {
        d[j] = exp_nonpositive(d[j], 9);
    }
}

/* sum_j d[j] in eight interleaved lanes, combined pairwise. */
static inline double lane_sum(Py_ssize_t c, const double *d) {
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

/* Row i's logits into x (c doubles) less their max, the rounding errors into dx (float64
 * only); 0, or 1 for a NaN or a non-finite max. */
#define LOAD(T)                                                                          \
    static inline int load_##T(const rows_t *a, const char *row, double *restrict x,      \
                               double *restrict dx) {                                     \
        const Py_ssize_t c = a->classes;                                                  \
        double m = -INFINITY;                                                             \
        int nan = 0;                                                                      \
        for (Py_ssize_t j = 0; j < c; j++) {                                              \
            T v;                                                                          \
            memcpy(&v, row + j * a->class_stride, sizeof v);                              \
            x[j] = (double)v;                                                             \
        }                                                                                 \
        for (Py_ssize_t j = 0; j < c; j++) {                                              \
            m = x[j] > m ? x[j] : m;                                                      \
            nan |= x[j] != x[j];                                                          \
        }                                                                                 \
        if (nan || !isfinite(m)) {                                                        \
            return 1;                                                                     \
        }                                                                                 \
        for (Py_ssize_t j = 0; j < c; j++) {                                              \
            const double v = x[j], d = v - m;                                             \
            if (dx != NULL) { /* two-sum: v - m = d + dx exactly */                       \
                const double v_part = d + m, m_part = d - v_part;                         \
                dx[j] = (v - v_part) - (m + m_part);                                      \
            }                                                                             \
            x[j] = d;                                                                     \
        }                                                                                 \
        return 0;                                                                         \
    }

LOAD(float)
LOAD(double)

/* Rows go through in blocks of at most BLOCK elements (at least one row): each row
 * loaded less its max, one exp over the block, then each row's sums, loss and
 * gradient. 0 when every row was done; 1 for a label out of range or a NaN or
 * non-finite max (NumPy's path then answers). */
#define XENT(T, DX)                                                                      \
    static int xent_##T(const rows_t *a, double *x, double *dx, T *restrict g,            \
                        T *restrict terms, double *mean) {                                \
        const Py_ssize_t c = a->classes, per = c < BLOCK ? BLOCK / c : 1;                 \
        const double n = (double)a->rows;                                                 \
        Py_ssize_t index[MAX_DIMS] = {0}, zo = 0, yo = 0;                                 \
        long long label[BLOCK];                                                           \
        double x_y[BLOCK];                                                                \
        compensated total = {0.0, 0.0};                                                   \
        for (Py_ssize_t first = 0; first < a->rows; first += per) {                       \
            const Py_ssize_t rows = a->rows - first < per ? a->rows - first : per;        \
            for (Py_ssize_t r = 0; r < rows; r++) {                                       \
                const long long y = label_at(a->y + yo, a->y_format, a->y_size);          \
                if (y < 0 || y >= c ||                                                    \
                    load_##T(a, a->z + zo, x + r * c, DX ? dx + r * c : NULL)) {          \
                    return 1;                                                             \
                }                                                                         \
                label[r] = y;                                                             \
                x_y[r] = x[r * c + y];                                                    \
                /* the next row: an odometer over the leading dims */                     \
                for (Py_ssize_t d = a->outer - 1; d >= 0; d--) {                          \
                    zo += a->z_strides[d];                                                \
                    yo += a->y_strides[d];                                                \
                    if (++index[d] < a->shape[d]) {                                       \
                        break;                                                            \
                    }                                                                     \
                    zo -= a->z_strides[d] * a->shape[d];                                  \
                    yo -= a->y_strides[d] * a->shape[d];                                  \
                    index[d] = 0;                                                         \
                }                                                                         \
            }                                                                             \
            if (DX) {                                                                     \
                exp_block_double(rows * c, x, dx);                                        \
            } else {                                                                      \
                exp_block_float(rows * c, x);                                             \
            }                                                                             \
            for (Py_ssize_t r = 0; r < rows; r++) {                                       \
                double *restrict e = x + r * c;                                           \
                const long long y = label[r];                                             \
                const double e_y = e[y];                                                  \
                e[y] = 0.0;                                                               \
                const double o = lane_sum(c, e), s = o + e_y;                             \
                const double term = x_y[r] >= -1.0 ? log1p(o / e_y) : log(s) - x_y[r];    \
                add(&total, term);                                                        \
                if (terms != NULL) {                                                      \
                    terms[first + r] = (T)term;                                           \
                }                                                                         \
                if (g != NULL) {                                                          \
                    const double scale = 1.0 / (n * s);                                   \
                    T *restrict out = g + (first + r) * c;                                \
                    for (Py_ssize_t j = 0; j < c; j++) {                                  \
                        out[j] = (T)(e[j] * scale);                                       \
                    }                                                                     \
                    out[y] = (T)(0.0 - o * scale); /* +0, not -0, for one class */        \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        /* an infinite term (a labelled logit of -inf) leaves a NaN carry behind */       \
        *mean = (isinf(total.sum) ? total.sum : total.sum + total.carry) / n;             \
        return 0;                                                                         \
    }

XENT(float, 0)
XENT(double, 1)

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
        const Py_ssize_t room = a.classes < BLOCK ? BLOCK : a.classes;
        double stack[2 * BLOCK];
        double *x = room == BLOCK ? stack : PyMem_RawMalloc(2 * sizeof(double) * (size_t)room);
        if (x == NULL) {
            ok = 0;
        } else {
            PyThreadState *state =
                a.rows * a.classes >= RELEASE_GIL_FROM ? PyEval_SaveThread() : NULL;
            void *g = view[2].obj ? view[2].buf : NULL, *terms = view[3].obj ? view[3].buf : NULL;
            int declined = z->itemsize == 4 ? xent_float(&a, x, NULL, g, terms, &mean)
                                            : xent_double(&a, x, x + room, g, terms, &mean);
            if (state != NULL) {
                PyEval_RestoreThread(state);
            }
            if (x != stack) {
                PyMem_RawFree(x);
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
