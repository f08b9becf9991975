/* The shared config getters of healthreg/confget.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/confget.h"
#include "healthreg/status.h"
#include "leakcheck.h"

static struct hr_diag d;

static void setup(void)
{
	hr_diag_init(&d);
}

static void teardown(void)
{
	hr_diag_dispose(&d);
}

TestSuite(confget, .init = setup, .fini = teardown);

static int get_int(const char *json, int *out)
{
	cJSON *v = cJSON_Parse(json);
	int rc;

	cr_assert_not_null(v, "%s", json);
	rc = hr_conf_int(v, "service.port", 0, 65535, &d, out);
	cJSON_Delete(v);
	return rc;
}

Test(confget, int_range_checked_before_conversion)
{
	int x = -1;

	cr_assert_eq(get_int("8080", &x), 0);
	cr_assert_eq(x, 8080);
	cr_assert_eq(get_int("1e300", &x), -EINVAL);
	cr_assert_eq(get_int("-1e300", &x), -EINVAL);
	cr_assert_eq(get_int("65536", &x), -EINVAL);
	cr_assert_eq(get_int("1.5", &x), -EINVAL);
	cr_assert_eq(get_int("\"80\"", &x), -EINVAL);
	cr_assert_eq(x, 8080);
	cr_assert_eq(d.errors, 5);
	cr_assert_str_eq(d.v[1].text,
			 "service.port: -1e+300 is out of range (0..65535)");
}

/* Beyond a double: cJSON reads infinity (and would show it as null). */
Test(confget, int_beyond_double)
{
	int x = 7;

	cr_assert_eq(get_int("1e999", &x), -EINVAL);
	cr_assert_eq(get_int("-1e999", &x), -EINVAL);
	cr_assert_eq(x, 7);
	cr_assert_str_eq(d.v[0].text,
			 "service.port: the number is out of range (0..65535)");
}

Test(confget, duration)
{
	cJSON *v = cJSON_CreateString("1m30s");
	int64_t ms = 0;

	cr_assert_eq(hr_conf_duration(v, "x.interval", &d, &ms), 0);
	cr_assert_eq(ms, 90000);
	cJSON_SetValuestring(v, "99999999999999h");
	cr_assert_eq(hr_conf_duration(v, "x.interval", &d, &ms), -EINVAL);
	cr_assert(strstr(d.v[0].text, "too large"), "%s", d.v[0].text);
	cJSON_SetValuestring(v, "10");
	cr_assert_eq(hr_conf_duration(v, "x.interval", &d, &ms), -EINVAL);
	cr_assert(strstr(d.v[1].text, "x.interval: \"10\" is not a duration"),
		  "%s", d.v[1].text);
	cr_assert_eq(ms, 90000);
	cJSON_Delete(v);
}

Test(confget, statuses)
{
	cJSON *v = cJSON_Parse("[\"passing\",\"critical\"]");
	unsigned m = 0;

	cr_assert_eq(hr_conf_statuses(v, "r.register_when", &d, &m), 0);
	cr_assert_eq(m, (1u << HR_STATUS_PASSING) | (1u << HR_STATUS_CRITICAL));
	cJSON_Delete(v);
	v = cJSON_Parse("[\"passing\",\"unknown\",3]");
	cr_assert_eq(hr_conf_statuses(v, "r.register_when", &d, &m), -EINVAL);
	cr_assert_eq(d.errors, 2);
	cr_assert(strstr(d.v[0].text, "r.register_when[1]"), "%s", d.v[0].text);
	cJSON_Delete(v);
	v = cJSON_Parse("[]");
	cr_assert_eq(hr_conf_statuses(v, "r.register_when", &d, &m), -EINVAL);
	cJSON_Delete(v);
}

Test(confget, strings)
{
	cJSON *v = cJSON_Parse("[\"a\", 2, \"\"]");
	char **arr = NULL, *s = NULL;
	size_t n = 0;

	cr_assert_eq(hr_conf_string_array(v, "s.tags", true, &d, &arr, &n),
		     -EINVAL);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(arr[0], "a");
	cr_assert_str_eq(arr[2], "");
	cr_assert_null(arr[3]);
	hr_conf_strv_free(arr);
	cr_assert_eq(hr_conf_nonempty_string(cJSON_GetArrayItem(v, 2), "s.x",
					     &d, &s), -EINVAL);
	cr_assert_eq(hr_conf_string(cJSON_GetArrayItem(v, 0), "s.x", &d, &s), 0);
	cr_assert_str_eq(s, "a");
	free(s);
	cJSON_Delete(v);
}

Test(confget, utf8_prefix)
{
	static const struct {
		const char *s;
		size_t valid;
	} cases[] = {
		{ "abc", 3 },
		{ "\xc3\xa9", 2 },
		{ "\xe2\x82\xac", 3 },
		{ "\xf0\x9d\x84\x9e", 4 },
		{ "\xf4\x8f\xbf\xbf", 4 },       /* U+10FFFF */
		{ "\xed\x9f\xbf", 3 },           /* U+D7FF */
		{ "a\xff", 1 },
		{ "a\xc0\x80", 1 },              /* overlong NUL */
		{ "a\xc1\xbf", 1 },              /* overlong */
		{ "a\xe0\x9f\xbf", 1 },          /* overlong */
		{ "a\xf0\x8f\xbf\xbf", 1 },      /* overlong */
		{ "a\xed\xa0\x80", 1 },          /* surrogate */
		{ "a\xf4\x90\x80\x80", 1 },      /* above U+10FFFF */
		{ "a\xf5\x80\x80\x80", 1 },
		{ "ab\xe2\x82", 2 },             /* cut short */
		{ "\xc3\xa9\x80", 2 },           /* lone continuation */
		{ "\xe2\x28\xa1", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(hr_conf_utf8_prefix(cases[i].s, strlen(cases[i].s)),
			     cases[i].valid, "case %zu", i);
}

/* Every string a getter returns is valid UTF-8 of bounded length, so the
 * backends' validators (which read their sections with these getters)
 * get the same limits as the core config. */
Test(confget, strings_are_utf8_and_bounded)
{
	cJSON *v = cJSON_CreateString("ok\xff");
	char *s = NULL, **arr = NULL, *big = malloc(HR_CONF_STRING_MAX + 2);

	cr_assert_eq(hr_conf_string(v, "registry.etcd.prefix", &d, &s), -EINVAL);
	cr_assert_null(s);
	cr_assert_str_eq(d.v[0].text,
			 "registry.etcd.prefix: is not valid UTF-8 (at byte 2)");
	cJSON_Delete(v);
	memset(big, 'x', HR_CONF_STRING_MAX + 1);
	big[HR_CONF_STRING_MAX + 1] = '\0';
	v = cJSON_CreateString(big);
	cr_assert_eq(hr_conf_nonempty_string(v, "registry.consul.address", &d, &s),
		     -EINVAL);
	cr_assert_str_eq(d.v[1].text, "registry.consul.address: is 65537 bytes "
			 "long, more than the limit of 65536");
	cJSON_Delete(v);
	big[HR_CONF_STRING_MAX] = '\0';
	v = cJSON_CreateString(big);
	cr_assert_eq(hr_conf_string(v, "x", &d, &s), 0);
	free(s);
	cJSON_Delete(v);
	free(big);
	v = cJSON_Parse("[\"a\", \"\xc0\xaf\"]");
	cr_assert_eq(hr_conf_string_array(v, "s.tags", true, &d, &arr, NULL),
		     -EINVAL);
	cr_assert_str_eq(d.v[2].text, "s.tags[1]: is not valid UTF-8 (at byte 0)");
	cr_assert_str_eq(arr[1], "");
	hr_conf_strv_free(arr);
	cJSON_Delete(v);
}

/* An array read again replaces the first and frees it: the heap holds one
 * array's worth afterwards, not two. */
Test(confget, string_array_read_twice_frees_the_first)
{
	cJSON *v = cJSON_Parse("[\"a\", \"bc\"]");
	char **arr = NULL;
	size_t mark;

	cr_assert_eq(hr_conf_string_array(v, "s.tags", true, &d, &arr, NULL), 0);
	mark = HR_HEAP_MARK();
	cr_assert_eq(hr_conf_string_array(v, "s.tags", true, &d, &arr, NULL), 0);
	HR_ASSERT_HEAP_BACK(mark);
	cr_assert_str_eq(arr[1], "bc");
	hr_conf_strv_free(arr);
	cJSON_Delete(v);
}

/* Paths and shown values are cut on a character boundary. */
Test(confget, messages_cut_on_characters)
{
	char key[400], p[HR_CONF_PATH_MAX], shown[80];
	size_t i, n;
	cJSON *v;

	key[0] = 'a'; /* so that the cuts fall inside a character */
	for (i = 1; i + 2 < sizeof(key); i += 2)
		memcpy(key + i, "\xc3\xa9", 2);
	key[i] = '\0';
	hr_conf_path(p, "service.meta", key);
	n = strlen(p);
	cr_assert_lt(n, HR_CONF_PATH_MAX);
	cr_assert_eq(hr_conf_utf8_prefix(p, n), n);
	cr_assert_geq(n, HR_CONF_PATH_MAX - 3);
	v = cJSON_CreateString(key);
	hr_conf_show(v, shown, sizeof(shown));
	n = strlen(shown);
	cr_assert_eq(hr_conf_utf8_prefix(shown, n), n, "%s", shown);
	cr_assert_str_eq(shown + n - 3, "...");
	cJSON_Delete(v);
}
