/* The shared config getters of healthreg/confget.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/confget.h"
#include "healthreg/status.h"

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
