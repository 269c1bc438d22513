#define _GNU_SOURCE
#include "CThreadShim.h"
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
int cthread_gettid(void) { return (int)syscall(SYS_gettid); }
#else
int cthread_gettid(void) { return 0; }
#endif
