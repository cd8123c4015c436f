/* nnfunc.optim._fused: Adam's update as one loop over the leaves laid end to end.
 *
 * For element i, with the step's constants k = (b1, c1, b2, c2, lr, eps, decay)
 * (c1 = 1 - b1, c2 = 1 - b2, lr and eps bias-corrected, decay = 1 - lr * weight decay),
 * each rounded to the leaves' dtype:
 *
 *     m' = m*b1 + g*c1
 *     v' = v*b2 + (g*g)*c2
 *     p' = p*decay - (m' / (sqrt(v') + eps))*lr
 *
 * These are the NumPy kernel's operations (nnfunc.optim._adam._adam_chunk) in its
 * order, each rounded to the dtype, so both give the same bits: the build turns off
 * floating-point contraction (no fused multiply-add), keeps IEEE semantics (no
 * fast-math), and sqrt and division are correctly rounded in every instruction set.
 * (NumPy skips p*decay when decay is 1; p*1 is p.)
 *
 * The arrays come through the buffer protocol, so no NumPy header is needed: all
 * one-dimensional, of one length and one format ('f' or 'd'), the outputs contiguous,
 * the inputs of any stride (contiguous and apart from the outputs, they take the
 * vectorised loops; else an element-by-element one).
 */
#include "../_loops.h"

#define ADAM_LOOPS(T, SQRT)                                                              \
    typedef struct {                                                                     \
        T b1, c1, b2, c2, lr, eps, decay;                                                \
    } constants_##T;                                                                     \
    static inline constants_##T constants_of_##T(const T *k) {                           \
        constants_##T c = {k[0], k[1], k[2], k[3], k[4], k[5], k[6]};                    \
        return c;                                                                        \
    }                                                                                    \
    /* the rule for one element (the three lines above): m and v in place, the new p     \
     * returned; every loop below runs it, so the rule is written once */                \
    static inline T adam_##T(constants_##T c, T p, T g, T *m, T *v) {                    \
        const T mi = *m * c.b1 + g * c.c1;                                               \
        const T vi = *v * c.b2 + (g * g) * c.c2;                                         \
        *m = mi;                                                                         \
        *v = vi;                                                                         \
        return p * c.decay - (mi / (SQRT(vi) + c.eps)) * c.lr;                           \
    }                                                                                    \
    CLONES static void adam_in_place_##T(Py_ssize_t n, T *restrict p,                    \
                                         const T *restrict g, T *restrict m,             \
                                         T *restrict v, const T *k) {                    \
        const constants_##T c = constants_of_##T(k);                                     \
        for (Py_ssize_t i = 0; i < n; i++) {                                             \
            p[i] = adam_##T(c, p[i], g[i], &m[i], &v[i]);                                \
        }                                                                                \
    }                                                                                    \
    CLONES static void adam_into_##T(Py_ssize_t n, const T *restrict p,                  \
                                     const T *restrict g, const T *restrict m,           \
                                     const T *restrict v, T *restrict p2,                \
                                     T *restrict m2, T *restrict v2, const T *k) {       \
        const constants_##T c = constants_of_##T(k);                                     \
        for (Py_ssize_t i = 0; i < n; i++) {                                             \
            T mi = m[i], vi = v[i];                                                      \
            p2[i] = adam_##T(c, p[i], g[i], &mi, &vi);                                   \
            m2[i] = mi;                                                                  \
            v2[i] = vi;                                                                  \
        }                                                                                \
    }                                                                                    \
    /* any strides of the inputs, any aliasing between inputs and outputs: element by    \
     * element, every input of an element read before any output of it is written */     \
    static void adam_general_##T(Py_ssize_t n, const Py_buffer *in, T *p2, T *m2, T *v2, \
                                 const T *k) {                                           \
        const constants_##T c = constants_of_##T(k);                                     \
        const char *p = in[0].buf, *g = in[1].buf, *m = in[2].buf, *v = in[3].buf;       \
        const Py_ssize_t ps = in[0].strides[0], gs = in[1].strides[0],                   \
                         ms = in[2].strides[0], vs = in[3].strides[0];                   \
        for (Py_ssize_t i = 0; i < n; i++) {                                             \
            T pi, gi, mi, vi;                                                            \
            memcpy(&pi, p + i * ps, sizeof(T));                                          \
            memcpy(&gi, g + i * gs, sizeof(T));                                          \
            memcpy(&mi, m + i * ms, sizeof(T));                                          \
            memcpy(&vi, v + i * vs, sizeof(T));                                          \
            pi = adam_##T(c, pi, gi, &mi, &vi);                                          \
            m2[i] = mi;                                                                  \
            v2[i] = vi;                                                                  \
            p2[i] = pi;                                                                  \
        }                                                                                \
    }

ADAM_LOOPS(float, sqrtf)
ADAM_LOOPS(double, sqrt)

enum { P, G, M, V, P2, M2, V2, K, MAX_ARGS };

static const char *const NAMES[MAX_ARGS] = {"p", "g", "m", "v", "p2", "m2", "v2", "k"};

/* Take the buffers of the count arguments of function `name` (nargs given),
 * argument i in role slots[i] (K: the seven constants), writable where writable[i].
 * Returns the item size (4 or 8), or 0 with an exception set (every buffer taken
 * released). */
static Py_ssize_t take(const char *name, PyObject *const *args, Py_ssize_t nargs, int count,
                       const int *slots, const int *writable, Py_buffer *views) {
    if (nargs != count) {
        PyErr_Format(PyExc_TypeError, "%s takes %d arguments, got %zd", name, count, nargs);
        return 0;
    }
    for (int i = 0; i < count; i++) {
        int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable[i] ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[i], &views[i], flags) < 0) {
            release(views, i);
            return 0;
        }
    }
    const char *format = views[0].format;
    Py_ssize_t itemsize = views[0].itemsize;
    Py_ssize_t n = views[0].ndim == 1 ? views[0].shape[0] : -1;
    for (int i = 0; i < count; i++) {
        const Py_buffer *b = &views[i];
        const char *why = NULL;
        if (strcmp(b->format, format) != 0 || b->itemsize != itemsize ||
            (strcmp(format, "f") != 0 && strcmp(format, "d") != 0) ||
            (itemsize != 4 && itemsize != 8)) {
            why = "must be float32 or float64 of native byte order, all alike";
        } else if (b->ndim != 1) {
            why = "must be one-dimensional";
        } else if (slots[i] == K ? b->shape[0] != 7 : b->shape[0] != n) {
            why = slots[i] == K ? "must hold 7 constants" : "must all have p's length";
        } else if ((writable[i] || slots[i] == K) && b->strides[0] != itemsize) {
            why = "must be contiguous";
        } else if (b->strides[0] % itemsize != 0) {
            why = "must have a stride of whole elements";
        }
        if (why != NULL) {
            PyErr_Format(PyExc_ValueError, "nnfunc.optim._fused: %s %s (format %s, ndim %d)",
                         NAMES[slots[i]], why, b->format, b->ndim);
            release(views, count);
            return 0;
        }
    }
    return itemsize;
}

/* The vectorised loop over n contiguous elements of one dtype (itemsize 4 or 8), in place
 * (p2, m2, v2 being p, m, v) or into distinct outputs. */
static void vectorised(Py_ssize_t itemsize, int in_place, Py_ssize_t n, const void *p,
                       const void *g, const void *m, const void *v, void *p2, void *m2,
                       void *v2, const void *k) {
    if (itemsize == 4 && in_place) {
        adam_in_place_float(n, p2, g, m2, v2, k);
    } else if (itemsize == 4) {
        adam_into_float(n, p, g, m, v, p2, m2, v2, k);
    } else if (in_place) {
        adam_in_place_double(n, p2, g, m2, v2, k);
    } else {
        adam_into_double(n, p, g, m, v, p2, m2, v2, k);
    }
}

/* The loop that fits, the GIL released for long ones: vectorised when the inputs are
 * contiguous and apart from the outputs (in place when the outputs are p, m and v
 * themselves), else element by element. */
static void run(Py_ssize_t itemsize, int apart, int in_place, const Py_buffer *in, void *p2,
                void *m2, void *v2, const void *k) {
    Py_ssize_t n = in[0].shape[0];
    PyThreadState *state = n >= RELEASE_GIL_FROM ? PyEval_SaveThread() : NULL;
    if (!apart && itemsize == 4) {
        adam_general_float(n, in, p2, m2, v2, k);
    } else if (!apart) {
        adam_general_double(n, in, p2, m2, v2, k);
    } else {
        vectorised(itemsize, in_place, n, in[0].buf, in[1].buf, in[2].buf, in[3].buf, p2, m2,
                   v2, k);
    }
    if (state != NULL) {
        PyEval_RestoreThread(state);
    }
}

/* The grads as pieces: g a list of C-contiguous buffers of any shapes, the leaves' grads,
 * read where they lie as if laid end to end (no concatenated copy). Each piece must be
 * p's format, and their elements must add up to p's length (else ValueError: a mistake
 * inside nnfunc); a piece that is not C-contiguous, or that overlaps an output (p2, m2,
 * v2: views[4..6]), makes the call decline with NotImplemented (the caller then gathers
 * the grads itself). `views` are the other arguments' buffers, taken by `take` with g's
 * argument a placeholder (p's own array). Runs the loops and returns None, or
 * NotImplemented, or NULL with an exception. */
static PyObject *run_pieces(const char *name, PyObject *list, const Py_buffer *views,
                            int in_place) {
    const Py_ssize_t count = PyList_GET_SIZE(list), itemsize = views[0].itemsize,
                     n = views[0].shape[0];
    Py_buffer *pieces = PyMem_Calloc(count > 0 ? (size_t)count : 1, sizeof(Py_buffer));
    if (pieces == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *result = Py_NotImplemented;
    Py_ssize_t taken = 0, total = 0;
    for (; taken < count; taken++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(list, taken), &pieces[taken],
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyErr_Clear(); /* not C-contiguous (or no buffer): decline */
            goto done;
        }
        const Py_buffer *b = &pieces[taken];
        if (strcmp(b->format, views[0].format) != 0 || b->itemsize != itemsize) {
            taken++;
            PyErr_Format(PyExc_ValueError, "nnfunc.optim._fused: %s: g[%zd] must have p's "
                         "format %s (got %s)", name, taken - 1, views[0].format, b->format);
            result = NULL;
            goto done;
        }
        for (int out = in_place ? 0 : 4; out < (in_place ? 4 : 7); out++) {
            if (out != G && overlap(b, &views[out])) {
                taken++;
                goto done;
            }
        }
        total += b->len / itemsize;
    }
    if (total != n) {
        PyErr_Format(PyExc_ValueError, "nnfunc.optim._fused: %s: g's pieces must add up to "
                     "p's length %zd (got %zd)", name, n, total);
        result = NULL;
        goto done;
    }
    /* the vectorised loops only: p, m and v contiguous, every output apart from the
     * other arrays (else decline: the caller's general path handles it) */
    int apart = views[0].strides[0] == itemsize && views[2].strides[0] == itemsize &&
                views[3].strides[0] == itemsize;
    for (int out = in_place ? 0 : 4; out < (in_place ? 4 : 7); out++) {
        for (int other = 0; other < (in_place ? 4 : 7) && out != G; other++) {
            apart = apart && (other == out || other == G || !overlap(&views[out], &views[other]));
        }
    }
    if (!apart) {
        goto done;
    }
    const char *p = views[0].buf, *m = views[2].buf, *v = views[3].buf;
    char *p2 = views[in_place ? 0 : 4].buf, *m2 = views[in_place ? 2 : 5].buf,
         *v2 = views[in_place ? 3 : 6].buf;
    const void *k = views[in_place ? 4 : 7].buf;
    PyThreadState *state = n >= RELEASE_GIL_FROM ? PyEval_SaveThread() : NULL;
    Py_ssize_t at = 0; /* bytes */
    for (Py_ssize_t j = 0; j < count; j++) {
        vectorised(itemsize, in_place, pieces[j].len / itemsize, p + at, pieces[j].buf, m + at,
                   v + at, p2 + at, m2 + at, v2 + at, k);
        at += pieces[j].len;
    }
    if (state != NULL) {
        PyEval_RestoreThread(state);
    }
    result = Py_None;
done:
    release(pieces, (int)taken);
    PyMem_Free(pieces);
    Py_XINCREF(result);
    return result;
}

PyDoc_STRVAR(adam_in_place_doc,
             "adam_in_place(p, g, m, v, k)\n--\n\n"
             "Adam's update written over p, m and v (see the module source for the rule);\n"
             "g one array, or a list of C-contiguous arrays laid end to end (NotImplemented\n"
             "where such a list cannot be read in place).");

/* A call whose g is a list (nargs == count): the other arguments taken by `take`, with
 * p's array standing in for g, then run_pieces. */
static PyObject *call_with_pieces(const char *name, PyObject *const *args, int count,
                                  const int *slots, const int *writable, int in_place) {
    PyObject *own[MAX_ARGS];
    Py_buffer views[MAX_ARGS];
    for (int i = 0; i < count; i++) {
        own[i] = slots[i] == G ? args[0] : args[i];
    }
    if (take(name, own, count, count, slots, writable, views) == 0) {
        return NULL;
    }
    PyObject *result = run_pieces(name, args[G], views, in_place);
    release(views, count);
    return result;
}

static PyObject *py_adam_in_place(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    static const int slots[] = {P, G, M, V, K}, writable[] = {1, 0, 1, 1, 0};
    Py_buffer views[5];
    if (nargs == 5 && PyList_Check(args[G])) {
        return call_with_pieces("adam_in_place", args, 5, slots, writable, 1);
    }
    Py_ssize_t itemsize = take("adam_in_place", args, nargs, 5, slots, writable, views);
    if (itemsize == 0) {
        return NULL;
    }
    int apart = views[1].strides[0] == itemsize && !overlap(&views[1], &views[0]) &&
                !overlap(&views[1], &views[2]) && !overlap(&views[1], &views[3]) &&
                !overlap(&views[0], &views[2]) && !overlap(&views[0], &views[3]) &&
                !overlap(&views[2], &views[3]);
    run(itemsize, apart, 1, views, views[0].buf, views[2].buf, views[3].buf, views[4].buf);
    release(views, 5);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(adam_into_doc,
             "adam_into(p, g, m, v, p2, m2, v2, k)\n--\n\n"
             "Adam's update of p, m and v written into p2, m2 and v2; g as for adam_in_place.");

static PyObject *py_adam_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    static const int slots[] = {P, G, M, V, P2, M2, V2, K};
    static const int writable[] = {0, 0, 0, 0, 1, 1, 1, 0};
    Py_buffer views[8];
    if (nargs == 8 && PyList_Check(args[G])) {
        return call_with_pieces("adam_into", args, 8, slots, writable, 0);
    }
    Py_ssize_t itemsize = take("adam_into", args, nargs, 8, slots, writable, views);
    if (itemsize == 0) {
        return NULL;
    }
    int apart = 1;
    for (int in = 0; in < 4; in++) {
        apart = apart && views[in].strides[0] == itemsize;
    }
    for (int out = 4; out < 7 && apart; out++) {
        for (int in = 0; in < 7 && apart; in++) {
            apart = in == out || !overlap(&views[out], &views[in]);
        }
    }
    run(itemsize, apart, 0, views, views[4].buf, views[5].buf, views[6].buf, views[7].buf);
    release(views, 8);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"adam_in_place", (PyCFunction)(void (*)(void))py_adam_in_place, METH_FASTCALL,
     adam_in_place_doc},
    {"adam_into", (PyCFunction)(void (*)(void))py_adam_into, METH_FASTCALL, adam_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fused",
    "Adam's update as one compiled loop (built from _fused.c when a C compiler is present).",
    0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fused(void) { return PyModule_Create(&module); }
