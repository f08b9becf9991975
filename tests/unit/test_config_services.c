/*
 * test_config_services.c - "services": several services in one config,
 * each with its own checks and groups and a registry overlay merged over
 * the top-level "registry"; ids unique within the agent; errors named by
 * the path where the key was written.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/config.h"
#include "confparse.h"

/* A backend validator that rejects "bad" and reports under its path. */
static void fake_validate(const cJSON *conf, const char *path,
			  struct hr_diag *d)
{
	const cJSON *it;
	char p[512];

	cJSON_ArrayForEach(it, conf) {
		if (strcmp(it->string, "bad"))
			continue;
		snprintf(p, sizeof(p), "%s.%s", path, it->string);
		hr_diag_add(d, HR_DIAG_ERROR, p, "is not allowed");
	}
	if (!cJSON_GetObjectItemCaseSensitive(conf, "endpoints"))
		hr_diag_add(d, HR_DIAG_ERROR, path, "\"endpoints\" is required");
}

static const struct hr_config_backend be[] = {
	{ "etcd", fake_validate, NULL },
	{ "consul", NULL, NULL },
};

static struct hr_config *parse_be(const char *json, struct hr_diag *d, int want)
{
	struct hr_config *cfg = NULL;
	size_t i;
	int rc;

	hr_diag_init(d);
	rc = hr_config_parse(&cfg, json, strlen(json), be, 2, d);
	for (i = 0; want == 0 && rc && i < d->n; i++)
		cr_log_error("%s", d->v[i].text);
	cr_assert_eq(rc, want);
	return cfg;
}

static int count(const struct hr_diag *d, const char *text)
{
	size_t i;
	int n = 0;

	for (i = 0; i < d->n; i++)
		n += strstr(d->v[i].text, text) != NULL;
	return n;
}

static const cJSON *member(const cJSON *obj, const char *a, const char *b)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, a);

	return b ? cJSON_GetObjectItemCaseSensitive(m, b) : m;
}

Test(config_services, three_services_own_checks_groups_and_overlay)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_be(
		"{\"services\": ["
		" {\"name\": \"web\", \"id\": \"web-1\", \"port\": 80,"
		"  \"checks\": [{\"name\": \"http\", \"tcp\": \"127.0.0.1:80\"}]},"
		" {\"name\": \"db\", \"port\": 5432,"
		"  \"groups\": {\"replicas\": {\"min_passing\": 2}},"
		"  \"checks\": [{\"name\": \"http\", \"tcp\": \"127.0.0.1:81\","
		"   \"group\": \"replicas\"},"
		"   {\"name\": \"b\", \"tcp\": \"127.0.0.1:82\", \"group\": \"replicas\"}],"
		"  \"registry\": {\"etcd\": {\"min_healthy\": 2}}},"
		" {\"name\": \"cache\", \"check\": {\"ttl\": \"5s\"},"
		"  \"registry\": {\"consul\": {\"address\": \"127.0.0.1:8500\"}}}],"
		" \"registry\": {\"etcd\": {\"endpoints\": [\"http://127.0.0.1:2379\"],"
		"  \"min_healthy\": 1}}}",
		&d, 0);

	cr_assert_eq(cfg->n_services, 3);
	cr_expect_str_eq(cfg->services[0].service.id, "web-1");
	cr_expect_str_eq(cfg->services[1].service.id, "db"); /* its name */
	cr_expect_eq(cfg->services[1].service.port, 5432);
	/* a check name is unique within its service, not across them */
	cr_expect_str_eq(cfg->services[0].checks[0].name, "http");
	cr_expect_str_eq(cfg->services[1].checks[0].name, "http");
	cr_expect_eq(cfg->services[0].n_groups, 0);
	cr_assert_eq(cfg->services[1].n_groups, 1);
	cr_expect_eq(cfg->services[1].groups[0].min_passing, 2);
	cr_expect_eq(cfg->services[1].checks[1].group, 0);
	cr_expect_str_eq(cfg->services[2].checks[0].name, "service:cache");
	/* the overlay, key by key: service 1's floor, the endpoints kept */
	cr_expect_eq(member(cfg->services[0].registry, "etcd", "min_healthy")->valueint, 1);
	cr_expect_eq(member(cfg->services[1].registry, "etcd", "min_healthy")->valueint, 2);
	cr_expect_not_null(member(cfg->services[1].registry, "etcd", "endpoints"));
	/* a backend only in an overlay is that service's alone */
	cr_expect_null(member(cfg->services[0].registry, "consul", NULL));
	cr_expect_null(member(cfg->services[1].registry, "consul", NULL));
	cr_expect_not_null(member(cfg->services[2].registry, "consul", "address"));
	cr_expect_not_null(member(cfg->services[2].registry, "etcd", "endpoints"));
	cr_expect_eq(hr_config_find_service(cfg, "db"), &cfg->services[1]);
	cr_expect_null(hr_config_find_service(cfg, "nope"));
	cr_expect_eq(hr_service_find_check(&cfg->services[1], "b"), 1);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config_services, the_single_service_is_services_0)
{
	struct hr_diag d;
	struct hr_config *cfg = parse_ok(
		"{\"service\": {\"name\": \"web\", \"checks\": ["
		"{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\", \"group\": \"g\"}]},"
		" \"groups\": {\"g\": {}}}", &d);

	cr_assert_eq(cfg->n_services, 1);
	cr_expect_str_eq(cfg->services[0].service.id, "web");
	cr_expect_eq(cfg->services[0].n_groups, 1);
	cr_expect_null(cfg->services[0].registry);
	hr_config_free(cfg);
	hr_diag_dispose(&d);
}

Test(config_services, duplicate_ids_name_the_entry)
{
	struct hr_diag d;

	parse_bad("{\"services\": ["
		  " {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"}},"
		  " {\"name\": \"b\", \"id\": \"a\", \"check\": {\"ttl\": \"5s\"}},"
		  " {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"}}]}", &d);
	cr_expect(has(&d, "services[1].id: duplicate service id \"a\" (also services[0])"));
	cr_expect(has(&d, "services[2]: duplicate service id \"a\" (its name; also services[0]): give it an \"id\""));
	cr_expect_eq(d.errors, 2);
	hr_diag_dispose(&d);
}

Test(config_services, service_and_services_and_misplaced_keys)
{
	struct hr_diag d;

	parse_bad("{\"service\": {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"}},"
		  " \"services\": [{\"name\": \"b\", \"check\": {\"ttl\": \"5s\"}}]}",
		  &d);
	cr_expect(has(&d, "services: and \"service\" both given: one or the other"));
	hr_diag_dispose(&d);
	parse_bad("{\"services\": []}", &d);
	cr_expect(has(&d, "services: must be an array of one or more services"));
	hr_diag_dispose(&d);
	/* top-level groups with several services: whose? */
	parse_bad("{\"groups\": {\"g\": {}}, \"services\": ["
		  " {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"}},"
		  " {\"name\": \"b\", \"check\": {\"ttl\": \"5s\"}}]}", &d);
	cr_expect(has(&d, "groups: with several \"services\", each service has its own \"groups\""));
	hr_diag_dispose(&d);
	/* a service's own groups and registry belong to "services" */
	parse_bad("{\"service\": {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"},"
		  " \"groups\": {}}}", &d);
	cr_expect(has(&d, "service.groups: only in an entry of \"services\""));
	hr_diag_dispose(&d);
	/* groups of one service are not another's */
	parse_bad("{\"services\": ["
		  " {\"name\": \"a\", \"groups\": {\"g\": {}}, \"check\": {\"ttl\": \"5s\"}},"
		  " {\"name\": \"b\", \"checks\": [{\"name\": \"x\", \"ttl\": \"5s\","
		  "  \"group\": \"g\"}]}]}", &d);
	cr_expect(has(&d, "services[1].checks[0].group: group \"g\" is not defined"));
	hr_diag_dispose(&d);
	/* names unique within a service */
	parse_bad("{\"services\": [{\"name\": \"a\", \"checks\": ["
		  " {\"name\": \"x\", \"ttl\": \"5s\"}, {\"name\": \"x\", \"ttl\": \"6s\"}]}]}",
		  &d);
	cr_expect(has(&d, "services[0].checks[1].name: duplicate check name \"x\""));
	hr_diag_dispose(&d);
}

/* An error of the overlay is named where it was written; one of the top
 * level once, however many services share it. */
Test(config_services, registry_errors_are_named_where_written)
{
	struct hr_diag d;

	parse_be("{\"services\": ["
		 " {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"}},"
		 " {\"name\": \"b\", \"check\": {\"ttl\": \"5s\"},"
		 "  \"registry\": {\"etcd\": {\"bad\": 1}}},"
		 " {\"name\": \"c\", \"check\": {\"ttl\": \"5s\"},"
		 "  \"registry\": {\"nosuch\": {}, \"consul\": 3}}],"
		 " \"registry\": {\"etcd\": {\"bad\": 2, \"endpoints\": []}}}",
		 &d, -EINVAL);
	cr_expect_eq(count(&d, "registry.etcd.bad: is not allowed"), 2,
		     "top once, overlay once");
	cr_expect(has(&d, "services[1].registry.etcd.bad: is not allowed"));
	cr_expect(has(&d, "services[2].registry.nosuch: unknown registry backend"));
	cr_expect(has(&d, "services[2].registry.consul: is not an object"));
	hr_diag_dispose(&d);
	/* a member only in the overlay: its missing key is the overlay's */
	parse_be("{\"services\": ["
		 " {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"},"
		 "  \"registry\": {\"etcd\": {\"prefix\": \"/x/\"}}}]}",
		 &d, -EINVAL);
	cr_expect(has(&d, "services[0].registry.etcd: \"endpoints\" is required"));
	cr_expect_eq(d.errors, 1);
	hr_diag_dispose(&d);
	/* An overlay that is not an object (fuzz_config found it: an array
	 * overlay with an error in the top section read a NULL key): its own
	 * error, the top's errors named at the top. */
	parse_be("{\"services\": ["
		 " {\"name\": \"a\", \"check\": {\"ttl\": \"5s\"},"
		 "  \"registry\": [{\"etcd\": {}}]}],"
		 " \"registry\": {\"etcd\": {\"bad\": 1}}}",
		 &d, -EINVAL);
	cr_expect(has(&d, "registry.etcd.bad: is not allowed"));
	cr_expect(has(&d, "services[0].registry"));
	hr_diag_dispose(&d);
}

/* The fleet benchmark's shape: 1,000 services, one tcp check each, and a
 * shared registry. Ids and check names are checked in sorts, so this is
 * fast; a duplicate at the end is still found. */
Test(config_services, a_thousand_services, .timeout = 20)
{
	size_t n = 1000, i, o = 0, cap = n * 160 + 256;
	char *json = malloc(cap);
	struct hr_config *cfg;
	struct hr_diag d;

	cr_assert_not_null(json);
	o += (size_t)snprintf(json + o, cap - o, "{\"services\": [");
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(json + o, cap - o,
				      "%s{\"name\": \"s%zu\", \"port\": %zu, \"check\": "
				      "{\"name\": \"tcp\", \"tcp\": \"127.0.0.1:%zu\"}}",
				      i ? "," : "", i, 1000 + i, 1000 + i);
	snprintf(json + o, cap - o,
		 "], \"registry\": {\"etcd\": {\"endpoints\": [\"http://127.0.0.1:2379\"]}}}");
	cfg = parse_be(json, &d, 0);
	cr_expect_eq(cfg->n_services, n);
	cr_expect_str_eq(cfg->services[999].service.id, "s999");
	cr_expect_not_null(member(cfg->services[999].registry, "etcd", "endpoints"));
	hr_config_free(cfg);
	hr_diag_dispose(&d);
	/* the last id again */
	memcpy(strstr(json, "\"s999\""), "\"s998\"", 6);
	parse_be(json, &d, -EINVAL);
	cr_expect(has(&d, "services[999]: duplicate service id \"s998\""));
	hr_diag_dispose(&d);
	free(json);
}
