/* nnfunc._elementwise: a layer's bias add and ReLU's two passes as compiled loops.
 *
 * For element i (y, b, x, dy and out C-contiguous, of one format, 'f' or 'd'):
 *
 *     add_row(y, b):            y[r, j] = y[r, j] + b[j]      (b broadcast over y's rows)
 *     relu(x, out):             out[i]  = x[i] if !(x[i] <= 0) else +0
 *     relu_backward(y, dy, out): out[i] = dy[i] * (y[i] > 0 ? 1 : 0)
 *
 * These are NumPy's results bit for bit: `y += b`; `np.maximum(x, 0)`, which keeps a
 * NaN (with its sign) and gives +0 for -0; and `dy * (y > 0)`, whose 0 keeps the sign
 * of the product (-0 for a negative dy, NaN for an infinite or NaN dy). NumPy makes
 * two or three passes for each (the broadcast add walks b once per row; the backward
 * pass writes a boolean mask, then multiplies by it); each loop here makes one.
 *
 * An argument of another kind (not a C-contiguous buffer of 'f' or 'd', formats or
 * lengths that differ, an output overlapping an input) makes the call return
 * NotImplemented without writing anything; the caller then runs NumPy's expression.
 */
#include "_loops.h"

#define LOOPS(T)                                                                         \
    CLONES static void add_row_##T(Py_ssize_t rows, Py_ssize_t cols, T *restrict y,      \
                                   const T *restrict b) {                                \
        for (Py_ssize_t r = 0; r < rows; r++) {                                          \
            T *row = y + r * cols;                                                       \
            for (Py_ssize_t j = 0; j < cols; j++) {                                      \
                row[j] = row[j] + b[j];                                                  \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    CLONES static void relu_##T(Py_ssize_t n, const T *restrict x, T *restrict out) {   \
        for (Py_ssize_t i = 0; i < n; i++) {                                             \
            const T xi = x[i];                                                           \
            out[i] = !(xi <= 0) ? xi : (T)0;                                             \
        }                                                                                \
    }                                                                                    \
    CLONES static void relu_backward_##T(Py_ssize_t n, const T *restrict y,             \
                                         const T *restrict dy, T *restrict out) {        \
        for (Py_ssize_t i = 0; i < n; i++) {                                             \
            out[i] = dy[i] * (y[i] > 0 ? (T)1 : (T)0);                                   \
        }                                                                                \
    }

LOOPS(float)
LOOPS(double)

enum { ADD_ROW, RELU, RELU_BACKWARD };

/* Each entry point's name, argument count and written argument (the others are read). */
static const struct {
    const char *name;
    int count, written;
} KINDS[] = {{"add_row", 2, 0}, {"relu", 2, 1}, {"relu_backward", 3, 2}};

/* Take the buffers of a call's arguments: all C-contiguous, aligned, of one format 'f'
 * or 'd', the written one writable. Returns the itemsize, or 0 (views released, no
 * exception) where they are not all so. */
static Py_ssize_t take(PyObject *const *args, int count, int written, Py_buffer *views) {
    int taken = 0, fit = 1;
    for (; taken < count && fit; taken++) {
        const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                          (taken == written ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[taken], &views[taken], flags) < 0) {
            PyErr_Clear();
            break;
        }
        const Py_buffer *v = &views[taken];
        fit = (strcmp(v->format, "f") == 0 || strcmp(v->format, "d") == 0) &&
              strcmp(v->format, views[0].format) == 0 &&
              (uintptr_t)v->buf % (uintptr_t)v->itemsize == 0;
    }
    if (count > 0 && taken == count && fit) {
        return views[0].itemsize;
    }
    release(views, taken);
    return 0;
}

/* Whether the loop of `kind` can take the buffers: add_row a 1-D, non-empty b the
 * length of y's last axis; the others inputs of out's length; no output overlapping
 * an input. */
static int fits(int kind, const Py_buffer *v) {
    const int count = KINDS[kind].count, written = KINDS[kind].written;
    for (int i = 0; i < count; i++) {
        if (i != written && overlap(&v[i], &v[written])) {
            return 0;
        }
    }
    if (kind == ADD_ROW) {
        const Py_ssize_t cols = v[1].len / v[1].itemsize;
        return cols > 0 && v[1].ndim == 1 && v[0].ndim >= 1 && v[0].shape[v[0].ndim - 1] == cols;
    }
    return v[0].len == v[written].len && v[1].len == v[written].len;
}

/* The loop of `kind` over buffers that fit. */
static void loop(int kind, Py_ssize_t size, const Py_buffer *v) {
    const Py_ssize_t n = v[0].len / size;
    if (kind == ADD_ROW) {
        const Py_ssize_t cols = v[1].len / size;
        size == 4 ? add_row_float(n / cols, cols, v[0].buf, v[1].buf)
                  : add_row_double(n / cols, cols, v[0].buf, v[1].buf);
    } else if (kind == RELU) {
        size == 4 ? relu_float(n, v[0].buf, v[1].buf) : relu_double(n, v[0].buf, v[1].buf);
    } else {
        size == 4 ? relu_backward_float(n, v[0].buf, v[1].buf, v[2].buf)
                  : relu_backward_double(n, v[0].buf, v[1].buf, v[2].buf);
    }
}

/* An entry point: None once the loop ran, NotImplemented where it cannot take the
 * arguments (nothing written), NULL with TypeError for a wrong argument count. */
static PyObject *call(int kind, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != KINDS[kind].count) {
        PyErr_Format(PyExc_TypeError, "nnfunc._elementwise.%s takes %d arguments, got %zd",
                     KINDS[kind].name, KINDS[kind].count, nargs);
        return NULL;
    }
    Py_buffer v[3];
    const Py_ssize_t size = take(args, KINDS[kind].count, KINDS[kind].written, v);
    if (size == 0) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *result = Py_NotImplemented;
    if (fits(kind, v)) {
        PyThreadState *state = v[0].len / size >= RELEASE_GIL_FROM ? PyEval_SaveThread() : NULL;
        loop(kind, size, v);
        if (state != NULL) {
            PyEval_RestoreThread(state);
        }
        result = Py_None;
    }
    release(v, KINDS[kind].count);
    Py_INCREF(result);
    return result;
}

PyDoc_STRVAR(add_row_doc, "add_row(y, b)\n--\n\n"
                          "y += b in place, b (1-D) broadcast over y's last axis; None, or "
                          "NotImplemented.");

static PyObject *py_add_row(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return call(ADD_ROW, args, nargs);
}

PyDoc_STRVAR(relu_doc, "relu(x, out)\n--\n\n"
                       "max(x, 0) written into out (NumPy's bits); None, or NotImplemented.");

static PyObject *py_relu(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return call(RELU, args, nargs);
}

PyDoc_STRVAR(relu_backward_doc,
             "relu_backward(y, dy, out)\n--\n\n"
             "dy * (y > 0) written into out (NumPy's bits); None, or NotImplemented.");

static PyObject *py_relu_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return call(RELU_BACKWARD, args, nargs);
}

static PyMethodDef methods[] = {
    {"add_row", (PyCFunction)(void (*)(void))py_add_row, METH_FASTCALL, add_row_doc},
    {"relu", (PyCFunction)(void (*)(void))py_relu, METH_FASTCALL, relu_doc},
    {"relu_backward", (PyCFunction)(void (*)(void))py_relu_backward, METH_FASTCALL,
     relu_backward_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_elementwise",
    "A layer's bias add and ReLU's forward and backward passes as compiled loops.",
    0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__elementwise(void) { return PyModule_Create(&module); }
