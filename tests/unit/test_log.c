/* Structured log lines: logfmt quoting and JSON escaping. */
#include <criterion/criterion.h>
#include <string.h>

#include "healthreg/log.h"

Test(log, logfmt_quotes_when_needed)
{
	const char *kv[] = { "check", "db", "output", "a b=\"c\"\nd", "empty",
			     "", NULL };
	char line[512];
	const char *body;

	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, HR_LOG_WARN,
			   "check_status", kv);
	cr_assert(!strncmp(line, "ts=", 3));
	body = strstr(line, " level=");
	cr_assert_not_null(body);
	cr_expect_str_eq(body, " level=warn event=check_status check=db "
			       "output=\"a b=\\\"c\\\"\\nd\" empty=\"\"\n");
}

Test(log, json_is_escaped)
{
	const char *kv[] = { "output", "x\"y\\z\n\x01", NULL };
	char line[512];
	const char *body;

	hr_log_format_line(line, sizeof(line), HR_LOG_JSON, HR_LOG_INFO, "ev",
			   kv);
	body = strstr(line, ",\"level\"");
	cr_assert_not_null(body);
	cr_expect_str_eq(body, ",\"level\":\"info\",\"event\":\"ev\","
			       "\"output\":\"x\\\"y\\\\z\\n\\u0001\"}\n");
}

Test(log, numbers_are_json_numbers)
{
	/* Marked keys: numbers unquoted in JSON, anything else a string;
	 * unmarked keys stay strings even when the value looks numeric. */
	const char *kv[] = { HR_LOG_NUM("port"), "9190",
			     HR_LOG_NUM("down_seconds"), "25.3",
			     HR_LOG_NUM("big"), "-1e+30",
			     HR_LOG_NUM("lead"), "012",
			     HR_LOG_NUM("inf"), "+Inf",
			     HR_LOG_NUM("empty"), "",
			     "check", "200", NULL };
	char line[512];
	const char *body;

	hr_log_format_line(line, sizeof(line), HR_LOG_JSON, HR_LOG_INFO, "ev",
			   kv);
	body = strstr(line, ",\"event\"");
	cr_assert_not_null(body);
	cr_expect_str_eq(body, ",\"event\":\"ev\",\"port\":9190,"
			       "\"down_seconds\":25.3,\"big\":-1e+30,"
			       "\"lead\":\"012\",\"inf\":\"+Inf\","
			       "\"empty\":\"\",\"check\":\"200\"}\n");
	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, HR_LOG_INFO,
			   "ev", kv);
	body = strstr(line, " event=");
	cr_assert_not_null(body);
	cr_expect_str_eq(body, " event=ev port=9190 down_seconds=25.3 "
			       "big=-1e+30 lead=012 inf=+Inf empty=\"\" "
			       "check=200\n");
}

Test(log, long_lines_are_cut_but_end_with_newline)
{
	char big[1000];
	const char *kv[] = { "k", big, NULL };
	char line[100];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, HR_LOG_INFO,
			   "ev", kv);
	cr_expect_eq(strlen(line), sizeof(line) - 1);
	cr_expect_eq(line[strlen(line) - 1], '\n');
}

Test(log, levels)
{
	int l = 0;

	cr_expect_eq(hr_log_level_parse("debug", &l), 0);
	cr_expect_eq(l, HR_LOG_DEBUG);
	cr_expect_neq(hr_log_level_parse("loud", &l), 0);
}

/* ---- hostile values: every line is one line of valid UTF-8 ------------ */

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>

#include "healthreg/util.h"

/* 20,000 bytes of what breaks formatters: quotes, backslashes, control
 * bytes, newlines, invalid and cut UTF-8, valid multibyte characters. */
static char *hostile_value(size_t n)
{
	static const char *const pieces[] = {
		"\"", "\\", "\x01", "\n", "\r", "\x7f", "\xff", "\xc3",
		"\xe2\x82", "\xed\xa0\x80", "\xc3\xa9", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", "a", "=", " ", "\\u00",
	};
	char *v = malloc(n + 1);
	size_t pos = 0, i = 0;

	cr_assert_not_null(v);
	while (pos < n) {
		const char *p = pieces[i++ % HR_ARRAY_SIZE(pieces)];
		size_t l = strlen(p);

		if (l > n - pos)
			l = n - pos;
		memcpy(v + pos, p, l);
		pos += l;
	}
	v[n] = '\0';
	return v;
}

static bool valid_utf8(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), l;

	for (; n; u += l, n -= l) {
		l = hr_utf8_len(u, n);
		if (!l)
			return false;
	}
	return true;
}

/* One line: the only newline is the last byte, no raw control byte. */
static void assert_one_line(const char *line)
{
	size_t n = strlen(line), i;

	cr_assert_gt(n, 0);
	cr_assert_eq(line[n - 1], '\n', "no newline at the end: %s", line);
	for (i = 0; i + 1 < n; i++)
		cr_assert((unsigned char)line[i] >= 0x20 &&
			  line[i] != 0x7f, "raw control byte 0x%02x at %zu",
			  (unsigned char)line[i], i);
	cr_assert(valid_utf8(line), "not valid UTF-8");
}

static void assert_json_line(const char *line, const char *key)
{
	size_t n = strlen(line);
	cJSON *doc;

	assert_one_line(line);
	cr_assert(n >= 2 && line[n - 2] == '}', "not closed: ...%s",
		  line + (n > 40 ? n - 40 : 0));
	doc = cJSON_ParseWithLength(line, n - 1);
	cr_assert(cJSON_IsObject(doc), "not a JSON object: %s", line);
	if (key) /* a line long enough to hold the event and key */
		cr_assert(cJSON_IsString(cJSON_GetObjectItem(doc, "event")) &&
			  cJSON_IsString(cJSON_GetObjectItem(doc, key)),
			  "%s missing", key);
	cJSON_Delete(doc);
}

/* logfmt: key=value pairs; a quoted value ends at an unescaped quote and
 * holds only complete escapes (\" \\ \n \xHH). */
static void assert_logfmt_line(const char *line)
{
	const char *p = line;

	assert_one_line(line);
	while (*p != '\n') {
		const char *eq = strchr(p, '=');

		cr_assert_not_null(eq, "a key without '=': %s", p);
		cr_assert(eq > p && !memchr(p, ' ', (size_t)(eq - p)) &&
			  !memchr(p, '"', (size_t)(eq - p)), "bad key at %s", p);
		p = eq + 1;
		if (*p == '"') {
			for (p++; *p != '"'; p++) {
				cr_assert(*p && *p != '\n', "unterminated quote");
				if (*p != '\\')
					continue;
				p++;
				if (*p == 'x') {
					cr_assert(strchr("0123456789abcdef", p[1]) && p[1] &&
						  strchr("0123456789abcdef", p[2]) && p[2],
						  "cut \\x escape");
					p += 2;
				} else {
					cr_assert(*p == '"' || *p == '\\' || *p == 'n',
						  "bad escape \\%c", *p);
				}
			}
			p++;
		} else {
			while (*p != ' ' && *p != '\n') {
				cr_assert(*p != '"' && *p != '=', "bare value at %s", p);
				p++;
			}
		}
		cr_assert(*p == ' ' || *p == '\n', "junk after a value: %s", p);
		if (*p == ' ')
			p++;
	}
}

/* 20,000 hostile bytes in the 8 KiB line hr_log() uses, both formats. */
Test(log, hostile_value_gives_one_valid_line)
{
	char *v = hostile_value(20000);
	const char *kv[] = { "check", "db", "output", v, "after", "x", NULL };
	static char line[8192];

	hr_log_format_line(line, sizeof(line), HR_LOG_JSON, HR_LOG_INFO,
			   "check_result", kv);
	assert_json_line(line, "output");
	cr_expect_gt(strlen(line), 8000, "cut too early: %zu", strlen(line));
	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, HR_LOG_INFO,
			   "check_result", kv);
	assert_logfmt_line(line);
	cr_expect_gt(strlen(line), 8000, "cut too early: %zu", strlen(line));
	free(v);
}

/* Every cut position: each buffer size from 2 to 400 bytes. */
Test(log, every_cut_is_on_a_character_boundary)
{
	char *v = hostile_value(600);
	const char *kv[] = { "output", v, "k\"ey\xff", v, NULL };
	char line[400];
	size_t len;

	for (len = 2; len <= sizeof(line); len++) {
		hr_log_format_line(line, len, HR_LOG_JSON, HR_LOG_WARN, "e\xc3v",
				   kv);
		cr_assert_lt(strlen(line), len);
		if (len >= 4)
			assert_json_line(line, len >= 120 ? "output" : NULL);
		hr_log_format_line(line, len, HR_LOG_LOGFMT, HR_LOG_WARN,
				   "e\xc3v", kv);
		cr_assert_lt(strlen(line), len);
		assert_logfmt_line(line);
	}
	free(v);
}

Test(log, invalid_utf8_becomes_replacement_character)
{
	const char *kv[] = { "output", "a\xff" "b\xc3\xa9", NULL };
	char line[512];

	hr_log_format_line(line, sizeof(line), HR_LOG_JSON, HR_LOG_INFO, "ev",
			   kv);
	cr_expect(strstr(line, "\"output\":\"a\xef\xbf\xbd" "b\xc3\xa9\"}\n"),
		  "%s", line);
	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, HR_LOG_INFO, "ev",
			   kv);
	cr_expect(strstr(line, " output=\"a\xef\xbf\xbd" "b\xc3\xa9\"\n"), "%s",
		  line);
}
