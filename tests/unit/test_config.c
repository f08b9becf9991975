/* Config parsing: parsed values and defaults, and errors by JSON path
 * (the bad-file corpus is in tests/fixtures/bad-configs, run by
 * tests/integration/test_cli.py). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confparse.h"
#include "healthreg/config.h"
#include "healthreg/confget.h"
#include "healthreg/log.h"
#include "healthreg/util.h"
#include "etcd/etcd_payload.h"
#include "loop.h" /* hr_test_time_scale() */
#include "leakcheck.h"

Test(config, defaults)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"http\": \"http://127.0.0.1/\"},"
		"{\"name\": \"b\", \"tcp\": \"127.0.0.1:80\", \"interval\": \"2s\"},"
		"{\"name\": \"c\", \"ttl\": \"30s\"}]}}",
		&d);
	const struct hr_check_spec *a = &cfg->services[0].checks[0], *b = &cfg->services[0].checks[1];

	cr_expect_str_eq(cfg->services[0].service.id, "web");
	cr_expect_eq(cfg->services[0].service.port, 0);
	cr_expect_eq(cfg->services[0].service.n_tags, 0);
	cr_expect_null(cfg->services[0].service.tags[0]);
	cr_expect_eq(cfg->services[0].n_checks, 3);
	cr_expect_eq(a->kind, HR_CHECK_HTTP);
	cr_expect_eq(a->interval_ms, 10000);
	cr_expect_eq(a->timeout_ms, 5000);
	cr_expect_eq(a->cache_ttl_ms, 10000);
	cr_expect_eq(a->failure_ttl_ms, 10000);
	cr_expect_eq(a->on_failure, HR_ON_FAILURE_CRITICAL);
	cr_expect_eq(a->group, -1);
	cr_expect_not(a->has_initial_status);
	cr_expect_not(a->tls_skip_verify);
	cr_expect_null(a->method);
	cr_expect_eq(b->interval_ms, 2000);
	cr_expect_eq(b->timeout_ms, 2000, "timeout defaults to min(5s, interval)");
	cr_expect_eq(cfg->services[0].checks[2].kind, HR_CHECK_TTL);
	cr_expect_eq(cfg->services[0].checks[2].ttl_ms, 30000);
	cr_expect_eq(cfg->log_level, HR_LOG_INFO);
	cr_expect_eq(cfg->log_format, HR_LOG_LOGFMT);
	cr_expect_not(cfg->enable_exec_checks);
	cr_expect_eq(cfg->shutdown_timeout_ms, 5000);
	cr_expect_null(cfg->services[0].registry);
	cr_expect_eq(d.errors, 0);
	cr_expect_eq(d.warnings, 0);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config, every_field)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"id\": \"web-1\", "
		"\"address\": \"10.0.0.5\", \"port\": 8080, \"tags\": [\"a\", \"b\"],"
		" \"meta\": {\"zone\": \"z1\"}, \"checks\": [{\"name\": \"a\", "
		"\"http\": \"https://127.0.0.1/h\", \"method\": \"post\", "
		"\"header\": {\"X\": [\"1\", \"2\"], \"Y\": \"3\"}, \"body\": \"{}\", "
		"\"tls_skip_verify\": true, \"tls_server_name\": \"svc.local\", "
		"\"disable_redirects\": true, \"interval\": \"1s\", "
		"\"timeout\": \"250ms\", \"interval_down\": \"200ms\", "
		"\"cache_ttl\": \"3s\", \"failure_ttl\": \"5s\", "
		"\"status\": \"passing\", \"success_before_passing\": 2, "
		"\"failures_before_critical\": 3, \"group\": \"g\"}, "
		"{\"name\": \"x\", \"args\": [\"/bin/true\", \"-v\"], "
		"\"failures_before_warning\": 1, \"failures_before_critical\": 2,"
		" \"on_failure\": \"warning\"}]},"
		" \"groups\": {\"g\": {\"min_passing\": 2, \"on_failure\": \"ignore\"}},"
		" \"agent\": {\"enable_exec_checks\": true, \"log_level\": \"debug\","
		" \"log_format\": \"json\", \"max_concurrent_checks\": 8,"
		" \"shutdown_timeout\": \"2s\"}}",
		&d);
	const struct hr_check_spec *a = &cfg->services[0].checks[0], *x = &cfg->services[0].checks[1];

	cr_expect_str_eq(cfg->services[0].service.id, "web-1");
	cr_expect_str_eq(cfg->services[0].service.address, "10.0.0.5");
	cr_expect_eq(cfg->services[0].service.port, 8080);
	cr_expect_eq(cfg->services[0].service.n_tags, 2);
	cr_expect_str_eq(cfg->services[0].service.tags[1], "b");
	cr_expect_eq(cfg->services[0].service.n_meta, 1);
	cr_expect_str_eq(cfg->services[0].service.meta[0].value, "z1");
	cr_expect_str_eq(a->method, "POST");
	cr_expect_eq(a->n_headers, 3);
	cr_expect_str_eq(a->headers[1].value, "2");
	cr_expect_str_eq(a->headers[2].name, "Y");
	cr_expect_str_eq(a->body, "{}");
	cr_expect(a->tls_skip_verify);
	cr_expect_str_eq(a->tls_server_name, "svc.local");
	cr_expect(a->disable_redirects);
	cr_expect_eq(a->interval_ms, 1000);
	cr_expect_eq(a->timeout_ms, 250);
	cr_expect_eq(a->interval_down_ms, 200);
	cr_expect_eq(a->cache_ttl_ms, 3000);
	cr_expect_eq(a->failure_ttl_ms, 5000);
	cr_expect(a->has_initial_status);
	cr_expect_eq(a->initial_status, HR_STATUS_PASSING);
	cr_expect_eq(a->success_before_passing, 2);
	cr_expect_eq(a->failures_before_critical, 3);
	cr_expect_eq(a->failures_before_warning, 3,
		     "failures_before_warning defaults to failures_before_critical");
	cr_expect_eq(a->group, 0);
	cr_expect_eq(x->kind, HR_CHECK_EXEC);
	cr_expect_str_eq(x->args[0], "/bin/true");
	cr_expect_null(x->args[2]);
	cr_expect_eq(x->failures_before_warning, 1);
	cr_expect_eq(x->on_failure, HR_ON_FAILURE_WARNING);
	cr_expect_eq(cfg->services[0].n_groups, 1);
	cr_expect_eq(cfg->services[0].groups[0].min_passing, 2);
	cr_expect_eq(cfg->services[0].groups[0].on_failure, HR_ON_FAILURE_IGNORE);
	cr_expect(cfg->enable_exec_checks);
	cr_expect_eq(cfg->log_level, HR_LOG_DEBUG);
	cr_expect_eq(cfg->log_format, HR_LOG_JSON);
	cr_expect_eq(cfg->max_concurrent, 8);
	cr_expect_eq(cfg->shutdown_timeout_ms, 2000);
	cr_expect_eq(hr_config_find_check(cfg, "x"), 1);
	cr_expect_eq(hr_config_find_check(cfg, "nope"), -1);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config, single_check_key_and_id_as_name)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"check\": "
		"{\"id\": \"only\", \"tcp\": \"[::1]:80\"}}}", &d);

	cr_expect_eq(cfg->services[0].n_checks, 1);
	cr_expect_str_eq(cfg->services[0].checks[0].name, "only");
	cr_expect_str_eq(cfg->services[0].checks[0].target, "[::1]:80");
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config, errors_name_their_path)
{
	struct hr_diag d;

	parse_bad("{\"service\": {\"name\": \"web\", \"checks\": ["
		  "{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"},"
		  "{\"name\": \"b\", \"tcp\": \"127.0.0.1:80\"},"
		  "{\"name\": \"c\", \"tcp\": \"127.0.0.1:80\", \"interval\": \"5x\"}]}}",
		  &d);
	cr_expect_eq(d.errors, 1);
	cr_expect(has(&d, "service.checks[2].interval: \"5x\" is not a duration"));
	hr_diag_dispose(&d);
}

/* Consul accepts it (its documented redis checks: interval 5s, timeout
 * 20s): a warning, and the timeout as written. */
Test(config, timeout_longer_than_interval)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\", \"interval\": \"1s\","
		" \"timeout\": \"2s\"}]}}", &d);

	cr_expect_eq(cfg->services[0].checks[0].timeout_ms, 2000);
	cr_expect_eq(d.warnings, 1);
	cr_expect(has(&d, "service.checks[0].timeout: \"2s\" is longer than the interval"));
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config, registry_sections_go_to_their_validator)
{
	struct hr_config_backend be[1];
	struct hr_config *cfg = NULL;
	struct hr_diag d;
	const char *json =
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"}]},"
		" \"registry\": {\"fake\": {\"x\": 1}, \"other\": {}}}";

	be[0].name = "fake";
	be[0].validate = NULL;
	be[0].validate_service = NULL;
	hr_diag_init(&d);
	cr_assert_eq(hr_config_parse(&cfg, json, strlen(json), be, 1, &d),
		     -EINVAL);
	cr_expect(has(&d, "registry.other: unknown registry backend (this build knows: \"fake\")"));
	hr_diag_dispose(&d);
}

static void reject_x(const cJSON *conf, const char *path, struct hr_diag *d)
{
	if (cJSON_GetObjectItemCaseSensitive(conf, "x"))
		hr_diag_add(d, HR_DIAG_ERROR, path, "x is not allowed");
}

Test(config, backend_validator_errors_fail_the_config)
{
	struct hr_config_backend be[1] = { { "fake", reject_x, NULL } };
	struct hr_config *cfg = NULL;
	struct hr_diag d;
	const char *bad =
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"}]},"
		" \"registry\": {\"fake\": {\"x\": 1}}}";
	const char *good =
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"}]},"
		" \"registry\": {\"fake\": {\"y\": 1}}}";

	const char *twice =
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"}]},"
		" \"registry\": {\"fake\": {\"y\": 1, \"y\": 2}}}";

	hr_diag_init(&d);
	cr_expect_eq(hr_config_parse(&cfg, bad, strlen(bad), be, 1, &d), -EINVAL);
	cr_expect(has(&d, "registry.fake: x is not allowed"));
	hr_diag_dispose(&d);
	/* a key given twice in a backend's section, as in every section */
	cr_expect_eq(hr_config_parse(&cfg, twice, strlen(twice), be, 1, &d),
		     -EINVAL);
	cr_expect(has(&d, "registry.fake.y: duplicate key (also given as \"y\")"));
	hr_diag_dispose(&d);
	cr_assert_eq(hr_config_parse(&cfg, good, strlen(good), be, 1, &d), 0);
	cr_assert_not_null(cfg->services[0].registry);
	cr_expect_not_null(cJSON_GetObjectItemCaseSensitive(cfg->services[0].registry, "fake"));
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* ---- issue 11: numbers, leaks, strings, thresholds ------------------- */

/* A config with one tcp check whose member `extra` (a JSON fragment like
 * "\"port\": 1e300") goes into section `where`: "service", "check",
 * "group" or "agent". */
static char *config_with(const char *where, const char *extra)
{
	char *s = NULL;
	int n;

	n = asprintf(&s,
		     "{\"service\": {\"name\": \"web\"%s%s, \"checks\": [{\"name\":"
		     " \"a\", \"tcp\": \"127.0.0.1:80\"%s%s%s}]},"
		     " \"groups\": {\"g\": {%s}}, \"agent\": {%s}}",
		     !strcmp(where, "service") ? ", " : "",
		     !strcmp(where, "service") ? extra : "",
		     !strcmp(where, "check") ? ", " : "",
		     !strcmp(where, "check") ? extra : "",
		     !strcmp(where, "group") ? ", \"group\": \"g\"" : "",
		     !strcmp(where, "group") ? extra : "",
		     !strcmp(where, "agent") ? extra : "");
	cr_assert_gt(n, 0);
	return s;
}

/* Out-of-range doubles are range-checked before any conversion (UBSan
 * aborts on an out-of-range cast in the HR_SANITIZE build). */
Test(config, numbers_beyond_int_are_errors_without_conversion)
{
	static const struct {
		const char *where, *key, *path;
	} fields[] = {
		{ "service", "port", "service.port" },
		{ "check", "failures_before_critical",
		  "service.checks[0].failures_before_critical" },
		{ "check", "failures_before_warning",
		  "service.checks[0].failures_before_warning" },
		{ "check", "success_before_passing",
		  "service.checks[0].success_before_passing" },
		{ "group", "min_passing", "groups.g.min_passing" },
		{ "agent", "max_concurrent_checks", "agent.max_concurrent_checks" },
	};
	static const char *const values[] = {
		"1e300", "-1e300", "9.3e18", "-9.3e18", "1e19", "1e999",
		"-1e999", "9223372036854775808", "4294967296", "2147483648",
	};
	size_t i, j;

	for (i = 0; i < HR_ARRAY_SIZE(fields); i++) {
		for (j = 0; j < HR_ARRAY_SIZE(values); j++) {
			char member[128], want[160];
			struct hr_diag d;
			char *json;

			snprintf(member, sizeof(member), "\"%s\": %s",
				 fields[i].key, values[j]);
			json = config_with(fields[i].where, member);
			parse_bad(json, &d);
			snprintf(want, sizeof(want), "%s: ", fields[i].path);
			cr_expect(has(&d, want), "%s", json);
			cr_expect(has(&d, "is out of range"), "%s", json);
			hr_diag_dispose(&d);
			free(json);
		}
	}
}

Test(config, big_number_as_a_string_is_not_an_integer)
{
	struct hr_diag d;
	char *json = config_with("service", "\"port\": \"9223372036854775808\"");

	parse_bad(json, &d);
	cr_expect(has(&d, "service.port: \"9223372036854775808\" is not an integer"));
	hr_diag_dispose(&d);
	free(json);
}

/*
 * A key given twice (in any spelling) is an error, and what the first one
 * read is not lost: the heap is back where it was after every round of
 * failed parses (as failed reloads would do; round 0 warms up).
 */
Test(config, duplicate_keys_do_not_leak)
{
	static const char *const members[] = {
		"\"header\": {\"X\": [\"1\", \"2\"]}, \"Header\": {\"Y\": \"3\"}",
		"\"header\": {\"X\": \"1\"}, \"header\": {\"Y\": \"3\"}",
	};
	static const char *const service[] = {
		"\"tags\": [\"a\", \"b\"], \"Tags\": [\"c\"]",
		"\"meta\": {\"a\": \"1\"}, \"Meta\": {\"b\": \"2\"}",
		"\"address\": \"x\", \"Address\": \"y\"",
	};
	size_t i, round, mark = 0;

	for (round = 0; round < 3; round++) {
		if (round == 1)
			mark = HR_HEAP_MARK();
		for (i = 0; i < HR_ARRAY_SIZE(members); i++) {
			struct hr_diag d;
			char *json;

			/* an http check: the header keys apply */
			cr_assert_gt(asprintf(&json,
					      "{\"service\": {\"name\": \"web\", \"checks\": "
					      "[{\"name\": \"a\", \"http\": \"http://127.0.0.1/\", %s}]}}",
					      members[i]), 0);
			parse_bad(json, &d);
			cr_expect(has(&d, "duplicate key"), "%s", json);
			hr_diag_dispose(&d);
			free(json);
		}
		for (i = 0; i < HR_ARRAY_SIZE(service); i++) {
			struct hr_diag d;
			char *json = config_with("service", service[i]);

			parse_bad(json, &d);
			cr_expect(has(&d, "duplicate key"), "%s", json);
			hr_diag_dispose(&d);
			free(json);
		}
	}
	HR_ASSERT_HEAP_BACK(mark);
}

Test(config, duplicate_args_do_not_leak)
{
	struct hr_diag d;
	const char *json =
		"{\"agent\": {\"enable_exec_checks\": true}, \"service\": {\"name\":"
		" \"web\", \"checks\": [{\"name\": \"a\", \"args\": [\"/bin/true\"],"
		" \"Args\": [\"/bin/false\", \"x\"]}]}}";
	size_t round, mark = 0;

	for (round = 0; round < 3; round++) {
		if (round == 1)
			mark = HR_HEAP_MARK();
		parse_bad(json, &d);
		cr_expect(has(&d, "service.checks[0].Args: duplicate key"));
		hr_diag_dispose(&d);
	}
	HR_ASSERT_HEAP_BACK(mark);
}

Test(config, failures_before_warning_above_critical)
{
	struct hr_diag d;
	struct hr_config *cfg;
	char *json = config_with("check", "\"failures_before_warning\": 5, "
				 "\"failures_before_critical\": 3");

	parse_bad(json, &d);
	cr_expect(has(&d, "service.checks[0].failures_before_warning: 5 is "
		      "greater than failures_before_critical (3)"));
	cr_expect_eq(d.errors, 1);
	hr_diag_dispose(&d);
	free(json);
	/* failures_before_critical defaults to 0, as in Consul */
	json = config_with("check", "\"failures_before_warning\": 1");
	parse_bad(json, &d);
	cr_expect(has(&d, "service.checks[0].failures_before_warning: 1 is "
		      "greater than failures_before_critical (0, the default)"));
	hr_diag_dispose(&d);
	free(json);
	json = config_with("check", "\"failures_before_warning\": 3, "
			   "\"failures_before_critical\": 3");
	cfg = parse_ok(json, &d);
	cr_expect_eq(cfg->services[0].checks[0].failures_before_warning, 3);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
	free(json);
}

/* JSON text must be UTF-8 (RFC 8259): a string that is not, anywhere in
 * the document, rejects it; values are named by path, keys by line:col. */
Test(config, invalid_utf8_rejects_the_document)
{
	static const char *const bad[] = {
		"\xff",             /* a byte that is never UTF-8 */
		"\xc0\xaf",         /* an overlong form */
		"\xe0\x80\xaf",     /* an overlong form (3 bytes) */
		"\xed\xa0\x80",     /* a surrogate */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xe2\x82",         /* a sequence cut short */
		"\x80",             /* a lone continuation byte */
	};
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(bad); i++) {
		struct hr_diag d;
		char *json = NULL;

		cr_assert_gt(asprintf(&json,
				      "{\"service\": {\"name\": \"web\", \"checks\": [{\"name\":"
				      " \"a\", \"http\": \"http://127.0.0.1/\", \"header\": "
				      "{\"X\": [\"ok\", \"v%sv\"]}}]}}", bad[i]), 0);
		parse_bad(json, &d);
		cr_expect(has(&d, "service.checks[0].header.X[1]: is not valid "
			      "UTF-8 (at byte 1)"), "case %zu", i);
		cr_expect_eq(d.errors, 1, "case %zu", i);
		hr_diag_dispose(&d);
		free(json);
	}
}

Test(config, valid_utf8_is_kept)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"w\xc3\xa9\x62 \xe2\x82\xac \xf0\x9d\x84\x9e\","
		" \"tags\": [\"\\u00e9\\ud834\\udd1e\"], \"checks\": [{\"name\": \"a\","
		" \"tcp\": \"127.0.0.1:80\"}]}}", &d);

	cr_expect_str_eq(cfg->services[0].service.name, "w\xc3\xa9\x62 \xe2\x82\xac \xf0\x9d\x84\x9e");
	cr_expect_str_eq(cfg->services[0].service.tags[0], "\xc3\xa9\xf0\x9d\x84\x9e");
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config, invalid_utf8_in_a_key_names_line_and_column)
{
	struct hr_diag d;

	parse_bad("{\"service\": {\"name\": \"web\",\n  \"meta\": {\"k\xff\": \"v\"},"
		  " \"checks\": [{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"}]}}", &d);
	cr_expect(has(&d, "service.meta, key at line 2, column 12: is not valid "
		      "UTF-8 (at byte 1)"));
	cr_expect_eq(d.errors, 1);
	hr_diag_dispose(&d);
	/* at the top, and the strings under a bad key are not looked at */
	parse_bad("{\"s\xc3\": {\"x\": \"\xff\"}, \"service\": {\"name\": \"\xfe\"}}", &d);
	cr_expect(has(&d, "key at line 1, column 2: is not valid UTF-8 (at byte 1)"));
	cr_expect(has(&d, "service.name: is not valid UTF-8 (at byte 0)"));
	cr_expect_eq(d.errors, 2);
	hr_diag_dispose(&d);
}

/* cJSON decodes \u0000 to a NUL that would cut "ok\u0000x" to "ok". */
Test(config, nul_escape_is_an_error)
{
	struct hr_diag d;

	parse_bad("{\"service\": {\"name\": \"web\", \"checks\": [{\"name\": "
		  "\"ok\\u0000x\", \"tcp\": \"127.0.0.1:80\"}, {\"name\": \"b\\\\u0000\","
		  " \"tcp\": \"127.0.0.1:80\"}]}}", &d);
	cr_expect(has(&d, "service.checks[0].name: contains a NUL character (\\u0000)"));
	cr_expect_eq(d.errors, 1, "an escaped backslash before u0000 is text");
	hr_diag_dispose(&d);
}

/* A raw NUL byte inside a literal: cJSON copies it and the string ends. */
Test(config, raw_nul_byte_is_an_error)
{
	static const char text[] =
		"{\"service\": {\"name\": \"web\", \"checks\": [{\"name\": "
		"\"ok\0x\", \"tcp\": \"127.0.0.1:80\"}]}}";
	struct hr_config *cfg = NULL;
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(hr_config_parse(&cfg, text, sizeof(text) - 1, NULL, 0, &d),
		     -EINVAL);
	cr_expect(has(&d, "service.checks[0].name: contains a NUL character"));
	hr_diag_dispose(&d);
}

static char *config_with_body(size_t n)
{
	char *body = malloc(n + 1), *json = NULL;

	cr_assert_not_null(body);
	memset(body, 'b', n);
	body[n] = '\0';
	cr_assert_gt(asprintf(&json,
			      "{\"service\": {\"name\": \"web\", \"checks\": [{\"name\": "
			      "\"a\", \"http\": \"http://127.0.0.1/\", \"body\": \"%s\"}]}}",
			      body), 0);
	free(body);
	return json;
}

Test(config, string_length_limit)
{
	struct hr_config *cfg;
	struct hr_diag d;
	char *json = config_with_body(HR_CONF_STRING_MAX);

	cfg = parse_ok(json, &d);
	cr_expect_eq(strlen(cfg->services[0].checks[0].body), HR_CONF_STRING_MAX);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
	free(json);
	json = config_with_body(HR_CONF_STRING_MAX + 1);
	parse_bad(json, &d);
	cr_expect(has(&d, "service.checks[0].body: is 65537 bytes long, more "
		      "than the limit of 65536"));
	hr_diag_dispose(&d);
	free(json);
	json = config_with_body(10u << 20);
	parse_bad(json, &d);
	cr_expect(has(&d, "service.checks[0].body: is 10485760 bytes long"));
	cr_expect_eq(d.errors, 1);
	hr_diag_dispose(&d);
	free(json);
}

Test(config, document_size_limit)
{
	struct hr_config *cfg = (void *)1;
	struct hr_diag d;
	size_t n = HR_CONF_FILE_MAX + 1;
	char *text = malloc(n + 1);

	cr_assert_not_null(text);
	memset(text, ' ', n);
	memcpy(text, "{\"service\": {}}", 15);
	text[n] = '\0';
	hr_diag_init(&d);
	cr_assert_eq(hr_config_parse(&cfg, text, n, NULL, 0, &d), -EINVAL);
	cr_expect_null(cfg);
	cr_expect(has(&d, "the config is 16777217 bytes, more than the limit"));
	hr_diag_dispose(&d);
	free(text);
}

/* Keys and check names given twice are found with one sort, not by
 * comparing every pair: 100k of each took minutes before. */
Test(config, long_lists_are_not_quadratic, .timeout = 30)
{
	/* 10k under valgrind (HR_TEST_TIME_SCALE 10): still minutes if
	 * quadratic there */
	size_t n = 100000 / (size_t)hr_test_time_scale(), i, o = 0,
	       cap = n * 64 + 256;
	char *json = malloc(cap), want[96];
	struct hr_diag d;

	cr_assert_not_null(json);
	o += (size_t)snprintf(json + o, cap - o,
			      "{\"service\": {\"name\": \"web\", \"checks\": [");
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(json + o, cap - o,
				      "%s{\"name\": \"c%zu\", \"ttl\": \"1s\"}",
				      i ? "," : "", i % (n - 1));
	o += (size_t)snprintf(json + o, cap - o, "]");
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(json + o, cap - o, ", \"k%zu\": 0", i);
	snprintf(json + o, cap - o, ", \"k_0\": 1}}");
	parse_bad(json, &d);
	snprintf(want, sizeof(want),
		 "service.checks[%zu].name: duplicate check name \"c0\"", n - 1);
	cr_expect(has(&d, want), "%s", want);
	cr_expect(has(&d, "service.k_0: duplicate key (also given as \"k0\")"));
	cr_expect_eq(d.errors, n + 2, "%zu", d.errors);
	hr_diag_dispose(&d);
	free(json);
}

/* The etcd backend's validator, as the agent hands it to the loader. */
static void etcd_validate(const cJSON *conf, const char *path,
			  struct hr_diag *d)
{
	struct hr_etcd_conf c;

	if (!hr_etcd_conf_parse(&c, conf, path, d))
		hr_etcd_conf_dispose(&c);
}

/* A long value quoted in a message is cut on a character boundary: every
 * message is valid UTF-8 (they reach JSON logs on a failed reload). */
Test(config, messages_cut_on_characters)
{
	struct hr_config_backend be[1] = { { "etcd", etcd_validate, NULL } };
	char *target = malloc(6001), *json = NULL;
	struct hr_config *cfg = NULL;
	struct hr_diag d;
	size_t i;

	cr_assert_not_null(target);
	memcpy(target, "ftp:/", 5); /* odd, so that a cut in bytes splits one */
	for (i = 5; i + 2 <= 6000; i += 2)
		memcpy(target + i, "\xc3\xa9", 2);
	target[i] = '\0';
	cr_assert_gt(asprintf(&json,
			      "{\"service\": {\"name\": \"web\", \"checks\": [{\"name\": "
			      "\"a\", \"http\": \"%s\"}]}, \"registry\": {\"etcd\": "
			      "{\"endpoints\": [\"%s\"]}}}", target, target), 0);
	hr_diag_init(&d);
	cr_assert_eq(hr_config_parse(&cfg, json, strlen(json), be, 1, &d), -EINVAL);
	cr_expect_eq(d.errors, 2);
	for (i = 0; i < d.n; i++) {
		size_t n = strlen(d.v[i].text);

		cr_expect_eq(hr_conf_utf8_prefix(d.v[i].text, n), n, "%s",
			     d.v[i].text);
	}
	cr_expect(has(&d, "service.checks[0].http: \"ftp:/\xc3\xa9"));
	cr_expect(has(&d, "registry.etcd.endpoints[0]: \"ftp:/\xc3\xa9"));
	free(json);
	free(target);
	hr_diag_dispose(&d);
}
