/* SPDX-License-Identifier: MIT */
/*
 * runner — run one benchmark command and report what it cost.
 *
 *   runner [-p PRELOAD] [-t TIMEOUT_S] [-o OUTFILE] -- cmd args...
 *
 * Forks, sets LD_PRELOAD=PRELOAD in the child only (the runner itself
 * always runs on glibc's malloc), redirects the child's stdout to OUTFILE,
 * waits with wait4() and prints one line on stdout:
 *
 *   status=ok|exit:N|signal:N|timeout wall=S user=S sys=S maxrss_kb=N
 *
 * The child runs in its own process group; on timeout the whole group gets
 * SIGKILL, so a hung allocator cannot hang the suite.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static pid_t child_pid;

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  if (child_pid > 0)
    kill(-child_pid, SIGKILL);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

static void usage(void) {
  fprintf(stderr, "usage: runner [-p PRELOAD] [-t TIMEOUT_S] [-o OUTFILE] -- cmd args...\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *preload = NULL, *outfile = NULL;
  unsigned timeout = 0;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc)
      usage();
    if (strcmp(argv[i], "-p") == 0)
      preload = argv[++i];
    else if (strcmp(argv[i], "-t") == 0)
      timeout = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "-o") == 0)
      outfile = argv[++i];
    else
      usage();
  }
  if (i >= argc)
    usage();

  double t0 = now_s();
  child_pid = fork();
  if (child_pid < 0) {
    perror("runner: fork");
    return 2;
  }
  if (child_pid == 0) {
    setpgid(0, 0);
    if (outfile) {
      int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) {
        perror("runner: open");
        _exit(126);
      }
      dup2(fd, 1);
      close(fd);
    }
    if (preload && *preload)
      setenv("LD_PRELOAD", preload, 1);
    else
      unsetenv("LD_PRELOAD");
    execvp(argv[i], argv + i);
    perror("runner: exec");
    _exit(127);
  }
  setpgid(child_pid, child_pid);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  if (timeout)
    alarm(timeout);

  int st = 0;
  struct rusage ru;
  pid_t r;
  do
    r = wait4(child_pid, &st, 0, &ru);
  while (r < 0 && errno == EINTR);
  double wall = now_s() - t0;
  alarm(0);
  if (r < 0) {
    perror("runner: wait4");
    return 2;
  }

  char status[32];
  if (timed_out)
    snprintf(status, sizeof status, "timeout");
  else if (WIFSIGNALED(st))
    snprintf(status, sizeof status, "signal:%d", WTERMSIG(st));
  else if (WEXITSTATUS(st) != 0)
    snprintf(status, sizeof status, "exit:%d", WEXITSTATUS(st));
  else
    snprintf(status, sizeof status, "ok");
  printf("status=%s wall=%.4f user=%.4f sys=%.4f maxrss_kb=%ld\n", status, wall, tv_s(ru.ru_utime), tv_s(ru.ru_stime),
         ru.ru_maxrss);
  return 0;
}
