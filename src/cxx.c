/* SPDX-License-Identifier: MIT */
/*
 * C++'s operator new and operator delete, every form (plain, array,
 * nothrow, sized, aligned, aligned+sized, aligned+nothrow: the 20
 * functions libstdc++ exports), written in C under their mangled names so
 * that the drop-in library (libtidemalloc.so and libtidemalloc.a) serves
 * C++ programs without depending on libstdc++.  The prefixed builds have
 * none of them.
 *
 * C++'s rules, kept:
 *   - new never returns NULL: when the allocation fails it calls the
 *     installed new_handler and tries again, for as long as there is one;
 *     with none it throws std::bad_alloc.
 *   - the nothrow forms run the same loop but return NULL where the
 *     others throw.
 *   - new(0) returns a unique pointer (malloc(0) does).
 *
 * libstdc++ is reached through two weak references, so a C program that
 * has no libstdc++ loads and runs without it:
 *   std::get_new_handler()  (_ZSt15get_new_handlerv) for the handler;
 *   std::__throw_bad_alloc() (_ZSt17__throw_bad_allocv) to throw.
 * When a C++ program uses libstdc++.so both are found at load time.  In a
 * static link (libstdc++.a) a weak reference does not pull a member out
 * of an archive: get_new_handler is there whenever the program can have
 * installed a handler (set_new_handler lives in the same member), and
 * __throw_bad_alloc whenever the program uses the standard containers or
 * strings (their length errors live in its member).  A program with
 * neither gets "tidemalloc: operator new(): out of memory" and abort()
 * instead of the exception; linking with -Wl,-u,_ZSt17__throw_bad_allocv
 * makes sure it is there.  Likewise a library that dlopen()s libstdc++
 * after tidemalloc was loaded (libtidemalloc is linked -z now) sees no
 * handler and aborts instead of throwing.
 *
 * A new_handler that throws from inside a nothrow new: the exception
 * passes through this C code (it has unwind tables) to the caller, where
 * libstdc++'s own nothrow new would have caught it and returned NULL.
 * The usual handlers -- free a reserve and return, or abort -- behave
 * the same as with libstdc++.
 *
 * Sized delete: the size the compiler passes must not be larger than the
 * block's usable size, else "tidemalloc: operator delete(): size larger
 * than the block" and abort (a delete through the wrong type, or of a
 * pointer that is not the start of its object).  The free itself needs
 * the chunk header in any case, so the size is checked, not trusted.
 */
#include "chunk.h"
#include "debug.h"

#if TIDE_STD_NAMES

typedef void (*new_handler_fn)(void);

#define CXX_WEAK __attribute__((weak, visibility("default")))
extern new_handler_fn cxx_get_new_handler(void) __asm__("_ZSt15get_new_handlerv") CXX_WEAK;
extern void cxx_throw_bad_alloc(void) __asm__("_ZSt17__throw_bad_allocv") CXX_WEAK __attribute__((noreturn));

/* 0: no alignment asked for beyond malloc's. */
static void *allocate(size_t n, size_t align) {
  return align <= CHUNK_ALIGN ? tide_malloc(n) : tide_memalign(align, n);
}

/* The allocation failed: the handler loop, then NULL (nothrow) or the
 * exception. */
static TIDE_NOINLINE void *new_failed(size_t n, size_t align, bool nothrow) {
  for (;;) {
    new_handler_fn handler = cxx_get_new_handler ? cxx_get_new_handler() : NULL;
    if (!handler) {
      if (nothrow)
        return NULL;
      if (cxx_throw_bad_alloc)
        cxx_throw_bad_alloc();
      tide_fatal("operator new", "out of memory");
    }
    handler();
    void *p = allocate(n, align);
    if (p)
      return p;
  }
}

static inline void *new_impl(size_t n, size_t align, bool nothrow) {
  void *p = allocate(n, align);
  if (likely(p != NULL))
    return p;
  return new_failed(n, align, nothrow);
}

/* The block's usable size, read without touching freed memory: a pointer
 * 16 bytes into a page may be an mmapped block that is gone already, and
 * malloc_usable_size looks it up before it reads the header. */
static TIDE_NOINLINE size_t usable_checked(void *p) { return tide_malloc_usable_size(p); }

static inline void check_size(void *p, size_t n) {
  if (p == NULL)
    return;
  size_t usable;
  if (unlikely(((uintptr_t)p & 4095) == CHUNK_HDR)) {
    usable = usable_checked(p);
  } else {
    if (unlikely(!aligned_ok(p)))
      tide_fatal("operator delete", "invalid pointer (misaligned)");
    /* debug mode: what was asked for, as free_sized has it */
    usable = unlikely(tide_debug_on) ? debug_usable_size(p) : chunk_usable(mem2chunk(p));
  }
  if (unlikely(n > usable))
    tide_fatal("operator delete", "size larger than the block");
}

static inline void check_alignment(void *p, size_t align) {
  if (unlikely(((uintptr_t)p & (align - 1)) != 0))
    tide_fatal("operator delete", "pointer does not have the stated alignment");
}

/* Declarations with the mangled names (-Wmissing-prototypes wants them). */
#define CXX_FN(ret, name, mangled, ...)                                                                      \
  TIDE_EXPORT ret name(__VA_ARGS__) __asm__(mangled);                                                        \
  TIDE_EXPORT ret name(__VA_ARGS__)

/* std::nothrow_t is passed by reference and never read. */
typedef const void *nothrow_ref;

/* operator new / new[] */
CXX_FN(void *, cxx_new, "_Znwm", size_t n) { return new_impl(n, 0, false); }
CXX_FN(void *, cxx_new_array, "_Znam", size_t n) { return new_impl(n, 0, false); }
CXX_FN(void *, cxx_new_nothrow, "_ZnwmRKSt9nothrow_t", size_t n, nothrow_ref t) {
  (void)t;
  return new_impl(n, 0, true);
}
CXX_FN(void *, cxx_new_array_nothrow, "_ZnamRKSt9nothrow_t", size_t n, nothrow_ref t) {
  (void)t;
  return new_impl(n, 0, true);
}
CXX_FN(void *, cxx_new_aligned, "_ZnwmSt11align_val_t", size_t n, size_t align) {
  return new_impl(n, align, false);
}
CXX_FN(void *, cxx_new_array_aligned, "_ZnamSt11align_val_t", size_t n, size_t align) {
  return new_impl(n, align, false);
}
CXX_FN(void *, cxx_new_aligned_nothrow, "_ZnwmSt11align_val_tRKSt9nothrow_t", size_t n, size_t align,
       nothrow_ref t) {
  (void)t;
  return new_impl(n, align, true);
}
CXX_FN(void *, cxx_new_array_aligned_nothrow, "_ZnamSt11align_val_tRKSt9nothrow_t", size_t n, size_t align,
       nothrow_ref t) {
  (void)t;
  return new_impl(n, align, true);
}

/* operator delete / delete[] */
CXX_FN(void, cxx_delete, "_ZdlPv", void *p) { tide_free(p); }
CXX_FN(void, cxx_delete_array, "_ZdaPv", void *p) { tide_free(p); }
CXX_FN(void, cxx_delete_nothrow, "_ZdlPvRKSt9nothrow_t", void *p, nothrow_ref t) {
  (void)t;
  tide_free(p);
}
CXX_FN(void, cxx_delete_array_nothrow, "_ZdaPvRKSt9nothrow_t", void *p, nothrow_ref t) {
  (void)t;
  tide_free(p);
}
CXX_FN(void, cxx_delete_sized, "_ZdlPvm", void *p, size_t n) {
  check_size(p, n);
  tide_free(p);
}
CXX_FN(void, cxx_delete_array_sized, "_ZdaPvm", void *p, size_t n) {
  check_size(p, n);
  tide_free(p);
}
CXX_FN(void, cxx_delete_aligned, "_ZdlPvSt11align_val_t", void *p, size_t align) {
  check_alignment(p, align);
  tide_free(p);
}
CXX_FN(void, cxx_delete_array_aligned, "_ZdaPvSt11align_val_t", void *p, size_t align) {
  check_alignment(p, align);
  tide_free(p);
}
CXX_FN(void, cxx_delete_aligned_nothrow, "_ZdlPvSt11align_val_tRKSt9nothrow_t", void *p, size_t align,
       nothrow_ref t) {
  (void)t;
  check_alignment(p, align);
  tide_free(p);
}
CXX_FN(void, cxx_delete_array_aligned_nothrow, "_ZdaPvSt11align_val_tRKSt9nothrow_t", void *p, size_t align,
       nothrow_ref t) {
  (void)t;
  check_alignment(p, align);
  tide_free(p);
}
CXX_FN(void, cxx_delete_sized_aligned, "_ZdlPvmSt11align_val_t", void *p, size_t n, size_t align) {
  check_alignment(p, align);
  check_size(p, n);
  tide_free(p);
}
CXX_FN(void, cxx_delete_array_sized_aligned, "_ZdaPvmSt11align_val_t", void *p, size_t n, size_t align) {
  check_alignment(p, align);
  check_size(p, n);
  tide_free(p);
}

#endif /* TIDE_STD_NAMES */
