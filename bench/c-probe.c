/* The baseline for a traced fire, as a small C program (see c-probe.h).
 * Prints `READY <pid>`, waits for a line on stdin, waits for a tracer to set
 * the semaphore, fires N times, prints the ns per fire. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "c-probe.h"

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    char text[] = "hello";
    char line[16];
    printf("READY %d\n", getpid());
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 1;
    /* The tracer says it is attaching before it has: wait for the semaphore. */
    for (int i = 0; i < 3000 && !cprobe_fire_semaphore; i++) usleep(10000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        if (cprobe_fire_semaphore) CPROBE_FIRE(i, text);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("%.1f\n", ns / n);
    return 0;
}
