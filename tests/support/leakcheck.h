/*
 * leakcheck.h - a leak regression test for C code: the heap in use after
 * a piece of work (everything it returned freed) is what it was before.
 *
 *     size_t mark = HR_HEAP_MARK();
 *     ... parse, fail, free ...
 *     HR_ASSERT_HEAP_BACK(mark);
 *
 * Why not LeakSanitizer: tests/lsan.supp must suppress leaks under
 * Criterion's runner, which are all of a C test's, and LSan's report at a
 * test child's exit fails no test. The count is ASan's (bytes the
 * program holds), so the check bites in the HR_SANITIZE build only (glibc's
 * mallinfo2() counts chunks parked in its tcache as in use: no exact
 * count). Do the work once before the mark, so that one-time allocations
 * (stdio buffers, lazily built tables) are not counted.
 */
#ifndef HR_TEST_LEAKCHECK_H
#define HR_TEST_LEAKCHECK_H

#include <stddef.h>

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#define HR_HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HR_HEAP_ASAN 1
#endif
#endif

#if defined(HR_HEAP_ASAN)
/* <sanitizer/allocator_interface.h>, which GCC does not install */
size_t __sanitizer_get_current_allocated_bytes(void);
static inline size_t hr_heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
static inline size_t hr_heap_in_use(void)
{
	return 0; /* no exact count outside ASan: the check passes */
}
#endif

#define HR_HEAP_MARK() hr_heap_in_use()
#define HR_ASSERT_HEAP_BACK(mark)                                          \
	do {                                                               \
		size_t hr_now_ = hr_heap_in_use();                         \
		cr_assert_eq(hr_now_, (mark), "%zd bytes still allocated", \
			     (ptrdiff_t)(hr_now_ - (mark)));               \
	} while (0)

#endif
