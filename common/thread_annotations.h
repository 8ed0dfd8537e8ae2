// Clang thread-safety annotations; no-ops on other compilers.
#pragma once

#if defined(__clang__)
#define RESWEEP_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define RESWEEP_THREAD_ANNOTATION(x)
#endif

#define RESWEEP_GUARDED_BY(x) RESWEEP_THREAD_ANNOTATION(guarded_by(x))
#define RESWEEP_REQUIRES(...) RESWEEP_THREAD_ANNOTATION(exclusive_locks_required(__VA_ARGS__))
