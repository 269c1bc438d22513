#ifndef CTHREADSHIM_H
#define CTHREADSHIM_H
/// The calling thread's kernel id (Linux gettid), for per-thread priorities; 0 elsewhere.
int cthread_gettid(void);
#endif
