/* What nnfunc's compiled loops (nnfunc/optim/_fused.c, nnfunc/_xent.c,
 * nnfunc/_elementwise.c) share: the headers, `restrict` on MSVC, two buffer helpers, and
 * CLONES, which compiles a loop once per instruction
 * set the CPU may have, picked at load time (GCC and Clang on x86-64 Linux with
 * glibc, whose loader resolves the choice; elsewhere the compiler's baseline). */
#ifndef NNFUNC_LOOPS_H
#define NNFUNC_LOOPS_H

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

/* Below this many elements the GIL is kept: releasing it costs more than the loop. */
#define RELEASE_GIL_FROM 16384

/* Release the first `count` of `views`. */
static inline void release(Py_buffer *views, int count) {
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(&views[i]);
    }
}

/* Whether two buffers' bytes overlap. */
static inline int overlap(const Py_buffer *a, const Py_buffer *b) {
    const char *a0 = a->buf, *b0 = b->buf;
    return a0 < b0 + b->len && b0 < a0 + a->len;
}

#endif
