/*
 * The grpc check's keys in lib/config.c (kept apart from test_config.c):
 * "grpc" as a kind with its target, grpc_use_tls, the TLS keys it shares
 * with http checks, and Consul's spellings (GRPC, GRPCUseTLS).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "confparse.h"
#include "healthreg/config.h"

Test(config_grpc, kind_and_fields)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"grpc\": \"127.0.0.1:9000\"},"
		"{\"name\": \"b\", \"grpc\": \"[::1]:9000/my.Service\","
		" \"grpc_use_tls\": true, \"tls_skip_verify\": true,"
		" \"tls_server_name\": \"grpc.test\", \"ca_file\": \"ca.pem\","
		" \"timeout\": \"2s\"}]}}", &d);
	const struct hr_check_spec *a = &cfg->services[0].checks[0], *b = &cfg->services[0].checks[1];

	cr_expect_eq(d.n, 0);
	cr_expect_eq(a->kind, HR_CHECK_GRPC);
	cr_expect_str_eq(hr_check_kind_name(a->kind), "grpc");
	cr_expect_str_eq(a->target, "127.0.0.1:9000");
	cr_expect(!a->grpc_use_tls);
	cr_expect_eq(a->timeout_ms, 5000);
	cr_expect_str_eq(b->target, "[::1]:9000/my.Service");
	cr_expect(b->grpc_use_tls && b->tls_skip_verify);
	cr_expect_str_eq(b->tls_server_name, "grpc.test");
	cr_expect_str_eq(b->ca_file, "ca.pem");
	cr_expect_eq(b->timeout_ms, 2000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* A Consul definition, as its documentation writes one: no warning. */
Test(config_grpc, consul_spelling)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"Name\": \"web\", \"Checks\": ["
		"{\"Name\": \"Service health status\","
		" \"GRPC\": \"127.0.0.1:12345/Health\", \"GRPCUseTLS\": true,"
		" \"TLSSkipVerify\": false, \"Interval\": \"10s\"}]}}", &d);

	cr_expect_eq(d.n, 0, "%s", d.n ? d.v[0].text : "");
	cr_expect_eq(cfg->services[0].checks[0].kind, HR_CHECK_GRPC);
	cr_expect_str_eq(cfg->services[0].checks[0].target, "127.0.0.1:12345/Health");
	cr_expect(cfg->services[0].checks[0].grpc_use_tls);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* Consul takes TLS keys on a grpc check without TLS: so do we, with a
 * warning that they do nothing. */
Test(config_grpc, tls_keys_without_tls_warn)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"grpc\": \"127.0.0.1:9000\","
		" \"tls_skip_verify\": true, \"grpc_use_tls\": false}]}}", &d);

	cr_expect_eq(d.errors, 0);
	cr_expect(has(&d, "service.checks[0].tls_skip_verify: applies to a "
			  "grpc check only with grpc_use_tls; ignored"));
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config_grpc, errors)
{
	static const struct {
		const char *check, *want;
	} cases[] = {
		{ "\"grpc\": \"127.0.0.1\"",
		  "service.checks[0].grpc: \"127.0.0.1\" is not host:port or host:port/service" },
		{ "\"grpc\": \"::1:9000\"",
		  "service.checks[0].grpc: \"::1:9000\" is not host:port" },
		{ "\"grpc\": \"http://127.0.0.1:9000\"",
		  "is not host:port or host:port/service" },
		{ "\"grpc\": \"\"", "service.checks[0].grpc: " },
		{ "\"grpc\": 9000", "service.checks[0].grpc: " },
		{ "\"grpc\": \"127.0.0.1:1\", \"grpc_use_tls\": \"yes\"",
		  "service.checks[0].grpc_use_tls: " },
		{ "\"grpc\": \"127.0.0.1:1\", \"method\": \"GET\"",
		  "service.checks[0].method: applies to http checks only" },
		{ "\"http\": \"http://x/\", \"grpc_use_tls\": true",
		  "service.checks[0].grpc_use_tls: applies to grpc checks only" },
		{ "\"tcp\": \"x:1\", \"ca_file\": \"ca.pem\"",
		  "service.checks[0].ca_file: applies to http and grpc checks only" },
		{ "\"tcp\": \"x:1\", \"tls_skip_verify\": true",
		  "service.checks[0].tls_skip_verify: applies to http and grpc checks only" },
		{ "\"grpc\": \"127.0.0.1:1\", \"tcp\": \"x:1\"",
		  "service.checks[0]: has more than one of \"http\", \"tcp\", \"grpc\"" },
	};
	char json[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hr_diag d;

		snprintf(json, sizeof(json),
			 "{\"service\": {\"name\": \"web\", \"checks\": ["
			 "{\"name\": \"a\", %s}]}}", cases[i].check);
		parse_bad(json, &d);
		cr_expect(has(&d, cases[i].want), "%s: got %s", cases[i].check,
			  d.n ? d.v[0].text : "nothing");
		hr_diag_dispose(&d);
	}
}

/* Reload's diff sees a changed grpc_use_tls or ca_file. */
Test(config_grpc, spec_copy_and_equal)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"grpc\": \"127.0.0.1:9000/s\","
		" \"grpc_use_tls\": true, \"ca_file\": \"ca.pem\"}]}}", &d);
	struct hr_check_spec copy;

	cr_assert_eq(hr_check_spec_copy(&copy, &cfg->services[0].checks[0]), 0);
	cr_expect(hr_check_spec_equal(&copy, &cfg->services[0].checks[0]));
	cr_expect_neq(copy.ca_file, cfg->services[0].checks[0].ca_file);
	copy.grpc_use_tls = false;
	cr_expect(!hr_check_spec_equal(&copy, &cfg->services[0].checks[0]));
	copy.grpc_use_tls = true;
	copy.ca_file[0] = 'X';
	cr_expect(!hr_check_spec_equal(&copy, &cfg->services[0].checks[0]));
	hr_check_spec_dispose(&copy);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}
