/*
 * fuzz_log.c - hr_log_format_line() with hostile keys and values and any
 * buffer size.
 *
 * Input: byte 0 picks the format (bit 0: JSON), bytes 1-2 the buffer size
 * (0..8447: below, at and above the 8192 of hr_log()), the rest is the
 * event, then keys and values, separated by NUL bytes (a value of the
 * single byte 0x01 is passed as NULL).
 *
 * Properties: the line fits the buffer and is exactly one line (nothing
 * below 0x20 or 0x7f but its final '\n') of valid UTF-8; in JSON, it is
 * one JSON object (cJSON) and, when nothing was cut, its members are the
 * event's and the pairs', in order, each value the input with invalid
 * UTF-8 replaced by U+FFFD, except that a key marked as a number
 * (HR_LOG_NUM, first byte 0x1f) is named without its mark and may have a
 * JSON number as value: then the input was that number's whole text.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

#define MAX_KV 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The JSON members after ts and level: event, then each pair. */
static void check_members(const cJSON *o, const char *event,
			  const char *const *kv)
{
	const cJSON *m = o->child;
	char *want;
	size_t i;

	FUZZ_CHECK(m && !strcmp(m->string, "ts"), "first member is ts");
	m = m->next;
	FUZZ_CHECK(m && !strcmp(m->string, "level"), "then level");
	m = m->next;
	FUZZ_CHECK(m && !strcmp(m->string, "event"), "then event");
	want = hr_utf8_clean(event);
	FUZZ_CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, want), event);
	free(want);
	for (i = 0; kv[i]; i += 2) {
		const char *k = kv[i], *v = kv[i + 1] ? kv[i + 1] : "";
		bool num = *k == HR_LOG_NUM_MARK;

		m = m->next;
		FUZZ_CHECK(m != NULL, "a pair is missing from an uncut line");
		want = hr_utf8_clean(num ? k + 1 : k);
		FUZZ_CHECK(!strcmp(m->string, want), "key");
		free(want);
		if (cJSON_IsNumber(m)) {
			char *end;
			double d;

			FUZZ_CHECK(num, "a number only under a marked key");
			d = strtod(v, &end);
			FUZZ_CHECK(*v && !*end && (d == m->valuedouble ||
						   (d != d && m->valuedouble !=
								      m->valuedouble)),
				   "the number is the whole value");
			continue;
		}
		want = hr_utf8_clean(v);
		FUZZ_CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, want),
			   "value");
		free(want);
	}
	FUZZ_CHECK(m->next == NULL, "no member beyond the pairs");
}

static void check_line(const char *buf, size_t len, int json,
		       const char *event, const char *const *kv, bool whole)
{
	size_t n;
	cJSON *o;

	if (!len) /* nothing may be written */
		return;
	n = strnlen(buf, len);
	FUZZ_CHECK(n < len, "the line fits its buffer");
	if (len < 2)
		return;
	FUZZ_CHECK(n >= 1 && buf[n - 1] == '\n', "ends with a newline");
	FUZZ_CHECK(hr_fuzz_no_controls(buf, n - 1, ""), "one line, no controls");
	FUZZ_CHECK(hr_fuzz_utf8_valid(buf, n), "valid UTF-8");
	if (!json || n == 1)
		return;
	o = cJSON_ParseWithLengthOpts(buf, n - 1, NULL, 0);
	FUZZ_CHECK(cJSON_IsObject(o), "a JSON object");
	if (whole)
		check_members(o, event, kv);
	cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *kv[MAX_KV * 2 + 2];
	int json = hr_fuzz_take(&data, &size) & 1;
	size_t len = hr_fuzz_take(&data, &size);
	char *in, *p, *end, *buf;
	const char *event;
	size_t n = 0;

	len = (len << 8 | hr_fuzz_take(&data, &size)) % 8448;
	in = hr_fuzz_copy(data, size, true);
	end = in + size;
	event = in;
	for (p = in + strlen(in); p < end && n < MAX_KV * 2; p += strlen(p)) {
		p++;
		kv[n++] = !strcmp(p, "\x01") ? NULL : p;
	}
	if (n % 2) /* a key without its value: the value is NULL */
		kv[n++] = NULL;
	kv[n] = NULL;
	/* Keys may not be NULL: the list would end there. */
	for (size_t i = 0; i < n; i += 2)
		if (!kv[i])
			kv[i] = "";
	buf = malloc(len ? len : 1);
	FUZZ_CHECK(buf != NULL, "malloc");
	hr_log_format_line(buf, len, json ? HR_LOG_JSON : HR_LOG_LOGFMT,
			   HR_LOG_WARN, event, kv);
	check_line(buf, len, json, event, kv, false);
	free(buf);
	/* With room for everything (a byte is at most 6 escaped, a pair
	 * adds at most 6 bytes of quotes and separators), nothing is cut. */
	len = 6 * size + 8 * MAX_KV + 128;
	buf = malloc(len);
	FUZZ_CHECK(buf != NULL, "malloc");
	hr_log_format_line(buf, len, json ? HR_LOG_JSON : HR_LOG_LOGFMT,
			   HR_LOG_WARN, event, kv);
	check_line(buf, len, json, event, kv, true);
	free(buf);
	free(in);
	return 0;
}
