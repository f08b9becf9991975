/*
 * fuzz_duration.c - hr_duration_parse() on any string.
 * Properties: the result is 0, -EINVAL or -ERANGE; a parsed duration is
 * not negative and survives hr_duration_format() -> hr_duration_parse()
 * unchanged.
 */
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "healthreg/duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = hr_fuzz_copy(data, size, true);
	char text[64];
	int64_t ms = -1, again = -1;
	int rc = hr_duration_parse(s, &ms);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE, s);
	if (!rc) {
		FUZZ_CHECK(ms >= 0, s);
		hr_duration_format(ms, text, sizeof(text));
		FUZZ_CHECK(hr_duration_parse(text, &again) == 0, text);
		FUZZ_CHECK(again == ms, text);
	}
	free(s);
	return 0;
}
