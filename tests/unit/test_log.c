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
