/* Test helper: holds thread TID the way another profiler or debugger would, with PTRACE_SEIZE,
 * and with --stop also in a ptrace stop (PTRACE_INTERRUPT); prints "HELD <tracer pid>" and lets go
 * when stdin closes (or when killed: the kernel then detaches). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: tracer TID [--stop]\n"); return 2; }
    pid_t tid = (pid_t)atoi(argv[1]);
    int stop = argc > 2 && strcmp(argv[2], "--stop") == 0;
    if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) { perror("PTRACE_SEIZE"); return 1; }
    if (stop) {
        int status;
        if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 || waitpid(tid, &status, __WALL) != tid) {
            perror("PTRACE_INTERRUPT");
            return 1;
        }
    }
    printf("HELD %d\n", (int)getpid());
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    if (stop) ptrace(PTRACE_DETACH, tid, 0, 0);
    return 0;
}
