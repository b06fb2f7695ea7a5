/*
 * Preloaded into the DTrace our tests run (scripts/dtrace, scripts/dtrace-vm):
 * libctf's ctf_dict_close does nothing.
 *
 * Why: DTrace 2.0.7, on a kernel with BTF and no CTF archive, turns the
 * kernel's BTF into CTF when it starts (about 125 000 types here, 1 s). At
 * exit it frees them again through ctf_dict_close, which takes 8 s of CPU
 * on this host and 11 to 13 s in the TCG guest of the DTrace VM, for memory
 * that exit(2) returns anyway; every `dtrace -l` and every dtrace that ends
 * on its own pays it. Nothing DTrace prints or traces depends on it: the
 * dictionaries are only never freed.
 *
 * Built by scripts/provision-tracers.sh into $DYNPROBE_DTRACE_LIBDIR (DTrace
 * reads only the .d files there). No libc: the library needs nothing.
 */
void ctf_dict_close(void *dict);

void ctf_dict_close(void *dict)
{
	(void)dict;
}
