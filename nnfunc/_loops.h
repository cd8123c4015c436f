/* What nnfunc's compiled loops (nnfunc/optim/_fused.c, nnfunc/_xent.c) share: the
 * headers, `restrict` on MSVC, and CLONES, which compiles a loop once per instruction
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

#endif
