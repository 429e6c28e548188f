# SPDX-License-Identifier: MIT
"""Python loads libtidemalloc.so with ctypes (a dlopen with RTLD_LOCAL into
an interpreter that started on glibc's malloc) and allocates through it.

usage: python3 ctypes_load.py LIBRARY VERSION
Prints harness lines and "# pkg/ctypes: N checks, N failed"."""
import ctypes
import sys
import threading

checks = failed = 0


def check(ok, what):
    global checks, failed
    checks += 1
    if not ok:
        failed += 1
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)


path, want_version = sys.argv[1], sys.argv[2]
try:
    lib = ctypes.CDLL(path)
    err = "loaded"
except OSError as e:
    lib, err = None, str(e)
check(lib is not None, "ctypes.CDLL(%s): %s" % (path, err))
if lib is not None:
    lib.tide_version.restype = ctypes.c_char_p
    lib.tide_malloc.restype = ctypes.c_void_p
    lib.tide_malloc.argtypes = [ctypes.c_size_t]
    lib.tide_free.argtypes = [ctypes.c_void_p]
    lib.tide_malloc_usable_size.restype = ctypes.c_size_t
    lib.tide_malloc_usable_size.argtypes = [ctypes.c_void_p]
    lib.tide_heap_check.restype = ctypes.c_int
    v = lib.tide_version().decode()
    check(v == want_version, "tide_version() = %s (want %s)" % (v, want_version))

    def churn(seed, out):
        bad = 0
        blocks = []
        for i in range(20000):
            n = (seed * 7919 + i * 104729) % 5000 + 1
            p = lib.tide_malloc(n)
            if not p or lib.tide_malloc_usable_size(p) < n:
                bad += 1
                continue
            ctypes.memset(p, i & 0xFF, n)
            if ctypes.string_at(p, n) != bytes([i & 0xFF]) * n:
                bad += 1
            blocks.append(p)
            if len(blocks) > 100:
                lib.tide_free(blocks.pop(0))
        for p in blocks:
            lib.tide_free(p)
        out.append(bad)

    results = []
    threads = [threading.Thread(target=churn, args=(k, results)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(results == [0, 0, 0], "3 Python threads allocate, fill, read back and free 20000 blocks each")
    check(lib.tide_heap_check() == 0, "tide_heap_check() after them")
print("# pkg/ctypes: %d checks, %d failed" % (checks, failed), flush=True)
sys.exit(1 if failed else 0)
