/*
 * Consul service definitions drop in (issue 13, blocker 2): each fixture
 * of tests/fixtures/consul-defs, a definition in the shape Consul's
 * documentation gives, parsed by hr_config_parse() with the compiled-in
 * backends' validators (as the agent loads it), and what it becomes: the
 * checks' names, kinds, targets, timing and HTTP settings, the warnings
 * for what healthreg does not use. Below them, the rules those fixtures
 * rest on, one by one. tests/integration/test_consul_definitions.py runs
 * the same files through `healthreg validate` and `healthreg check`.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/backends.h"
#include "consul/consul_payload.h"
#include "healthreg/config.h"
#include "healthreg/util.h"

/* The fixture's text, with extra's members (a JSON object, or NULL) added
 * to its top level: healthreg's own sections next to Consul's. */
static char *fixture(const char *file, const char *extra)
{
	const char *src = getenv("HR_SOURCE_DIR");
	char path[4096], *text, *out;
	cJSON *root, *more, *it;
	FILE *f;
	long n;

	cr_assert_not_null(src, "HR_SOURCE_DIR is not set");
	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", src, file);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if (!extra)
		return text;
	root = cJSON_Parse(text);
	more = cJSON_Parse(extra);
	cr_assert(cJSON_IsObject(root) && cJSON_IsObject(more), "%s", file);
	for (it = more->child; it; it = more->child) {
		cJSON_DetachItemViaPointer(more, it);
		cJSON_AddItemToObject(root, it->string, it);
	}
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	cJSON_Delete(more);
	free(text);
	return out;
}

static int parse(struct hr_config **cfg, const char *file, const char *extra,
		 struct hr_diag *d)
{
	struct hr_config_backend be[8];
	size_t n = hr_backends_validators(be, HR_ARRAY_SIZE(be));
	char *text = fixture(file, extra);
	int rc;

	hr_diag_init(d);
	rc = hr_config_parse(cfg, text, strlen(text), be, n, d);
	free(text);
	return rc;
}

static struct hr_config *load(const char *file, const char *extra,
			      struct hr_diag *d)
{
	struct hr_config *cfg = NULL;
	size_t i;
	int rc = parse(&cfg, file, extra, d);

	for (i = 0; rc && i < d->n; i++)
		cr_log_error("%s", d->v[i].text);
	cr_assert_eq(rc, 0, "%s does not load", file);
	return cfg;
}

/* The diagnostic that contains text, or NULL. */
static const struct hr_diag_entry *said(const struct hr_diag *d,
					const char *text)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strstr(d->v[i].text, text))
			return &d->v[i];
	return NULL;
}

#define EXPECT_WARNING(d, text)                                               \
	do {                                                                  \
		const struct hr_diag_entry *e_ = said(d, text);               \
		cr_expect(e_ && e_->level == HR_DIAG_WARNING,                 \
			  "no warning \"%s\"", text);                         \
	} while (0)

#define EXPECT_ERROR(d, text)                                                 \
	do {                                                                  \
		const struct hr_diag_entry *e_ = said(d, text);               \
		cr_expect(e_ && e_->level == HR_DIAG_ERROR,                   \
			  "no error \"%s\"", text);                           \
	} while (0)

#define EXEC "{\"agent\": {\"enable_exec_checks\": true}}"
#define EXEC_CONSUL                                                           \
	"{\"agent\": {\"enable_exec_checks\": true},"                         \
	" \"registry\": {\"consul\": {}}}"

/* What registry.consul becomes for the backend (its dcsa_ms). */
static int64_t consul_dcsa_ms(const struct hr_config *cfg)
{
	const cJSON *conf = cJSON_GetObjectItemCaseSensitive(cfg->services[0].registry,
							     "consul");
	struct hr_consul_conf c;
	struct hr_diag d;
	int64_t ms;

	hr_diag_init(&d);
	hr_consul_conf_init(&c);
	cr_assert_eq(hr_consul_conf_parse(&c, conf, "registry.consul", NULL,
					  &d), 0);
	ms = c.dcsa_ms;
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
	return ms;
}

/* ---- the fixtures ------------------------------------------------------ */

/* The issue's definition: a singular check without a name. */
Test(consul_defs, issue_web_http)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/issue-web-http.json", NULL,
				     &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.errors + d.warnings, 0);
	cr_expect_str_eq(cfg->services[0].service.name, "web");
	cr_expect_eq(cfg->services[0].service.port, 80);
	cr_assert_eq(cfg->services[0].n_checks, 1);
	cr_expect_str_eq(c->name, "service:web");
	cr_expect_eq(c->kind, HR_CHECK_HTTP);
	cr_expect_str_eq(c->target, "http://localhost/health");
	cr_expect_eq(c->interval_ms, 10000);
	cr_expect_eq(c->timeout_ms, 5000);
	cr_expect_null(c->method);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* Consul's documented HTTP check: POST, a header as a map of lists, a
 * body, "tls_server_name": "" (not set). */
Test(consul_defs, http_post)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/http-post.json", NULL, &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.errors + d.warnings, 0);
	cr_assert_eq(cfg->services[0].n_checks, 1);
	cr_expect_str_eq(c->name, "HTTP API on port 5000");
	cr_expect_eq(c->kind, HR_CHECK_HTTP);
	cr_expect_str_eq(c->target, "https://localhost:5000/health");
	cr_expect_str_eq(c->method, "POST");
	cr_assert_eq(c->n_headers, 1);
	cr_expect_str_eq(c->headers[0].name, "Content-Type");
	cr_expect_str_eq(c->headers[0].value, "application/json");
	cr_expect_str_eq(c->body, "{\"method\":\"health\"}");
	cr_expect_null(c->tls_server_name);
	cr_expect_not(c->tls_skip_verify);
	cr_expect(c->disable_redirects);
	cr_expect_eq(c->interval_ms, 10000);
	cr_expect_eq(c->timeout_ms, 1000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(consul_defs, tcp_ssh)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/tcp-ssh.json", NULL, &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.errors + d.warnings, 0);
	cr_expect_str_eq(c->name, "SSH TCP on port 22");
	cr_expect_eq(c->kind, HR_CHECK_TCP);
	cr_expect_str_eq(c->target, "localhost:22");
	cr_expect_eq(c->interval_ms, 10000);
	cr_expect_eq(c->timeout_ms, 1000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(consul_defs, ttl_web_app)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/ttl-web-app.json", NULL, &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.errors + d.warnings, 0, "notes is accepted silently");
	cr_expect_str_eq(c->name, "Web App Status");
	cr_expect_eq(c->kind, HR_CHECK_TTL);
	cr_expect_eq(c->ttl_ms, 30000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* Script checks need agent.enable_exec_checks, as Consul's need
 * enable_local_script_checks: without it each args is an error. */
Test(consul_defs, script_checks_need_exec_enabled)
{
	struct hr_config *cfg = NULL;
	struct hr_diag d;

	cr_expect_eq(parse(&cfg, "consul-defs/multiple-checks.json", NULL,
			   &d), -EINVAL);
	cr_expect_eq(d.errors, 2);
	EXPECT_ERROR(&d, "service.checks[0].args: exec checks are disabled; set agent.enable_exec_checks");
	EXPECT_ERROR(&d, "service.checks[2].args: exec checks are disabled");
	hr_diag_dispose(&d);
}

Test(consul_defs, multiple_checks)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/multiple-checks.json", EXEC,
				     &d);
	const struct hr_check_spec *c = cfg->services[0].checks;

	cr_expect_eq(d.errors + d.warnings, 0);
	cr_expect_eq(cfg->services[0].service.n_tags, 2);
	cr_expect_str_eq(cfg->services[0].service.tags[1], "primary");
	cr_assert_eq(cfg->services[0].service.n_meta, 2);
	cr_expect_str_eq(cfg->services[0].service.meta[0].name, "version");
	cr_expect_str_eq(cfg->services[0].service.meta[1].value, "payments");
	cr_assert_eq(cfg->services[0].n_checks, 3);
	cr_expect_str_eq(c[0].name, "mem");
	cr_expect_eq(c[0].kind, HR_CHECK_EXEC);
	cr_expect_str_eq(c[0].args[2], "256MB");
	cr_expect_null(c[0].args[3]);
	cr_expect_eq(c[0].interval_ms, 5000);
	cr_expect_str_eq(c[1].name, "/health");
	cr_expect_eq(c[1].kind, HR_CHECK_HTTP);
	cr_expect_eq(c[1].interval_ms, 15000);
	cr_expect_str_eq(c[2].name, "cpu");
	cr_expect_str_eq(c[2].args[0], "/bin/check_cpu");
	cr_expect_eq(c[2].interval_ms, 10000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* "check": [{...}] (the JSON Consul's docs give for an initial status),
 * named by its id. */
Test(consul_defs, initial_status)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/initial-status.json", EXEC,
				     &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.errors + d.warnings, 0);
	cr_assert_eq(cfg->services[0].n_checks, 1);
	cr_expect_str_eq(c->name, "mem");
	cr_expect_eq(c->kind, HR_CHECK_EXEC);
	cr_expect(c->has_initial_status);
	cr_expect_eq(c->initial_status, HR_STATUS_PASSING);
	cr_expect_eq(c->interval_ms, 10000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* The JSON Consul's docs generate from HCL: "service", "meta" and
 * "tagged_addresses" as arrays of one object; a check without a name;
 * a timeout longer than the interval. */
Test(consul_defs, redis_hcl_form)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/redis-hcl-form.json", EXEC,
				     &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.warnings, 2);
	EXPECT_WARNING(&d, "service[0].tagged_addresses: valid in Consul but not used by healthreg; ignored");
	EXPECT_WARNING(&d, "service[0].checks[0].timeout: \"20s\" is longer than the interval");
	cr_expect_str_eq(cfg->services[0].service.id, "redis");
	cr_expect_eq(cfg->services[0].service.port, 80);
	cr_assert_eq(cfg->services[0].service.n_meta, 1);
	cr_expect_str_eq(cfg->services[0].service.meta[0].name, "custom_meta_key");
	cr_expect_str_eq(cfg->services[0].service.meta[0].value, "custom_meta_value");
	cr_expect_str_eq(cfg->services[0].service.tags[0], "primary");
	cr_assert_eq(cfg->services[0].n_checks, 1);
	cr_expect_str_eq(c->name, "service:redis");
	cr_expect_eq(c->interval_ms, 5000);
	cr_expect_eq(c->timeout_ms, 20000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* "services": [one service]; checks without names numbered as Consul
 * numbers them; a check's deregister_critical_service_after goes to the
 * one Consul check healthreg registers. */
Test(consul_defs, services_one)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/services-one.json",
				     "{\"registry\": {\"consul\": {}}}", &d);
	const struct hr_check_spec *c = cfg->services[0].checks;
	const cJSON *consul = cJSON_GetObjectItemCaseSensitive(cfg->services[0].registry,
							       "consul");

	cr_expect_eq(d.errors, 0);
	EXPECT_WARNING(&d, "services[0].enable_tag_override: valid in Consul but not used by healthreg; ignored");
	EXPECT_WARNING(&d, "services[0].checks[1].deregister_critical_service_after: used for the service's one Consul check, as registry.consul.deregister_critical_service_after");
	cr_expect_str_eq(cfg->services[0].service.id, "red0");
	cr_expect_str_eq(cfg->services[0].service.address, "");
	cr_assert_eq(cfg->services[0].n_checks, 2);
	cr_expect_str_eq(c[0].name, "service:red0:1");
	cr_expect_eq(c[0].kind, HR_CHECK_TCP);
	cr_expect_eq(c[0].timeout_ms, 1000);
	cr_expect_str_eq(c[1].name, "service:red0:2");
	cr_expect_eq(c[1].kind, HR_CHECK_HTTP);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				 consul, "deregister_critical_service_after")),
			 "90m");
	cr_expect_eq(consul_dcsa_ms(cfg), 90 * 60000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* The sample payload of Consul's /v1/agent/service/register, CamelCase,
 * "Args" for the script. */
Test(consul_defs, api_register_payload)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/api-register-payload.json",
				     EXEC_CONSUL, &d);
	const struct hr_check_spec *c = &cfg->services[0].checks[0];

	cr_expect_eq(d.errors, 0);
	cr_expect_eq(d.warnings, 3);
	EXPECT_WARNING(&d, "service.EnableTagOverride: valid in Consul but not used");
	EXPECT_WARNING(&d, "service.Weights: valid in Consul but not used");
	EXPECT_WARNING(&d, "service.Check.DeregisterCriticalServiceAfter: used for the service's one Consul check");
	cr_expect_str_eq(cfg->services[0].service.name, "redis");
	cr_expect_str_eq(cfg->services[0].service.id, "redis1");
	cr_expect_str_eq(cfg->services[0].service.address, "127.0.0.1");
	cr_expect_eq(cfg->services[0].service.port, 8000);
	cr_expect_str_eq(cfg->services[0].service.tags[1], "v1");
	cr_expect_str_eq(cfg->services[0].service.meta[0].value, "4.0");
	cr_assert_eq(cfg->services[0].n_checks, 1);
	cr_expect_str_eq(c->name, "service:redis1");
	cr_expect_eq(c->kind, HR_CHECK_EXEC);
	cr_expect_str_eq(c->args[0], "/usr/local/bin/check_redis.py");
	cr_expect_eq(c->interval_ms, 10000);
	cr_expect_eq(c->timeout_ms, 5000);
	cr_expect_eq(consul_dcsa_ms(cfg), 90 * 60000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* The API's CamelCase for every check kind healthreg runs, with names
 * given, by CheckID and by Consul's numbering. */
Test(consul_defs, api_camelcase_checks)
{
	struct hr_diag d;
	struct hr_config *cfg = load("consul-defs/api-camelcase-checks.json",
				     EXEC, &d);
	const struct hr_check_spec *c = cfg->services[0].checks;

	cr_expect_eq(d.errors, 0);
	cr_expect_eq(d.warnings, 5);
	EXPECT_WARNING(&d, "service.Connect: valid in Consul but not used by healthreg (healthreg registers no sidecar");
	EXPECT_WARNING(&d, "service.TaggedAddresses: valid in Consul but not used");
	EXPECT_WARNING(&d, "service.Checks[0].DeregisterCriticalServiceAfter: valid in Consul, used only with registry.consul; ignored");
	EXPECT_WARNING(&d, "service.Checks[1].ServiceID: valid in Consul but not used");
	EXPECT_WARNING(&d, "service.Checks[3].OutputMaxSize: valid in Consul but not used");
	cr_assert_eq(cfg->services[0].n_checks, 4);
	cr_expect_str_eq(c[0].name, "HTTP API");
	cr_expect_eq(c[0].kind, HR_CHECK_HTTP);
	cr_expect_str_eq(c[0].method, "PUT");
	cr_assert_eq(c[0].n_headers, 3);
	cr_expect_str_eq(c[0].headers[0].name, "X-Probe");
	cr_expect_str_eq(c[0].headers[0].value, "healthreg");
	cr_expect_str_eq(c[0].headers[1].name, "X-Probe");
	cr_expect_str_eq(c[0].headers[1].value, "consul");
	cr_expect_str_eq(c[0].headers[2].name, "Accept");
	cr_expect_str_eq(c[0].body, "{\"probe\":true}");
	cr_expect(c[0].tls_skip_verify);
	cr_expect_str_eq(c[0].tls_server_name, "web.service.consul");
	cr_expect_eq(c[0].interval_ms, 5000);
	cr_expect_eq(c[0].timeout_ms, 2000);
	cr_expect_eq(c[0].success_before_passing, 2);
	cr_expect_eq(c[0].failures_before_warning, 1);
	cr_expect_eq(c[0].failures_before_critical, 3);
	cr_expect_str_eq(c[1].name, "service:web-1:2");
	cr_expect_eq(c[1].kind, HR_CHECK_TCP);
	cr_expect(c[1].has_initial_status);
	cr_expect_eq(c[1].initial_status, HR_STATUS_PASSING);
	cr_expect_str_eq(c[2].name, "web-heartbeat");
	cr_expect_eq(c[2].kind, HR_CHECK_TTL);
	cr_expect_eq(c[2].ttl_ms, 15000);
	cr_expect_str_eq(c[3].name, "service:web-1:4");
	cr_expect_eq(c[3].kind, HR_CHECK_EXEC);
	cr_expect_str_eq(c[3].args[2], "90");
	cr_expect_eq(c[3].interval_ms, 60000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* ---- the rules --------------------------------------------------------- */

static struct hr_config *parse_text(const char *json, struct hr_diag *d)
{
	struct hr_config_backend be[8];
	size_t n = hr_backends_validators(be, HR_ARRAY_SIZE(be));
	struct hr_config *cfg = NULL;

	hr_diag_init(d);
	hr_config_parse(&cfg, json, strlen(json), be, n, d);
	return cfg;
}

/* "check" comes first in Consul's numbering; a name given is kept. */
Test(consul_defs, check_then_checks_numbered_together)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"id\": \"web-2\","
		" \"check\": {\"tcp\": \"127.0.0.1:1\"}, \"checks\": ["
		"{\"name\": \"db\", \"tcp\": \"127.0.0.1:2\"},"
		"{\"Name\": \"\", \"TCP\": \"127.0.0.1:3\"}]}}", &d);

	cr_assert_not_null(cfg);
	cr_expect_str_eq(cfg->services[0].checks[0].name, "service:web-2:1");
	cr_expect_str_eq(cfg->services[0].checks[1].name, "db");
	cr_expect_str_eq(cfg->services[0].checks[2].name, "service:web-2:3",
			 "an empty name is no name, as in Consul");
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* A name Consul's rule gives may collide with one written: the error
 * names the check, and the written name where it is. */
Test(consul_defs, generated_name_collision)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"check\": {\"tcp\": "
		"\"127.0.0.1:1\"}, \"Checks\": [{\"tcp\": \"127.0.0.1:2\"},"
		"{\"CheckID\": \"service:web:1\", \"tcp\": \"127.0.0.1:3\"}]}}",
		&d);

	cr_expect_null(cfg);
	cr_expect_eq(d.errors, 1);
	EXPECT_ERROR(&d, "service.Checks[1].CheckID: duplicate check name \"service:web:1\"");
	hr_diag_dispose(&d);
}

/* Two spellings of one key (Consul's aliases) are a duplicate: one would
 * be lost. */
Test(consul_defs, two_spellings_of_one_key)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"agent\": {\"enable_exec_checks\": true},"
		" \"service\": {\"name\": \"web\", \"checks\": ["
		"{\"args\": [\"/bin/true\"], \"ScriptArgs\": [\"/bin/false\"]},"
		"{\"id\": \"a\", \"CheckID\": \"b\", \"ttl\": \"5s\"}]}}", &d);

	cr_expect_null(cfg);
	cr_expect_eq(d.errors, 2);
	EXPECT_ERROR(&d, "service.checks[0].ScriptArgs: duplicate key (also given as \"args\")");
	EXPECT_ERROR(&d, "service.checks[1].CheckID: duplicate key (also given as \"id\")");
	hr_diag_dispose(&d);
}

/* script_args and ScriptArgs are args; GRPC and GRPCUseTLS normalise to
 * grpc and grpc_use_tls like every key (whatever their support). */
Test(consul_defs, key_spellings)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"agent\": {\"enable_exec_checks\": true},"
		" \"service\": {\"name\": \"web\", \"checks\": ["
		"{\"script_args\": [\"/bin/true\"]},"
		"{\"ScriptArgs\": [\"/bin/false\", \"x\"]},"
		"{\"HTTP\": \"http://127.0.0.1/\", \"TLS_Skip_Verify\": true,"
		" \"tlsskipverify\": false}]}}", &d);

	cr_expect_null(cfg, "tls_skip_verify given twice");
	EXPECT_ERROR(&d, "service.checks[2].tlsskipverify: duplicate key (also given as \"TLS_Skip_Verify\")");
	cr_expect_eq(d.errors, 1);
	hr_diag_dispose(&d);
	cfg = parse_text(
		"{\"agent\": {\"enable_exec_checks\": true},"
		" \"service\": {\"name\": \"web\", \"checks\": ["
		"{\"script_args\": [\"/bin/true\"]},"
		"{\"ScriptArgs\": [\"/bin/false\", \"x\"]}]}}", &d);
	cr_assert_not_null(cfg);
	cr_expect_eq(cfg->services[0].checks[0].kind, HR_CHECK_EXEC);
	cr_expect_str_eq(cfg->services[0].checks[1].args[1], "x");
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* Fields that would change what is registered if ignored are errors;
 * their default values are accepted. */
Test(consul_defs, meaning_changing_fields)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"Kind\": \"connect-proxy\","
		" \"Namespace\": \"team-a\", \"partition\": \"p1\","
		" \"checks\": [{\"DockerContainerID\": \"f972c95ebf0e\","
		" \"Shell\": \"/bin/bash\", \"args\": [\"/bin/check\"]}]},"
		" \"agent\": {\"enable_exec_checks\": true}}", &d);

	cr_expect_null(cfg);
	cr_expect_eq(d.errors, 4);
	EXPECT_ERROR(&d, "service.Kind: \"connect-proxy\" is not supported: healthreg registers a typical service");
	EXPECT_ERROR(&d, "service.Namespace: \"team-a\" is not supported: healthreg registers in the default namespace");
	EXPECT_ERROR(&d, "service.partition: \"p1\" is not supported: healthreg registers in the default partition");
	EXPECT_ERROR(&d, "service.checks[0].DockerContainerID: docker checks are not supported");
	hr_diag_dispose(&d);
	cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"kind\": \"\","
		" \"namespace\": \"default\", \"Partition\": \"\","
		" \"check\": {\"tcp\": \"127.0.0.1:1\"}}}", &d);
	cr_assert_not_null(cfg);
	cr_expect_eq(d.warnings, 0);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

/* registry.consul's own value wins over the checks'; the smallest of the
 * checks' is used; 0s contributes nothing; without registry.consul it is
 * only a warning. */
Test(consul_defs, check_deregister_critical_service_after)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"tcp\": \"127.0.0.1:1\", \"DeregisterCriticalServiceAfter\": \"3m\"},"
		"{\"tcp\": \"127.0.0.1:2\", \"deregister_critical_service_after\": \"0s\"},"
		"{\"tcp\": \"127.0.0.1:3\", \"DeregisterCriticalServiceAfter\": \"2m\"}]},"
		" \"registry\": {\"consul\": {}}}", &d);

	cr_assert_not_null(cfg);
	EXPECT_WARNING(&d, "service.checks[1].deregister_critical_service_after: 0s: this check makes Consul remove nothing; ignored");
	cr_expect_eq(consul_dcsa_ms(cfg), 120000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);

	cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"tcp\": \"127.0.0.1:1\", \"DeregisterCriticalServiceAfter\": \"3m\"}]},"
		" \"registry\": {\"consul\": {\"deregister_critical_service_after\": \"5m\"}}}",
		&d);
	cr_assert_not_null(cfg);
	EXPECT_WARNING(&d, "service.checks[0].DeregisterCriticalServiceAfter: ignored: registry.consul.deregister_critical_service_after is set");
	cr_expect_eq(consul_dcsa_ms(cfg), 300000);
	hr_config_free(cfg);
	hr_diag_dispose(&d);

	cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"tcp\": \"127.0.0.1:1\", \"DeregisterCriticalServiceAfter\": \"90x\"}]},"
		" \"registry\": {\"consul\": {}}}", &d);
	cr_expect_null(cfg);
	EXPECT_ERROR(&d, "service.checks[0].DeregisterCriticalServiceAfter: \"90x\" is not a duration");
	hr_diag_dispose(&d);
}

/* Consul's multi-service file: "services" of several runs them all;
 * "check" as an array of several is not one check. */
Test(consul_defs, services_and_arrays)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"services\": [{\"name\": \"a\", \"check\": {\"ttl\": \"5s\"}},"
		" {\"name\": \"b\", \"check\": {\"ttl\": \"5s\"}}]}", &d);

	cr_assert_not_null(cfg);
	cr_expect_eq(cfg->n_services, 2);
	cr_expect_str_eq(cfg->services[1].service.id, "b");
	cr_expect_str_eq(cfg->services[1].checks[0].name, "service:b");
	hr_config_free(cfg);
	hr_diag_dispose(&d);
	cfg = parse_text("{\"service\": {\"name\": \"a\", \"check\": ["
			 "{\"ttl\": \"5s\"}, {\"ttl\": \"6s\"}]}, \"checks\": []}",
			 &d);
	cr_expect_null(cfg);
	EXPECT_ERROR(&d, "service.check: is an array: one check is an object (several go in \"checks\")");
	EXPECT_ERROR(&d, "checks: unknown key (in Consul, checks of the node; healthreg's checks go in \"service\")");
	hr_diag_dispose(&d);
}

/* A ttl check's timeout is ignored, as Consul ignores it. */
Test(consul_defs, ttl_timeout_ignored)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_text(
		"{\"service\": {\"name\": \"web\", \"check\": "
		"{\"TTL\": \"30s\", \"Timeout\": \"1s\"}}}", &d);

	cr_assert_not_null(cfg);
	EXPECT_WARNING(&d, "service.check.Timeout: does not apply to ttl checks; ignored");
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}
