// Clang thread-safety annotations; no-ops on other compilers. The clang build in
// `make test` (scripts/thread-safety-check.sh) compiles with -Wthread-safety -Werror,
// so these are checked, not decoration. Use them with Mutex (common/mutex.h).
#pragma once

#if defined(__clang__)
#define RESWEEP_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define RESWEEP_THREAD_ANNOTATION(x)
#endif

#define RESWEEP_CAPABILITY(x) RESWEEP_THREAD_ANNOTATION(capability(x))
#define RESWEEP_SCOPED_CAPABILITY RESWEEP_THREAD_ANNOTATION(scoped_lockable)
#define RESWEEP_GUARDED_BY(x) RESWEEP_THREAD_ANNOTATION(guarded_by(x))
#define RESWEEP_PT_GUARDED_BY(x) RESWEEP_THREAD_ANNOTATION(pt_guarded_by(x))
#define RESWEEP_REQUIRES(...) RESWEEP_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define RESWEEP_ACQUIRE(...) RESWEEP_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RESWEEP_RELEASE(...) RESWEEP_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RESWEEP_EXCLUDES(...) RESWEEP_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define RESWEEP_ASSERT_CAPABILITY(x) RESWEEP_THREAD_ANNOTATION(assert_capability(x))
#define RESWEEP_NO_THREAD_SAFETY_ANALYSIS RESWEEP_THREAD_ANNOTATION(no_thread_safety_analysis)
