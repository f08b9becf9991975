/*
 * leakcheck.h - fail the running Criterion test when LeakSanitizer finds
 * a leak now (HR_SANITIZE builds; elsewhere a no-op).
 *
 * LSan's own report at process exit fails no C test: Criterion runs each
 * test in a child process and ignores its exit status once the test has
 * reported. A leak regression test therefore ends with
 * HR_ASSERT_NO_LEAKS(), after freeing everything it owns.
 */
#ifndef HR_TEST_LEAKCHECK_H
#define HR_TEST_LEAKCHECK_H

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#define HR_LEAKCHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HR_LEAKCHECK 1
#endif
#endif

#ifdef HR_LEAKCHECK
#include <sanitizer/lsan_interface.h>
#define HR_ASSERT_NO_LEAKS()                                              \
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,               \
		     "LeakSanitizer found a leak (its report is above)")
#else
#define HR_ASSERT_NO_LEAKS() ((void)0)
#endif

#endif
