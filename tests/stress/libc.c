/*
 * Reliability under libc: the thread, fork, signal and cancellation
 * patterns glibc's own malloc survives.  libc calls malloc and free with
 * its own locks held (pthread_join, stdio, fork), so every scenario here
 * runs with the drop-in: as a plain program under LD_PRELOAD (run.sh) and
 * linked with libtidemalloc.a (-std).
 *
 * Each scenario runs in a child process under a deadline; a child that
 * is still running at the deadline is killed and counts as a failure
 * (the deadlocks this file was written for hang forever).  The deadline
 * is kept by polling waitpid, not by alarm(), since one scenario uses
 * SIGALRM itself.
 *
 *   join-churn     create/join churn of barrier-synchronised threads, the
 *                  dead threads' TLS freed by pthread_join under glibc's
 *                  stack-cache lock (issue 11, item 1)
 *   fork-stdio     threads forking beside threads in getline (realloc
 *                  under their FILE lock) and fflush(NULL) (item 2)
 *   fork-signal    a single-threaded process whose SIGUSR1 handler forks
 *                  while the interrupted code is inside malloc (item 3)
 *   fork-in-fork   SIGALRM from a child while the parent is inside fork;
 *                  the handler forks again (item 4)
 *   oom-exit       9 threads fill the address space with aligned_alloc
 *                  under RLIMIT_AS, free it all, and exit (item 5)
 *   errno          free keeps errno when munmap fails (seccomp makes it
 *                  fail), posix_memalign leaves ENOMEM (item 6)
 *   cancel         malloc_stats under a pending cancellation prints in
 *                  full; the thread is cancelled afterwards (item 7)
 *   fork-atfork    a pthread_atfork prepare handler registered before
 *                  tidemalloc's (so it runs after ours, while we hold our
 *                  locks) calls malloc, in a process with threads
 *   bg-thread      the background thread is made when the program makes
 *                  a thread (pthread_create; thrd_create with the shared
 *                  library, argument "thrd"), and ends once the program
 *                  has joined its threads, so the kernel sees one thread
 *                  again (unshare(CLONE_NEWUSER) needs that)
 *
 * Children that fork report a grandchild that did not exit 0 as a failure
 * of their own.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <threads.h>
#include <time.h>

#include "harness.h"

#ifndef MiB
#define MiB ((size_t)1 << 20)
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run fn in a child; stderr of the child goes to err (NUL-terminated).
 * Returns the wait status, or -1 when the child was still running after
 * limit_s seconds (it is then killed). */
static int run_deadline(int (*fn)(void), double limit_s, char *err, size_t errcap) {
  int fds[2];
  fflush(stdout);
  fflush(stderr);
  if (pipe(fds) != 0)
    return -2;
  pid_t pid = fork();
  if (pid < 0)
    return -2;
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0)
      dup2(fd, 1);
    _exit(fn());
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  size_t n = 0;
  int status = 0;
  double end = now_s() + limit_s;
  bool done = false;
  while (!done) {
    ssize_t r;
    while (n + 1 < errcap && (r = read(fds[0], err + n, errcap - 1 - n)) > 0)
      n += (size_t)r;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      done = true;
    } else if (now_s() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      status = -1;
      done = true;
    } else {
      usleep(10000);
    }
  }
  ssize_t r;
  while (n + 1 < errcap && (r = read(fds[0], err + n, errcap - 1 - n)) > 0)
    n += (size_t)r;
  err[n] = '\0';
  close(fds[0]);
  return status;
}

static char errbuf[16384];

/* One scenario, rounds times (each a fresh child). */
static void scenario(const char *name, int (*fn)(void), int rounds, double limit_s) {
  int hung = 0, bad = 0;
  for (int i = 0; i < rounds; i++) {
    int st = run_deadline(fn, limit_s, errbuf, sizeof errbuf);
    if (st == -1) {
      hung++;
    } else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      if (bad++ == 0)
        NOTE("%s round %d: %s; stderr: %.300s", name, i, th_status_str(st), errbuf);
    }
  }
  CHECK(hung == 0, "%s: no hang in %d rounds of %.0f s at most (%d hung)", name, rounds, limit_s, hung);
  CHECK(bad == 0, "%s: every round exits 0 (%d did not)", name, bad);
}

/* ---------------------------------------------------- 1. join churn */

static pthread_barrier_t *churn_barrier;
static atomic_int churn_bad;

static void *churn_inner(void *arg) {
  int id = (int)(intptr_t)arg;
  void *p = NULL;
  if (id % 2 == 0)
    p = malloc(32);
  pthread_barrier_wait(churn_barrier + id / 4);
  if (id % 2 == 1)
    p = malloc(32);
  if (!p)
    atomic_fetch_add(&churn_bad, 1);
  else
    memset(p, id, 32);
  free(p);
  return NULL;
}

static double churn_until;

static void *churn_outer(void *arg) {
  int base = (int)(intptr_t)arg * 4;
  while (now_s() < churn_until) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
      if (pthread_create(&t[i], NULL, churn_inner, (void *)(intptr_t)(base + i)) != 0)
        return (void *)1;
    for (int i = 0; i < 4; i++)
      pthread_join(t[i], NULL);
  }
  return NULL;
}

static int join_churn(void) {
  mallopt(M_ARENA_MAX, 8);
  static pthread_barrier_t b[2];
  churn_barrier = b;
  pthread_barrier_init(&b[0], NULL, 4);
  pthread_barrier_init(&b[1], NULL, 4);
  churn_until = now_s() + 2.0;
  pthread_t o[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&o[i], NULL, churn_outer, (void *)(intptr_t)i);
  void *r0, *r1;
  pthread_join(o[0], &r0);
  pthread_join(o[1], &r1);
  return r0 || r1 || atomic_load(&churn_bad) ? 1 : 0;
}

/* ---------------------------------------------------- 2. fork beside stdio */

static atomic_int stdio_stop;
static char stdio_path[64];

static void *stdio_reader(void *arg) {
  (void)arg;
  FILE *f = fopen(stdio_path, "r");
  if (!f)
    return (void *)1;
  while (!atomic_load(&stdio_stop)) {
    char *line = NULL;
    size_t cap = 0;
    /* A new buffer every line: getline grows it with realloc while it
     * holds the FILE's lock. */
    while (getline(&line, &cap, f) > 0) {
      free(line);
      line = NULL;
      cap = 0;
      if (atomic_load(&stdio_stop))
        break;
    }
    free(line);
    rewind(f);
  }
  fclose(f);
  return NULL;
}

static void *stdio_flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&stdio_stop))
    fflush(NULL);
  return NULL;
}

/* A forked child: allocates, frees, exits 0 (anything else is a bug). */
static int waited_ok(pid_t p) {
  int st = 0;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR)
      return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void *stdio_forker(void *arg) {
  (void)arg;
  while (!atomic_load(&stdio_stop)) {
    pid_t p = fork();
    if (p == 0) {
      void *q = malloc(100);
      free(q);
      _exit(q ? 0 : 1);
    }
    if (p > 0 && !waited_ok(p))
      return (void *)1;
  }
  return NULL;
}

static int fork_stdio(void) {
  snprintf(stdio_path, sizeof stdio_path, "/tmp/tide-libc-%d.txt", (int)getpid());
  FILE *w = fopen(stdio_path, "w");
  if (!w)
    return 2;
  for (int i = 0; i < 400; i++) {
    for (int j = 0; j < (i * 37) % 3000 + 1; j++)
      fputc('a' + j % 26, w);
    fputc('\n', w);
  }
  fclose(w);
  pthread_t t[13];
  int n = 0;
  for (int i = 0; i < 8; i++)
    pthread_create(&t[n++], NULL, stdio_reader, NULL);
  pthread_create(&t[n++], NULL, stdio_flusher, NULL);
  for (int i = 0; i < 4; i++)
    pthread_create(&t[n++], NULL, stdio_forker, NULL);
  usleep(2000000);
  atomic_store(&stdio_stop, 1);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad |= r != NULL;
  }
  unlink(stdio_path);
  return bad;
}

/* ---------------------------------------------------- 3. fork in a handler */

static volatile sig_atomic_t handler_forks, handler_bad;

static void fork_handler(int sig) {
  (void)sig;
  int saved = errno;
  pid_t p = fork();
  if (p == 0)
    _exit(0);
  if (p > 0) {
    if (!waited_ok(p))
      handler_bad++;
    handler_forks++;
  }
  errno = saved;
}

/* Another process (not a thread: the process must stay single-threaded)
 * sends SIGUSR1 every 100 us while we allocate. */
static int fork_signal(void) {
  struct sigaction sa = {0};
  sa.sa_handler = fork_handler;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  pid_t me = getpid();
  pid_t sender = fork();
  if (sender == 0) {
    for (int i = 0; i < 3000 && kill(me, SIGUSR1) == 0; i++)
      usleep(100);
    _exit(0);
  }
  void *held[256] = {0};
  unsigned x = 12345;
  double end = now_s() + 0.5;
  while (now_s() < end) {
    for (int k = 0; k < 1000; k++) {
      x = x * 1103515245u + 12345u;
      unsigned i = (x >> 8) & 255;
      free(held[i]);
      held[i] = malloc((x >> 16) % 3000 + 1);
    }
  }
  for (int i = 0; i < 256; i++)
    free(held[i]);
  kill(sender, SIGKILL);
  waitpid(sender, NULL, 0);
  return handler_forks > 0 && handler_bad == 0 ? 0 : 3;
}

/* ---------------------------------------------------- 4. fork inside fork */

static void alarm_handler(int sig) {
  (void)sig;
  int saved = errno;
  pid_t p = fork();
  if (p == 0)
    _exit(0);
  if (p > 0 && !waited_ok(p))
    handler_bad++;
  errno = saved;
}

static int fork_in_fork(void) {
  struct sigaction sa = {0};
  sa.sa_handler = alarm_handler;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  pid_t parent = getpid();
  for (int i = 0; i < 300; i++) {
    void *p = malloc((size_t)(i * 53 % 5000) + 1);
    pid_t c = fork();
    if (c == 0) {
      kill(parent, SIGALRM);
      _exit(0);
    }
    if (c > 0 && !waited_ok(c))
      return 4;
    free(p);
  }
  return handler_bad ? 5 : 0;
}

/* ---------------------------------------------------- 5. out of memory, exit */

static void *oom_worker(void *arg) {
  (void)arg;
  void **list = NULL;
  size_t n = 0, i = 0;
  for (;;) {
    size_t sz = (size_t)(i++ * 7919 % 60000) + 16;
    void **b = aligned_alloc(64, (sz + 63) & ~(size_t)63);
    if (!b)
      break;
    b[0] = list; /* a list through the blocks: no other memory needed */
    list = b;
    n++;
  }
  while (list) {
    void **next = list[0];
    free(list);
    list = next;
  }
  return (void *)(uintptr_t)(n == 0);
}

static int oom_exit(void) {
  struct rlimit rl = {200 * MiB, 200 * MiB};
  if (setrlimit(RLIMIT_AS, &rl) != 0)
    return 2;
  pthread_t t[9];
  int started = 0;
  for (int i = 0; i < 9; i++)
    if (pthread_create(&t[i], NULL, oom_worker, NULL) == 0)
      started++;
    else
      t[i] = 0;
  int none = 0;
  for (int i = 0; i < 9; i++) {
    void *r = NULL;
    if (t[i])
      pthread_join(t[i], &r);
    none += r != NULL; /* a worker got nothing at all */
  }
  return started > 0 && none == 0 ? 0 : 3;
}

/* ---------------------------------------------------- 6. errno */

/* munmap and madvise fail with EPERM from now on (seccomp), so a free
 * that unmaps or purges meets a failing system call. */
static int block_munmap(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_munmap, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int errno_kept(void) {
  int bad = 0;
  /* A failing posix_memalign leaves errno as glibc does: ENOMEM. */
  void *p = NULL;
  errno = 0;
  int r = posix_memalign(&p, 64, SIZE_MAX - 4096);
  if (r != ENOMEM || errno != ENOMEM) {
    fprintf(stderr, "posix_memalign: returned %d, errno %d\n", r, errno);
    bad |= 1;
  }
  /* Blocks that free will unmap: over 128 MiB, and (below) with a glibc
   * mmap setting, so nothing is kept for the decay. */
  char *big = malloc(200 * MiB);
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  char *mid = malloc(1 * MiB);
  char *top_chunks[64];
  for (int i = 0; i < 64; i++)
    top_chunks[i] = malloc(64 * 1024);
  /* 40 MB between live blocks: freeing them purges pages (madvise) in a
   * process without the background thread, and wakes the thread else. */
  enum { NMID = 400 };
  static char *mids[NMID], *guards[NMID];
  for (int i = 0; i < NMID; i++) {
    mids[i] = malloc(100 * 1024);
    guards[i] = malloc(64);
    if (mids[i])
      memset(mids[i], 1, 100 * 1024);
  }
  if (!big || !mid || block_munmap() != 0)
    return 2;
  errno = 4242;
  free(big);
  if (errno != 4242) {
    fprintf(stderr, "free of 200 MiB: errno %d\n", errno);
    bad |= 2;
  }
  errno = 4243;
  free(mid);
  if (errno != 4243) {
    fprintf(stderr, "free of 1 MiB: errno %d\n", errno);
    bad |= 4;
  }
  errno = 4244;
  for (int i = 63; i >= 0; i--)
    free(top_chunks[i]);
  if (errno != 4244) {
    fprintf(stderr, "frees at the top: errno %d\n", errno);
    bad |= 8;
  }
  errno = 4245;
  for (int i = 0; i < NMID; i++)
    free(mids[i]);
  usleep(400000); /* the background thread, if any, purges meanwhile */
  for (int i = 0; i < NMID; i++)
    free(guards[i]);
  if (errno != 4245) {
    fprintf(stderr, "frees that purge pages: errno %d\n", errno);
    bad |= 16;
  }
  return bad;
}

/* ---------------------------------------------------- 7. cancellation */

static atomic_int cancel_step;

static void *stats_thread(void *arg) {
  (void)arg;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
  atomic_store(&cancel_step, 1);
  while (atomic_load(&cancel_step) != 2) /* main sends the cancel */
    ;
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
  malloc_stats(); /* the cancel is pending: output must still appear */
  atomic_store(&cancel_step, 3);
  pthread_testcancel();
  return NULL;
}

static int cancel_stats(void) {
  void *keep = malloc(1000);
  pthread_t t;
  pthread_create(&t, NULL, stats_thread, NULL);
  while (atomic_load(&cancel_step) != 1)
    ;
  pthread_cancel(t);
  atomic_store(&cancel_step, 2);
  void *r;
  pthread_join(t, &r);
  free(keep);
  if (r != PTHREAD_CANCELED)
    return 4;
  return atomic_load(&cancel_step) == 3 ? 0 : 5;
}

static void check_cancel(void) {
  int st = run_deadline(cancel_stats, 20, errbuf, sizeof errbuf);
  CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "cancel: malloc_stats returns under a pending cancellation, the thread is cancelled after (%s)",
        st < 0 ? "hung" : th_status_str(st));
  CHECK(strstr(errbuf, "Total (incl. mmap):") && strstr(errbuf, "max mmap bytes"),
        "cancel: malloc_stats printed in full (%zu bytes of output)", strlen(errbuf));
}

/* ---------------------------------------------------- fork beside atfork */

/* Registered before anything allocates (a constructor that runs before
 * the library's own, when tidemalloc is linked in), so its prepare
 * handler runs after tidemalloc's. */
static void atfork_prepare(void) { free(malloc(50)); }
static void atfork_parent(void) { free(malloc(70)); }
static void atfork_child(void) { free(malloc(90)); }
__attribute__((constructor(101))) static void register_early(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int fork_atfork(void) {
  pthread_t t;
  atomic_store(&stdio_stop, 0);
  pthread_create(&t, NULL, stdio_flusher, NULL); /* the process has threads */
  int bad = 0;
  for (int i = 0; i < 50 && !bad; i++) {
    pid_t p = fork();
    if (p == 0)
      _exit(0);
    bad = p < 0 || !waited_ok(p);
  }
  atomic_store(&stdio_stop, 1);
  pthread_join(t, NULL);
  return bad;
}

/* ---------------------------------------------------- the thread's life */

static int threads_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1)
      break;
  if (f)
    fclose(f);
  return n;
}

static atomic_int hold_go;
static void *hold(void *arg) {
  (void)arg;
  while (!atomic_load(&hold_go))
    usleep(1000);
  return NULL;
}
static int hold_c11(void *arg) {
  hold(arg);
  return 0;
}

/* Frees work for the background thread (16 MB between live blocks)
 * while another thread lives; returns the threads then alive. */
static int threads_with_work(void) {
  enum { N = 160 };
  static char *b[N], *g[N];
  for (int i = 0; i < N; i++) {
    b[i] = malloc(100 * 1024);
    g[i] = malloc(32);
    memset(b[i], 3, 100 * 1024);
  }
  for (int i = 0; i < N; i++)
    free(b[i]);
  usleep(100000);
  int n = threads_now();
  for (int i = 0; i < N; i++)
    free(g[i]);
  return n;
}

static bool want_thrd;
static int bg_lifecycle(void) {
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  int extra = bg && strcmp(bg, "0") == 0 ? 0 : 1; /* the background thread */
  int bad = 0;
  pthread_t t;
  atomic_store(&hold_go, 0);
  pthread_create(&t, NULL, hold, NULL);
  int n = threads_with_work();
  if (n != 2 + extra) {
    fprintf(stderr, "with one thread of the program's: %d threads (want %d)\n", n, 2 + extra);
    bad |= 1;
  }
  atomic_store(&hold_go, 1);
  pthread_join(t, NULL);
  if (!bg || strcmp(bg, "2") != 0) { /* with 2 it stays for good */
    int alone = 0;
    for (int i = 0; i < 300 && (alone = threads_now()) != 1; i++)
      usleep(10000);
    if (alone != 1) {
      fprintf(stderr, "3 s after the join: %d threads (want 1)\n", alone);
      bad |= 2;
    }
  }
  if (want_thrd) {
    thrd_t c;
    atomic_store(&hold_go, 0);
    thrd_create(&c, hold_c11, NULL);
    n = threads_with_work();
    if (n != 2 + extra) {
      fprintf(stderr, "with one C11 thread: %d threads (want %d)\n", n, 2 + extra);
      bad |= 4;
    }
    atomic_store(&hold_go, 1);
    thrd_join(c, NULL);
  }
  return bad;
}

int main(int argc, char **argv) {
  int scale = argc > 1 ? atoi(argv[1]) : 1;
  if (scale < 1)
    scale = 1;
  want_thrd = argc > 2 && strcmp(argv[2], "thrd") == 0;
  scenario("join-churn", join_churn, 2 * scale, 30);
  scenario("fork-stdio", fork_stdio, 1 * scale, 30);
  /* With the background thread made at start-up the process has two
   * threads, and glibc's fork is not signal-safe there (it takes its
   * atfork lock), with any malloc: no point running these. */
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  if (bg && strcmp(bg, "2") == 0) {
    NOTE("TIDEMALLOC_PURGE_THREAD=2: fork-signal and fork-in-fork skipped (the process is not single-threaded)");
  } else {
    scenario("fork-signal", fork_signal, 16 * scale, 20);
    scenario("fork-in-fork", fork_in_fork, 30 * scale, 20);
  }
  scenario("oom-exit", oom_exit, 2 * scale, 60);
  scenario("fork-atfork", fork_atfork, 2 * scale, 20);
  int st = run_deadline(errno_kept, 30, errbuf, sizeof errbuf);
  CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "errno: kept by free when munmap fails, ENOMEM after posix_memalign (%s%s%.200s)",
        st < 0 ? "hung" : th_status_str(st), errbuf[0] ? "; " : "", errbuf);
  check_cancel();
  st = run_deadline(bg_lifecycle, 30, errbuf, sizeof errbuf);
  CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "bg-thread: made beside the program's first thread%s, gone once it "
        "was joined (%s%s%.200s)", want_thrd ? " (and a C11 thread's)" : "", st < 0 ? "hung" : th_status_str(st),
        errbuf[0] ? "; " : "", errbuf);
  TEST_MAIN_END("stress/libc");
}
