/* The baseline for a traced fire: a probe compiled into C the way
 * sys/sdt.h writes one (a stapsdt note, a .probes semaphore checked before
 * firing), but on a 5-byte NOP site, which Linux 6.18 optimises (sys/sdt.h
 * emits a 1-byte NOP). Prints `READY <pid>`, waits for a line on stdin,
 * waits for a tracer to set the semaphore, fires N times, prints the ns per
 * fire. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__attribute__((section(".probes"), used)) volatile unsigned short cprobe_fire_semaphore;

#define CPROBE_FIRE(a, s)                                                         \
    __asm__ __volatile__(                                                         \
        "990: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n"                               \
        ".pushsection .note.stapsdt, \"?\", \"note\"\n"                           \
        ".balign 4\n"                                                             \
        ".4byte 992f-991f, 994f-993f, 3\n"                                        \
        "991: .asciz \"stapsdt\"\n"                                               \
        "992: .balign 4\n"                                                        \
        "993: .8byte 990b, _.stapsdt.base, cprobe_fire_semaphore\n"               \
        ".asciz \"cprobe\"\n"                                                     \
        ".asciz \"fire\"\n"                                                       \
        ".asciz \"-8@%0 8@%1\"\n"                                                 \
        "994: .balign 4\n"                                                        \
        ".popsection\n"                                                           \
        ".ifndef _.stapsdt.base\n"                                                \
        ".pushsection .stapsdt.base, \"aG\", \"progbits\", .stapsdt.base, comdat\n" \
        ".weak _.stapsdt.base\n"                                                  \
        ".hidden _.stapsdt.base\n"                                                \
        "_.stapsdt.base: .space 1\n"                                              \
        ".size _.stapsdt.base, 1\n"                                               \
        ".popsection\n"                                                           \
        ".endif\n" ::"r"((long)(a)), "r"(s))

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
