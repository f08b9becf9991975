/*
 * fuzz.h - what every libFuzzer target in tests/fuzz shares: a check that
 * aborts (libFuzzer saves the input as a crash), an exact-size copy of the
 * input (so ASan sees a read past its end), a strict UTF-8 oracle written
 * from RFC 3629's table (not lib/util.c's decoder, which is under test),
 * and a log sink that drops everything.
 *
 * Built only with -DHR_FUZZ=ON (clang); see tests/fuzz/CMakeLists.txt and
 * scripts/fuzz.sh.
 */
#ifndef HR_FUZZ_H
#define HR_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Abort with the expression and a note when cond is false. */
#define FUZZ_CHECK(cond, note)                                            \
	do {                                                              \
		if (!(cond))                                              \
			hr_fuzz_fail(__FILE__, __LINE__, #cond, (note)); \
	} while (0)

void hr_fuzz_fail(const char *file, int line, const char *expr,
		  const char *note) __attribute__((noreturn));

/* A malloc'ed copy of n bytes; with nul, one more byte holding '\0'.
 * Aborts on ENOMEM (a fuzzer has no use for that path). */
char *hr_fuzz_copy(const void *p, size_t n, bool nul);

/* n bytes are well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no sequence cut short). */
bool hr_fuzz_utf8_valid(const char *s, size_t n);

/* True when no byte is below 0x20 or 0x7f, except those in allow. */
bool hr_fuzz_no_controls(const char *s, size_t n, const char *allow);

/* Route every hr_log() line to nowhere. */
void hr_fuzz_quiet(void);

/* A byte from the front of the input (0 when none is left). */
uint8_t hr_fuzz_take(const uint8_t **data, size_t *size);

/* An HTTP status from one byte of the input: one a registry sends (0 for
 * no reply, 200, 404, 429, 503, ...) for the first values, else 4 x the
 * byte (up to 1020). */
long hr_fuzz_status(const uint8_t **data, size_t *size);

#endif
