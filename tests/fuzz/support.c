/*
 * support.c - see fuzz.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

void hr_fuzz_fail(const char *file, int line, const char *expr,
		  const char *note)
{
	fprintf(stderr, "%s:%d: property violated: %s (%s)\n", file, line,
		expr, note ? note : "");
	abort();
}

char *hr_fuzz_copy(const void *p, size_t n, bool nul)
{
	/* malloc(0) may return NULL: at least one byte. */
	char *c = malloc(nul ? n + 1 : n ? n : 1);

	if (!c)
		abort();
	if (n)
		memcpy(c, p, n);
	if (nul)
		c[n] = '\0';
	return c;
}

/*
 * RFC 3629, section 4: the first byte decides the length and the range
 * of the second byte; the others are 80..BF.
 */
static const struct {
	unsigned char lo, hi;     /* first byte */
	unsigned char lo2, hi2;   /* second byte */
	unsigned len;
} utf8_rows[] = {
	{ 0x00, 0x7f, 0, 0, 1 },
	{ 0xc2, 0xdf, 0x80, 0xbf, 2 },
	{ 0xe0, 0xe0, 0xa0, 0xbf, 3 },
	{ 0xe1, 0xec, 0x80, 0xbf, 3 },
	{ 0xed, 0xed, 0x80, 0x9f, 3 },
	{ 0xee, 0xef, 0x80, 0xbf, 3 },
	{ 0xf0, 0xf0, 0x90, 0xbf, 4 },
	{ 0xf1, 0xf3, 0x80, 0xbf, 4 },
	{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
};

bool hr_fuzz_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, r, k;

	while (i < n) {
		for (r = 0; r < HR_ARRAY_SIZE(utf8_rows); r++)
			if (p[i] >= utf8_rows[r].lo && p[i] <= utf8_rows[r].hi)
				break;
		if (r == HR_ARRAY_SIZE(utf8_rows))
			return false;
		if (n - i < utf8_rows[r].len)
			return false;
		for (k = 1; k < utf8_rows[r].len; k++) {
			unsigned char lo = k == 1 ? utf8_rows[r].lo2 : 0x80;
			unsigned char hi = k == 1 ? utf8_rows[r].hi2 : 0xbf;

			if (p[i + k] < lo || p[i + k] > hi)
				return false;
		}
		i += utf8_rows[r].len;
	}
	return true;
}

bool hr_fuzz_no_controls(const char *s, size_t n, const char *allow)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 || c == 0x7f) && !(c && strchr(allow, c)))
			return false;
	}
	return true;
}

static void drop(int level, const char *event, const char *const *kv,
		 void *payload)
{
	(void)level;
	(void)event;
	(void)kv;
	(void)payload;
}

void hr_fuzz_quiet(void)
{
	hr_log_set_sink(drop, NULL);
}

uint8_t hr_fuzz_take(const uint8_t **data, size_t *size)
{
	uint8_t b;

	if (!*size)
		return 0;
	b = **data;
	(*data)++;
	(*size)--;
	return b;
}

long hr_fuzz_status(const uint8_t **data, size_t *size)
{
	static const long common[] = {
		0, 200, 201, 204, 299, 300, 400, 401, 403, 404, 408, 412, 429,
		500, 502, 503, 504,
	};
	unsigned b = hr_fuzz_take(data, size);

	return b < HR_ARRAY_SIZE(common) ? common[b] : 4L * b;
}
