/*
 * confparse.h - hr_config_parse() under Criterion, for the config tests
 * (no backend validators): parse_ok() asserts success and returns the
 * config, parse_bad() asserts failure and leaves the diagnostics in d,
 * has() says whether a diagnostic contains text.
 */
#ifndef HR_TEST_CONFPARSE_H
#define HR_TEST_CONFPARSE_H

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "healthreg/config.h"

static inline struct hr_config *parse_ok(const char *json, struct hr_diag *d)
{
	struct hr_config *cfg = NULL;
	size_t i;
	int rc;

	hr_diag_init(d);
	rc = hr_config_parse(&cfg, json, strlen(json), NULL, 0, d);
	for (i = 0; rc && i < d->n; i++)
		cr_log_error("%s", d->v[i].text);
	cr_assert_eq(rc, 0);
	cr_assert_not_null(cfg);
	return cfg;
}

/* Parse expecting failure; the diag list stays for inspection. */
static inline void parse_bad(const char *json, struct hr_diag *d)
{
	struct hr_config *cfg = (void *)1;

	hr_diag_init(d);
	cr_assert_eq(hr_config_parse(&cfg, json, strlen(json), NULL, 0, d),
		     -EINVAL);
	cr_assert_null(cfg);
	cr_assert_gt(d->errors, 0);
}

static inline int has(const struct hr_diag *d, const char *text)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strstr(d->v[i].text, text))
			return 1;
	return 0;
}

#endif
