/* Resolution of the libc functions the emulator wraps (dlsym RTLD_NEXT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#include "emu.h"

struct emu_real emu_real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define RESOLVE(field, name) (*(void **)&emu_real.field = dlsym(RTLD_NEXT, name))

static void resolve(void)
{
	RESOLVE(open, "open");
	RESOLVE(open64, "open64");
	RESOLVE(openat, "openat");
	RESOLVE(openat64, "openat64");
	RESOLVE(open_2, "__open_2");
	RESOLVE(open64_2, "__open64_2");
	RESOLVE(openat_2, "__openat_2");
	RESOLVE(openat64_2, "__openat64_2");
	RESOLVE(close, "close");
	RESOLVE(ioctl, "ioctl");
	RESOLVE(mmap, "mmap");
	RESOLVE(mmap64, "mmap64");
	RESOLVE(munmap, "munmap");
	RESOLVE(read, "read");
	RESOLVE(write, "write");
	RESOLVE(poll, "poll");
	RESOLVE(ppoll, "ppoll");
	RESOLVE(select, "select");
	RESOLVE(pselect, "pselect");
}

void emu_real_init(void)
{
	pthread_once(&once, resolve);
}
