/* A probe compiled into C the way sys/sdt.h writes one (a stapsdt note, a
 * .probes semaphore checked before firing), but on a 5-byte NOP site, which
 * Linux 6.18 optimises (sys/sdt.h emits a 1-byte NOP). Shared by the
 * benchmark's C program and its N-API addon. */
#ifndef BENCH_C_PROBE_H
#define BENCH_C_PROBE_H

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

#endif
