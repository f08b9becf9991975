/*
 * test_consul_payload.c - the pure half of the Consul backend: config
 * validation, URLs, request bodies, output preparation, answer
 * classification (backoff: test_regcore.c). Table-driven.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "consul/consul_payload.h"
#include "healthreg/confget.h"
#include "healthreg/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Parse a config text; returns rc and leaves diag for inspection. */
static int parse(const char *json, const struct hr_consul_env *env,
		 struct hr_consul_conf *c, struct hr_diag *d)
{
	cJSON *j = json ? cJSON_Parse(json) : NULL;
	int rc;

	if (json)
		cr_assert_not_null(j, "bad test JSON: %s", json);
	hr_diag_init(d);
	rc = hr_consul_conf_parse(c, j, "registry.consul", env, d);
	cJSON_Delete(j);
	return rc;
}

static bool diag_has(const struct hr_diag *d, enum hr_diag_level lvl,
		     const char *text)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].level == lvl && d->v[i].text &&
		    strstr(d->v[i].text, text))
			return true;
	return false;
}

static void dump(const struct hr_diag *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		cr_log_info("diag: %s", d->v[i].text);
}

Test(consul_payload, conf_defaults)
{
	struct hr_consul_conf c;
	struct hr_diag d;

	cr_assert_eq(parse("{}", NULL, &c, &d), 0);
	cr_assert_str_eq(c.address, "http://127.0.0.1:8500");
	cr_assert_eq(c.check_ttl_ms, 30000);
	cr_assert_eq(c.dcsa_ms, 60000);
	cr_assert_eq(c.common.deregister_after_ms, 0);
	cr_assert_null(c.token);
	cr_assert_null(c.token_file);
	cr_assert(hr_consul_wants(&c, HR_STATUS_PASSING));
	cr_assert(hr_consul_wants(&c, HR_STATUS_WARNING));
	cr_assert(!hr_consul_wants(&c, HR_STATUS_CRITICAL));
	cr_assert(!hr_consul_wants(&c, HR_STATUS_UNKNOWN));
	cr_assert_eq(hr_consul_update_period_ms(&c), 10000);
	cr_assert_eq(d.errors, 0);
	cr_assert_eq(d.warnings, 0);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);

	/* A missing object is the same as {}. */
	cr_assert_eq(parse(NULL, NULL, &c, &d), 0);
	cr_assert_str_eq(c.address, "http://127.0.0.1:8500");
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
}

Test(consul_payload, conf_all_keys)
{
	struct hr_consul_conf c;
	struct hr_diag d;

	cr_assert_eq(parse("{\"address\":\"https://consul.local:8501/\","
			   "\"token_file\":\"/run/t\",\"ca_file\":\"ca\","
			   "\"cert_file\":\"c\",\"key_file\":\"k\","
			   "\"tls_server_name\":\"agent.dc1\","
			   "\"check_ttl\":\"9s\","
			   "\"deregister_critical_service_after\":\"5m\","
			   "\"deregister_after\":\"1m30s\","
			   "\"register_when\":[\"passing\"]}",
			   NULL, &c, &d), 0);
	dump(&d);
	cr_assert_str_eq(c.address, "https://consul.local:8501");
	cr_assert_str_eq(c.token_file, "/run/t");
	cr_assert_str_eq(c.common.ca_file, "ca");
	cr_assert_str_eq(c.common.cert_file, "c");
	cr_assert_str_eq(c.common.key_file, "k");
	cr_assert_str_eq(c.tls_server_name, "agent.dc1");
	cr_assert_eq(c.check_ttl_ms, 9000);
	cr_assert_eq(c.dcsa_ms, 300000);
	cr_assert_eq(c.common.deregister_after_ms, 90000);
	cr_assert_eq(hr_consul_update_period_ms(&c), 3000);
	cr_assert(hr_consul_wants(&c, HR_STATUS_PASSING));
	cr_assert(!hr_consul_wants(&c, HR_STATUS_WARNING));
	cr_assert_eq(d.errors + d.warnings, 0);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
}

Test(consul_payload, conf_environment)
{
	static const struct {
		struct hr_consul_env env;
		const char *json;
		const char *address, *token, *token_file;
	} t[] = {
		{ { .http_addr = "10.1.2.3:8500" }, "{}",
		  "http://10.1.2.3:8500", NULL, NULL },
		{ { .http_addr = "https://[::1]:8501" }, "{}",
		  "https://[::1]:8501", NULL, NULL },
		/* The config wins over the environment. */
		{ { .http_addr = "10.1.2.3:8500" },
		  "{\"address\":\"http://127.0.0.1:9\"}",
		  "http://127.0.0.1:9", NULL, NULL },
		{ { .http_token = "s3cret" }, "{}", "http://127.0.0.1:8500",
		  "s3cret", NULL },
		/* A token file (either source) beats the token variable. */
		{ { .http_token = "s3cret", .http_token_file = "/env/file" },
		  "{}",
		  "http://127.0.0.1:8500", NULL, "/env/file" },
		{ { .http_token = "s3cret", .http_token_file = "/env/file" },
		  "{\"token_file\":\"/conf/file\"}", "http://127.0.0.1:8500",
		  NULL, "/conf/file" },
		{ { .http_addr = "", .http_token = "", .http_token_file = "" },
		  "{}", "http://127.0.0.1:8500", NULL, NULL },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_consul_conf c;
		struct hr_diag d;

		cr_assert_eq(parse(t[i].json, &t[i].env, &c, &d), 0,
			     "case %zu", i);
		cr_assert_str_eq(c.address, t[i].address, "case %zu", i);
		if (t[i].token)
			cr_assert_str_eq(c.token, t[i].token, "case %zu", i);
		else
			cr_assert_null(c.token, "case %zu", i);
		if (t[i].token_file)
			cr_assert_str_eq(c.token_file, t[i].token_file,
					 "case %zu", i);
		else
			cr_assert_null(c.token_file, "case %zu", i);
		hr_consul_conf_dispose(&c);
		hr_diag_dispose(&d);
	}
}

Test(consul_payload, conf_errors_name_their_path)
{
	static const struct {
		const char *json;
		const char *addr_env;
		size_t errors;
		const char *text;
	} t[] = {
		{ "{\"check_ttl\":\"5x\"}", NULL, 1,
		  "registry.consul.check_ttl: \"5x\" is not a duration" },
		{ "{\"check_ttl\":5}", NULL, 1,
		  "registry.consul.check_ttl: 5 is not a duration (like" },
		{ "{\"check_ttl\":\"500ms\"}", NULL, 1,
		  "registry.consul.check_ttl: must be at least 1s" },
		{ "{\"check_ttl\":\"-1s\"}", NULL, 1,
		  "registry.consul.check_ttl: \"-1s\" is not a duration" },
		{ "{\"deregister_after\":\"soon\"}", NULL, 1,
		  "registry.consul.deregister_after: \"soon\" is not a "
		  "duration" },
		{ "{\"deregister_critical_service_after\":true}", NULL, 1,
		  "registry.consul.deregister_critical_service_after: true is "
		  "not a duration" },
		{ "{\"bogus\":1}", NULL, 1, "registry.consul.bogus: unknown key" },
		{ "{\"min_healthy\":10001}", NULL, 1,
		  "registry.consul.min_healthy: 10001 is out of range "
		  "(0..10000)" },
		{ "{\"min_healthy\":\"2\"}", NULL, 1,
		  "registry.consul.min_healthy: \"2\" is not an integer" },
		{ "{\"max_unhealthy_fraction\":1.5}", NULL, 1,
		  "registry.consul.max_unhealthy_fraction: must be a number "
		  "from 0 to 1" },
		{ "{\"max_unhealthy_fraction\":\"half\"}", NULL, 1,
		  "registry.consul.max_unhealthy_fraction: must be a number" },
		{ "{\"Address\":\"http://x\"}", NULL, 1,
		  "registry.consul.Address: unknown key" },
		{ "{\"token\":\"s3cret\"}", NULL, 1,
		  "registry.consul.token: unknown key" },
		{ "{\"address\":\"ftp://x\"}", NULL, 1,
		  "registry.consul.address: \"ftp://x\" is not an http://" },
		{ "{\"address\":\"http://\"}", NULL, 1,
		  "registry.consul.address:" },
		{ "{\"address\":\"http://h:99999\"}", NULL, 1,
		  "registry.consul.address:" },
		{ "{\"address\":\"http://h:8500/v1\"}", NULL, 1,
		  "registry.consul.address:" },
		{ "{\"address\":\"\"}", NULL, 1,
		  "registry.consul.address: must not be empty" },
		{ "{\"address\":7}", NULL, 1,
		  "registry.consul.address: 7 is not a string" },
		{ "{}", "unix://run/consul.sock", 1,
		  "(from CONSUL_HTTP_ADDR): a unix:// address needs an "
		  "absolute socket path" },
		{ "{}", "ftp://h:1", 1,
		  "\"ftp://h:1\" (from CONSUL_HTTP_ADDR) is not an http://" },
		{ "{\"token_file\":null}", NULL, 1,
		  "registry.consul.token_file: null is not a string" },
		{ "{\"register_when\":[]}", NULL, 1,
		  "registry.consul.register_when: must be a non-empty array" },
		{ "{\"register_when\":\"passing\"}", NULL, 1,
		  "registry.consul.register_when: must be a non-empty array" },
		{ "{\"register_when\":[\"passing\",\"down\"]}", NULL, 1,
		  "registry.consul.register_when[1]: \"down\" is not one of" },
		{ "{\"register_when\":[\"unknown\"]}", NULL, 1,
		  "registry.consul.register_when[0]:" },
		{ "{\"register_when\":[1]}", NULL, 1,
		  "registry.consul.register_when[0]: 1 is not one of" },
		{ "{\"key_file\":\"k\"}", NULL, 1,
		  "registry.consul.key_file: needs a client certificate "
		  "(cert_file or CONSUL_CLIENT_CERT)" },
		{ "[]", NULL, 1, "registry.consul: must be an object" },
		{ "\"x\"", NULL, 1, "registry.consul: must be an object" },
		/* Every problem is reported, not just the first. */
		{ "{\"check_ttl\":\"x\",\"deregister_after\":\"y\",\"zz\":1,"
		  "\"register_when\":[\"nope\"]}", NULL, 4,
		  "registry.consul.zz: unknown key" },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_consul_env env = { .http_addr = t[i].addr_env };
		struct hr_consul_conf c;
		struct hr_diag d;
		int rc = parse(t[i].json, &env, &c, &d);

		dump(&d);
		cr_assert_eq(rc, -EINVAL, "case %zu: rc %d", i, rc);
		cr_assert_eq(d.errors, t[i].errors, "case %zu: %zu errors", i,
			     d.errors);
		cr_assert(diag_has(&d, HR_DIAG_ERROR, t[i].text),
			  "case %zu: no \"%s\"", i, t[i].text);
		cr_assert_null(c.address, "case %zu: not disposed", i);
		hr_diag_dispose(&d);
	}
}

/* Strings of the section are read by the shared getters: valid UTF-8,
 * bounded; an address shown in a message is cut on a character. */
Test(consul_payload, conf_strings_utf8_and_bounded)
{
	struct hr_consul_env env = { .http_addr = NULL };
	char addr[400], *json = NULL;
	struct hr_consul_conf c;
	struct hr_diag d;
	size_t i;

	cr_assert_eq(parse("{\"token_file\":\"/t\xff\"}", &env, &c, &d), -EINVAL);
	cr_assert(diag_has(&d, HR_DIAG_ERROR, "registry.consul.token_file: is "
			   "not valid UTF-8 (at byte 2)"));
	hr_diag_dispose(&d);
	memcpy(addr, "http://", 7); /* so that byte 128 is inside a character */
	for (i = 7; i + 2 < sizeof(addr); i += 2)
		memcpy(addr + i, "\xc3\xa9", 2);
	memcpy(addr + i - 2, ":x", 3);
	env.http_addr = addr;
	cr_assert_eq(parse("{}", &env, &c, &d), -EINVAL);
	cr_assert_eq(d.n, 1);
	cr_assert_eq(hr_conf_utf8_prefix(d.v[0].text, strlen(d.v[0].text)),
		     strlen(d.v[0].text), "%s", d.v[0].text);
	hr_diag_dispose(&d);
	env.http_addr = NULL;
	cr_assert_gt(asprintf(&json, "{\"address\":\"http://%070000d\"}", 0), 0);
	cr_assert_eq(parse(json, &env, &c, &d), -EINVAL);
	cr_assert(diag_has(&d, HR_DIAG_ERROR, "registry.consul.address: is 70007 "
			   "bytes long"));
	hr_diag_dispose(&d);
	free(json);
}

Test(consul_payload, conf_warnings)
{
	static const struct {
		const char *json;
		const char *text;
	} t[] = {
		{ "{\"deregister_critical_service_after\":\"30s\"}",
		  "registry.consul.deregister_critical_service_after: Consul "
		  "raises values below 1m" },
		{ "{\"deregister_critical_service_after\":\"0s\"}",
		  "registry.consul.deregister_critical_service_after: 0s "
		  "disables" },
		{ "{\"ca_file\":\"ca.pem\"}",
		  "registry.consul: TLS settings are ignored" },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_consul_conf c;
		struct hr_diag d;

		cr_assert_eq(parse(t[i].json, NULL, &c, &d), 0, "case %zu",
			     i);
		cr_assert_eq(d.errors, 0, "case %zu", i);
		cr_assert(diag_has(&d, HR_DIAG_WARNING, t[i].text),
			  "case %zu: no \"%s\"", i, t[i].text);
		hr_consul_conf_dispose(&c);
		hr_diag_dispose(&d);
	}
}

Test(consul_payload, addr_split)
{
	static const struct {
		const char *addr;
		int rc;
		bool tls;
		const char *host;
		int port;
	} t[] = {
		{ "http://127.0.0.1:8500", 0, false, "127.0.0.1", 8500 },
		{ "http://127.0.0.1", 0, false, "127.0.0.1", 80 },
		{ "https://consul", 0, true, "consul", 443 },
		{ "https://consul:8501/", 0, true, "consul", 8501 },
		{ "http://[::1]:8500", 0, false, "::1", 8500 },
		{ "http://[::1", -EINVAL, false, NULL, 0 },
		{ "http://:8500", -EINVAL, false, NULL, 0 },
		{ "http://h:", -EINVAL, false, NULL, 0 },
		{ "http://h:0", -EINVAL, false, NULL, 0 },
		{ "http://h:65536", -EINVAL, false, NULL, 0 },
		{ "http://h:80x", -EINVAL, false, NULL, 0 },
		{ "http://user@h", -EINVAL, false, NULL, 0 },
		{ "http://h/path", -EINVAL, false, NULL, 0 },
		{ "unix:///x", -EINVAL, false, NULL, 0 },
		{ "127.0.0.1:8500", -EINVAL, false, NULL, 0 },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		char host[64];
		bool tls = !t[i].tls;
		int port = -1;
		int rc = hr_consul_addr_split(t[i].addr, &tls, host,
					      sizeof(host), &port);

		cr_assert_eq(rc, t[i].rc, "case %zu (%s)", i, t[i].addr);
		if (rc)
			continue;
		cr_assert_eq(tls, t[i].tls, "case %zu", i);
		cr_assert_str_eq(host, t[i].host, "case %zu", i);
		cr_assert_eq(port, t[i].port, "case %zu", i);
	}
}

Test(consul_payload, urls)
{
	static const struct {
		char *(*fn)(const char *, const char *);
		const char *id, *want;
	} t[] = {
		{ hr_consul_url_update, "service:web-1:healthreg",
		  "http://a:1/v1/agent/check/update/service:web-1:healthreg" },
		{ hr_consul_url_update, "service:a b/c?d#e%:healthreg",
		  "http://a:1/v1/agent/check/update/"
		  "service:a%20b%2Fc%3Fd%23e%25:healthreg" },
		{ hr_consul_url_deregister, "web-1",
		  "http://a:1/v1/agent/service/deregister/web-1" },
		{ hr_consul_url_deregister, "\xc3\xa9t\xc3\xa9",
		  "http://a:1/v1/agent/service/deregister/%C3%A9t%C3%A9" },
	};
	char *u;
	size_t i;

	for (i = 0; i < N(t); i++) {
		u = t[i].fn("http://a:1", t[i].id);
		cr_assert_str_eq(u, t[i].want, "case %zu", i);
		free(u);
	}
	u = hr_consul_url_register("http://a:1");
	/* No replace-existing-checks: an operator's maintenance check and
	 * other checks of the service survive a (re-)registration. */
	cr_assert_str_eq(u, "http://a:1/v1/agent/service/register");
	free(u);
	u = hr_consul_url_maintenance("http://a:1", "web-1", true,
				      "deploy v2 & co=1");
	cr_assert_str_eq(u, "http://a:1/v1/agent/service/maintenance/web-1"
			    "?enable=true&reason=deploy%20v2%20%26%20co%3D1");
	free(u);
	u = hr_consul_url_maintenance("http://a:1", "web-1", true, NULL);
	cr_assert_str_eq(u, "http://a:1/v1/agent/service/maintenance/web-1"
			    "?enable=true");
	free(u);
	u = hr_consul_url_maintenance("http://a:1", "web-1", false, "x");
	cr_assert_str_eq(u, "http://a:1/v1/agent/service/maintenance/web-1"
			    "?enable=false");
	free(u);
	u = hr_consul_check_id("web-1");
	cr_assert_str_eq(u, "service:web-1:healthreg");
	free(u);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

Test(consul_payload, register_body_full)
{
	char *tags[] = { "v1", "blue", NULL };
	struct hr_header meta[] = { { "team", "core" }, { "zone", "a" } };
	struct hr_service_spec svc = {
		.name = "web", .id = "web-1", .address = "10.0.0.5",
		.port = 8080, .tags = tags, .n_tags = 2, .meta = meta,
		.n_meta = 2,
	};
	struct hr_consul_conf c;
	struct hr_diag d;
	cJSON *j, *chk, *v;
	char *body;

	cr_assert_eq(parse("{\"check_ttl\":\"15s\"}", NULL, &c, &d), 0);
	cr_assert_eq(hr_consul_register_body(&body, &svc, &c,
					     HR_STATUS_WARNING), 0);
	cr_log_info("%s", body);
	j = cJSON_Parse(body);
	cr_assert_not_null(j);
	cr_assert_str_eq(jstr(j, "ID"), "web-1");
	cr_assert_str_eq(jstr(j, "Name"), "web");
	cr_assert_str_eq(jstr(j, "Address"), "10.0.0.5");
	v = cJSON_GetObjectItemCaseSensitive(j, "Port");
	cr_assert(cJSON_IsNumber(v) && v->valueint == 8080);
	v = cJSON_GetObjectItemCaseSensitive(j, "Tags");
	cr_assert_eq(cJSON_GetArraySize(v), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(v, 1)->valuestring, "blue");
	v = cJSON_GetObjectItemCaseSensitive(j, "Meta");
	cr_assert_str_eq(jstr(v, "team"), "core");
	cr_assert_str_eq(jstr(v, "zone"), "a");
	chk = cJSON_GetObjectItemCaseSensitive(j, "Check");
	cr_assert_not_null(chk);
	cr_assert_str_eq(jstr(chk, "CheckID"), "service:web-1:healthreg");
	cr_assert_str_eq(jstr(chk, "TTL"), "15s");
	cr_assert_str_eq(jstr(chk, "Status"), "warning");
	cr_assert_str_eq(jstr(chk, "DeregisterCriticalServiceAfter"), "1m");
	cr_assert_not_null(jstr(chk, "Name"));
	/* Only keys Consul's strict decoder knows. */
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(chk, "ID"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "Checks"));
	cJSON_Delete(j);
	free(body);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
}

Test(consul_payload, register_body_minimal)
{
	char *tags[] = { NULL };
	struct hr_service_spec svc = { .name = "db\xff", .tags = tags };
	struct hr_consul_conf c;
	struct hr_diag d;
	cJSON *j, *chk;
	char *body;

	cr_assert_eq(parse("{\"deregister_critical_service_after\":\"0s\"}",
			   NULL, &c, &d), 0);
	cr_assert_eq(hr_consul_register_body(&body, &svc, &c,
					     HR_STATUS_UNKNOWN), 0);
	j = cJSON_Parse(body);
	cr_assert_not_null(j);
	/* The ID defaults to the name; bad bytes are repaired. */
	cr_assert_str_eq(jstr(j, "ID"), "db\xef\xbf\xbd");
	cr_assert_str_eq(jstr(j, "Name"), "db\xef\xbf\xbd");
	cr_assert_eq(cJSON_GetArraySize(
			     cJSON_GetObjectItemCaseSensitive(j, "Tags")), 0);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "Address"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "Port"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "Meta"));
	chk = cJSON_GetObjectItemCaseSensitive(j, "Check");
	cr_assert_str_eq(jstr(chk, "Status"), "critical");
	cr_assert_str_eq(jstr(chk, "TTL"), "30s");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(
		chk, "DeregisterCriticalServiceAfter"));
	cJSON_Delete(j);
	free(body);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
}

Test(consul_payload, update_body_odd_bytes)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "3 passing", "3 passing" },
		{ "", "" },
		{ "quote\" back\\slash", "quote\" back\\slash" },
		{ "nl\ncr\rtab\tbell\x01" "del\x7f", "nl\ncr\rtab\tbell\x01"
		  "del\x7f" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "bad\xff!", "bad\xef\xbf\xbd!" },
		{ "cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd" },
		{ "overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd" },
		{ "surrogate\xed\xa0\x80",
		  "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "big\xf4\x90\x80\x80",
		  "big\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "lone\x80" "cont", "lone\xef\xbf\xbd" "cont" },
		{ "</script>\xe2\x80\xa8", "</script>\xe2\x80\xa8" },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		char *body;
		cJSON *j;

		cr_assert_eq(hr_consul_update_body(&body, HR_STATUS_PASSING,
						   t[i].in, 0), 0);
		/* The body itself is ASCII-safe JSON: no raw controls. */
		for (const char *p = body; *p; p++)
			cr_assert((unsigned char)*p >= 0x20,
				  "case %zu: raw control in %s", i, body);
		j = cJSON_Parse(body);
		cr_assert_not_null(j, "case %zu: %s", i, body);
		cr_assert_str_eq(jstr(j, "Status"), "passing");
		cr_assert_str_eq(jstr(j, "Output"), t[i].out, "case %zu", i);
		cr_assert_eq(cJSON_GetArraySize(j), 2, "case %zu", i);
		cJSON_Delete(j);
		free(body);
	}
}

Test(consul_payload, update_body_statuses)
{
	static const struct {
		enum hr_status s;
		const char *word;
	} t[] = {
		{ HR_STATUS_PASSING, "passing" },
		{ HR_STATUS_WARNING, "warning" },
		{ HR_STATUS_CRITICAL, "critical" },
		{ HR_STATUS_UNKNOWN, "critical" },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		char *body;
		cJSON *j;

		cr_assert_eq(hr_consul_update_body(&body, t[i].s, NULL, 0), 0);
		j = cJSON_Parse(body);
		cr_assert_str_eq(jstr(j, "Status"), t[i].word);
		cr_assert_str_eq(jstr(j, "Output"), "");
		cr_assert_str_eq(hr_consul_status_word(t[i].s), t[i].word);
		cJSON_Delete(j);
		free(body);
	}
}

/* Checks the invariants of a prepared output; returns its kept length. */
static size_t check_truncated(const char *in, const char *out)
{
	size_t n = strlen(in), len = strlen(out), keep, total;
	const char *m = strstr(out, " ... (captured ");

	cr_assert_leq(len, HR_CONSUL_OUTPUT_MAX, "%zu bytes", len);
	cr_assert_not_null(m, "no marker");
	keep = (size_t)(m - out);
	cr_assert_eq(sscanf(m, " ... (captured %zu of %zu bytes)", &keep,
			    &total), 2);
	cr_assert_eq(keep, (size_t)(m - out), "marker says %zu", keep);
	cr_assert_eq(total, n);
	cr_assert_eq(memcmp(in, out, keep), 0, "head differs");
	cr_assert_str_eq(m + strlen(m) - 6, "bytes)");
	return keep;
}

Test(consul_payload, output_truncation)
{
	static const struct {
		size_t len;
		const char *unit; /* repeated to len bytes */
		bool truncated;
	} t[] = {
		{ 0, "a", false },
		{ 4095, "a", false },
		{ 4096, "a", false },
		{ 4097, "a", true },
		{ 5000, "a", true },
		{ 100000, "a", true },
		{ 6000, "\xc3\xa9", true },          /* 2-byte characters */
		{ 6000, "\xe2\x82\xac", true },      /* 3-byte */
		{ 6000, "\xf0\x9f\x98\x80", true },  /* 4-byte */
		{ 4096, "\xf0\x9f\x98\x80", false },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		size_t ul = strlen(t[i].unit), n = t[i].len / ul * ul, k;
		char *in = malloc(n + 1), *out;

		for (k = 0; k < n; k += ul)
			memcpy(in + k, t[i].unit, ul);
		in[n] = '\0';
		out = hr_consul_output_prepare(in, HR_CONSUL_OUTPUT_MAX);
		cr_assert_not_null(out);
		if (!t[i].truncated) {
			cr_assert_str_eq(out, in, "case %zu", i);
		} else {
			k = check_truncated(in, out);
			/* Cut on a character boundary. */
			cr_assert_eq(k % ul, 0, "case %zu: cut at %zu", i, k);
			cr_assert_geq(k, HR_CONSUL_OUTPUT_MAX - 40);
		}
		free(in);
		free(out);
	}
}

Test(consul_payload, output_truncation_after_repair)
{
	/* Repair grows the text (1 bad byte -> 3); the cut follows. */
	char in[2001];
	char *out;

	memset(in, '\xff', 2000);
	in[2000] = '\0';
	out = hr_consul_output_prepare(in, HR_CONSUL_OUTPUT_MAX);
	cr_assert_leq(strlen(out), HR_CONSUL_OUTPUT_MAX);
	cr_assert(strstr(out, " ... (captured "));
	cr_assert(strstr(out, " of 6000 bytes)"));
	cr_assert_eq(strncmp(out, "\xef\xbf\xbd\xef\xbf\xbd", 6), 0);
	free(out);
}

Test(consul_payload, classify)
{
	static const struct {
		enum hr_consul_op op;
		long code;
		const char *body;
		enum hr_consul_verdict v;
	} t[] = {
		{ HR_CONSUL_OP_REGISTER, 200, "", HR_CONSUL_OK },
		{ HR_CONSUL_OP_REGISTER, 204, NULL, HR_CONSUL_OK },
		/* A 200 with garbage is still a 200: writes have no body. */
		{ HR_CONSUL_OP_UPDATE, 200, "\x00\xff<html>", HR_CONSUL_OK },
		{ HR_CONSUL_OP_UPDATE, 404,
		  "Unknown check ID \"service:w:healthreg\". Ensure that the "
		  "check ID is passed, not the check name.", HR_CONSUL_LOST },
		{ HR_CONSUL_OP_UPDATE, 500,
		  "CheckID \"service:w:healthreg\" does not have associated "
		  "TTL", HR_CONSUL_LOST },
		{ HR_CONSUL_OP_UPDATE, 500, "CheckID does not have associated "
		  "TTL", HR_CONSUL_LOST },
		{ HR_CONSUL_OP_UPDATE, 500, "rpc error: no leader",
		  HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_UPDATE, 500, NULL, HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_UPDATE, 503, "", HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_UPDATE, 429, "rate limited", HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_UPDATE, 403,
		  "Permission denied: token with AccessorID '0000' lacks "
		  "permission 'service:write' on \"web\"", HR_CONSUL_FORBIDDEN },
		{ HR_CONSUL_OP_UPDATE, 403, "ACL not found",
		  HR_CONSUL_TOKEN_UNKNOWN },
		{ HR_CONSUL_OP_REGISTER, 403, "ACL not found",
		  HR_CONSUL_TOKEN_UNKNOWN },
		{ HR_CONSUL_OP_UPDATE, 400, "Invalid check status: 'x'",
		  HR_CONSUL_REJECTED },
		{ HR_CONSUL_OP_UPDATE, 0, NULL, HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_UPDATE, 302, "", HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_UPDATE, 999, "???", HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_REGISTER, 400, "Invalid Service Meta",
		  HR_CONSUL_REJECTED },
		{ HR_CONSUL_OP_REGISTER, 404, "Invalid URL path",
		  HR_CONSUL_REJECTED },
		{ HR_CONSUL_OP_REGISTER, 405, "method PUT not allowed",
		  HR_CONSUL_REJECTED },
		{ HR_CONSUL_OP_REGISTER, 403, "Permission denied",
		  HR_CONSUL_FORBIDDEN },
		{ HR_CONSUL_OP_REGISTER, 500, "does not have associated TTL",
		  HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_REGISTER, 502, "<html>bad gateway</html>",
		  HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_DEREGISTER, 200, "", HR_CONSUL_OK },
		{ HR_CONSUL_OP_DEREGISTER, 404, "Unknown service ID \"w\"",
		  HR_CONSUL_OK },
		{ HR_CONSUL_OP_DEREGISTER, 500, "Unknown service \"w\"",
		  HR_CONSUL_OK },
		{ HR_CONSUL_OP_DEREGISTER, 500, "boom", HR_CONSUL_RETRY },
		{ HR_CONSUL_OP_DEREGISTER, 403, "Permission denied",
		  HR_CONSUL_FORBIDDEN },
		{ HR_CONSUL_OP_MAINTENANCE, 200, "", HR_CONSUL_OK },
		{ HR_CONSUL_OP_MAINTENANCE, 404,
		  "No service registered with ID \"w\"", HR_CONSUL_LOST },
		{ HR_CONSUL_OP_MAINTENANCE, 400, "Missing value for enable",
		  HR_CONSUL_REJECTED },
		{ HR_CONSUL_OP_MAINTENANCE, 401, "", HR_CONSUL_FORBIDDEN },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		size_t len = t[i].body ? strlen(t[i].body) : 0;

		/* The garbage case holds a NUL: give its real length. */
		if (t[i].body && t[i].body[0] == '\0' && t[i].code == 200 &&
		    t[i].op == HR_CONSUL_OP_UPDATE)
			len = 8;
		cr_assert_eq(hr_consul_classify(t[i].op, t[i].code, t[i].body,
						len),
			     t[i].v, "case %zu: %s %ld -> %s", i,
			     hr_consul_op_name(t[i].op), t[i].code,
			     hr_consul_verdict_name(
				     hr_consul_classify(t[i].op, t[i].code,
							t[i].body, len)));
	}
}

Test(consul_payload, excerpt)
{
	static const struct {
		const char *body;
		size_t len, buf;
		const char *want;
	} t[] = {
		{ "Permission denied", 17, 64, "Permission denied" },
		{ "line one\nline two", 17, 64, "line one" },
		{ "crlf\r\nx", 7, 64, "crlf" },
		{ "bin\x01\xff\x00x", 7, 64, "bin???x" },
		{ "truncate me please", 18, 9, "truncate" },
		{ NULL, 0, 8, "" },
		{ "", 0, 8, "" },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		char buf[64];

		memset(buf, 'Z', sizeof(buf));
		hr_consul_excerpt(buf, t[i].buf, t[i].body, t[i].len);
		cr_assert_str_eq(buf, t[i].want, "case %zu", i);
	}
}

/* ---- issue 12: Consul as its source says it behaves -------------------- */

/* A service healthreg keeps registered while critical must not be reaped
 * by Consul's deregister_critical_service_after, else it is registered
 * again and again (the reap loop). */
Test(consul_payload, conf_reap_loop_is_impossible)
{
	static const struct {
		const char *json;
		int rc;
		const char *text; /* an error, or with rc 0 a warning */
		int64_t dcsa_ms;
	} t[] = {
		{ "{\"register_when\":[\"passing\",\"critical\"],"
		  "\"deregister_critical_service_after\":\"1s\"}", -EINVAL,
		  "registry.consul.register_when: contains \"critical\", but "
		  "deregister_critical_service_after (1s)", 0 },
		{ "{\"deregister_after\":\"2m\","
		  "\"deregister_critical_service_after\":\"1m\"}", -EINVAL,
		  "registry.consul.deregister_after: (2m) must be shorter than "
		  "deregister_critical_service_after (1m)", 0 },
		{ "{\"deregister_after\":\"1m\","
		  "\"deregister_critical_service_after\":\"10s\"}", -EINVAL,
		  "deregister_critical_service_after (10s, raised to 1m by "
		  "Consul)", 0 },
		/* Consul raises 10s to 1m: a 45s grace ends first. */
		{ "{\"deregister_after\":\"45s\","
		  "\"deregister_critical_service_after\":\"10s\"}", 0, NULL,
		  10000 },
		/* Derived: not sent when critical stays registered... */
		{ "{\"register_when\":[\"passing\",\"warning\",\"critical\"]}", 0,
		  "registry.consul.deregister_critical_service_after: not sent, "
		  "because register_when contains \"critical\"", 0 },
		/* ...and a minute past a long grace. */
		{ "{\"deregister_after\":\"2m\"}", 0, NULL, 180000 },
		{ "{\"deregister_after\":\"30s\"}", 0, NULL, 60000 },
		{ "{\"register_when\":[\"critical\"],"
		  "\"deregister_critical_service_after\":\"0s\"}", 0, NULL, 0 },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_consul_conf c;
		struct hr_diag d;
		int rc = parse(t[i].json, NULL, &c, &d);

		dump(&d);
		cr_assert_eq(rc, t[i].rc, "case %zu", i);
		if (t[i].text)
			cr_assert(diag_has(&d, rc ? HR_DIAG_ERROR :
						    HR_DIAG_WARNING,
					   t[i].text),
				  "case %zu: no \"%s\"", i, t[i].text);
		if (!rc) {
			cr_assert_eq(c.dcsa_ms, t[i].dcsa_ms, "case %zu: %lld",
				     i, (long long)c.dcsa_ms);
			hr_consul_conf_dispose(&c);
		}
		hr_diag_dispose(&d);
	}
}

Test(consul_payload, conf_check_output_max_size)
{
	static const struct {
		const char *json;
		int rc;
		int max;
	} t[] = {
		{ "{}", 0, 4096 },
		{ "{\"check_output_max_size\":1024}", 0, 1024 },
		{ "{\"check_output_max_size\":1}", 0, 1 },
		{ "{\"check_output_max_size\":0}", -EINVAL, 0 },
		{ "{\"check_output_max_size\":-5}", -EINVAL, 0 },
		{ "{\"check_output_max_size\":1.5}", -EINVAL, 0 },
		{ "{\"check_output_max_size\":\"4k\"}", -EINVAL, 0 },
		{ "{\"check_output_max_size\":2000000}", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_consul_conf c;
		struct hr_diag d;
		int rc = parse(t[i].json, NULL, &c, &d);

		cr_assert_eq(rc, t[i].rc, "case %zu", i);
		if (rc)
			cr_assert(diag_has(&d, HR_DIAG_ERROR,
					   "registry.consul.check_output_max_size"),
				  "case %zu", i);
		else
			cr_assert_eq(c.output_max, t[i].max, "case %zu", i);
		if (!rc)
			hr_consul_conf_dispose(&c);
		hr_diag_dispose(&d);
	}
}

static bool utf8_whole(const char *s)
{
	size_t i = 0, n = strlen(s);

	while (i < n) {
		size_t l = hr_utf8_len((const unsigned char *)s + i, n - i);

		if (!l)
			return false;
		i += l;
	}
	return true;
}

/* Any configured size: the text fits, is whole UTF-8, and keeps the
 * marker whenever it fits. */
Test(consul_payload, output_truncation_to_the_configured_size)
{
	static const char *const units[] = { "a", "\xc3\xa9", "\xe2\x82\xac",
					     "\xf0\x9f\x98\x80" };
	static const size_t maxes[] = { 1, 2, 3, 5, 33, 40, 41, 64, 100, 511,
					1024, 4096, 10000 };
	size_t u, m;

	for (u = 0; u < N(units); u++) {
		for (m = 0; m < N(maxes); m++) {
			size_t ul = strlen(units[u]), n = 3000 / ul * ul, k;
			char *in = malloc(n + 1), *out;

			for (k = 0; k < n; k += ul)
				memcpy(in + k, units[u], ul);
			in[n] = '\0';
			out = hr_consul_output_prepare(in, maxes[m]);
			cr_assert_not_null(out);
			cr_assert_leq(strlen(out), maxes[m], "unit %zu max %zu",
				      u, maxes[m]);
			cr_assert(utf8_whole(out), "unit %zu max %zu: split", u,
				  maxes[m]);
			if (n <= maxes[m])
				cr_assert_str_eq(out, in);
			else if (maxes[m] >= 64)
				cr_assert(strstr(out, " ... (captured "),
					  "max %zu", maxes[m]);
			free(in);
			free(out);
		}
	}
}

static void service_diag(const struct hr_service_spec *s, int want_rc,
			 const char *text, enum hr_diag_level lvl)
{
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(hr_consul_service_check(s, "service", &d), want_rc, "%s",
		     text ? text : "(ok)");
	dump(&d);
	if (text)
		cr_assert(diag_has(&d, lvl, text), "no \"%s\"", text);
	else
		cr_assert_eq(d.n, 0);
	hr_diag_dispose(&d);
}

/* structs.ValidateServiceMetadata: what the register handler refuses with
 * "400 Invalid Service Meta", named by its path. */
Test(consul_payload, service_meta_as_consul_checks_it)
{
	char k128[129], k129[130], v512[513], v513[514];
	static struct hr_header many[65];
	static char names[65][8];
	struct hr_header one;
	struct hr_service_spec s = { .name = "web" };
	static const struct {
		const char *key, *value, *text;
	} t[] = {
		{ "team", "core", NULL },
		{ "a_B-9", "", NULL },
		{ "", "x", "service.meta: the key is empty" },
		{ "a.b", "x", "service.meta.a.b: the key may hold only" },
		{ "caf\xc3\xa9", "x", "the key may hold only letters" },
		{ "with space", "x", "service.meta.with space: the key" },
		{ "consul-version", "1", "service.meta.consul-version: keys "
		  "starting with \"consul-\" are reserved" },
		{ "Consul-x", "1", NULL }, /* the prefix is case-sensitive */
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		one.name = (char *)t[i].key;
		one.value = (char *)t[i].value;
		s.meta = &one;
		s.n_meta = 1;
		service_diag(&s, t[i].text ? -EINVAL : 0, t[i].text,
			     HR_DIAG_ERROR);
	}
	memset(k128, 'k', 128);
	k128[128] = '\0';
	memset(k129, 'k', 129);
	k129[129] = '\0';
	memset(v512, 'v', 512);
	v512[512] = '\0';
	memset(v513, 'v', 513);
	v513[513] = '\0';
	one.name = k128;
	one.value = v512;
	service_diag(&s, 0, NULL, HR_DIAG_ERROR);
	one.name = k129;
	service_diag(&s, -EINVAL, "the key is longer than 128 bytes",
		     HR_DIAG_ERROR);
	one.name = k128;
	one.value = v513;
	service_diag(&s, -EINVAL, "the value is longer than 512 bytes",
		     HR_DIAG_ERROR);
	/* 512 bytes of 2-byte characters are 256 characters: still refused
	 * at 513 bytes, as Go's len() counts bytes. */
	for (i = 0; i < 65; i++) {
		snprintf(names[i], sizeof(names[i]), "k%zu", i);
		many[i].name = names[i];
		many[i].value = "v";
	}
	s.meta = many;
	s.n_meta = 64;
	service_diag(&s, 0, NULL, HR_DIAG_ERROR);
	s.n_meta = 65;
	service_diag(&s, -EINVAL, "service.meta: has 65 pairs; Consul accepts "
		     "at most 64", HR_DIAG_ERROR);
}

Test(consul_payload, service_address_as_consul_checks_it)
{
	struct hr_service_spec s = { .name = "web" };
	static const char *const ok[] = { "10.0.0.5", "::1", "fe80::1",
					  "web-1.example.com", "localhost" };
	static const char *const any[] = { "0.0.0.0", "::", "[::]" };
	static const char *const odd[] = { "http://10.0.0.5", "10.0.0.5:8080",
					   "[::1]", "a b", "host/x" };
	size_t i;

	for (i = 0; i < N(ok); i++) {
		s.address = (char *)ok[i];
		service_diag(&s, 0, NULL, HR_DIAG_ERROR);
	}
	for (i = 0; i < N(any); i++) {
		s.address = (char *)any[i];
		service_diag(&s, -EINVAL, "service.address: ", HR_DIAG_ERROR);
		service_diag(&s, -EINVAL, "Invalid service address",
			     HR_DIAG_ERROR);
	}
	for (i = 0; i < N(odd); i++) {
		s.address = (char *)odd[i];
		service_diag(&s, 0, "service.address: ", HR_DIAG_WARNING);
	}
}

/* ---- the fleet floor ------------------------------------------------- */

Test(consul_payload, floor_conf)
{
	struct hr_consul_conf c;
	struct hr_diag d;

	cr_assert_eq(parse("{}", NULL, &c, &d), 0);
	cr_assert_not(hr_consul_floor_on(&c), "off by default");
	cr_assert_eq(c.min_healthy, 0);
	cr_assert_float_eq(c.max_unhealthy_fraction, 1.0, 1e-12);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
	cr_assert_eq(parse("{\"min_healthy\":2,\"max_unhealthy_fraction\":0.5,"
			   "\"check_ttl\":\"2h\"}", NULL, &c, &d), 0);
	cr_assert(hr_consul_floor_on(&c));
	cr_assert_eq(c.min_healthy, 2);
	cr_assert_float_eq(c.max_unhealthy_fraction, 0.5, 1e-12);
	/* the stale rule: an hour, or three TTLs when longer */
	cr_assert_eq(hr_consul_floor_stale_after_s(&c), 3 * 7200);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
	cr_assert_eq(parse("{\"max_unhealthy_fraction\":0.25}", NULL, &c, &d),
		     0);
	cr_assert(hr_consul_floor_on(&c), "a fraction alone is a floor");
	cr_assert_eq(hr_consul_floor_stale_after_s(&c), 3600);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
}

/* The floor needs instances told apart by ID and a name Consul takes in
 * a KV key; both errors name the floor's key. */
Test(consul_payload, floor_check_service)
{
	static const struct {
		const char *name, *id, *text;
	} t[] = {
		{ "web", "web-1", NULL },
		{ "web.v2,a_b-c", "x", NULL },
		{ "web", NULL, "registry.consul.min_healthy: the fleet floor "
			       "tells the instances of a service apart by "
			       "their service ID: set service.id" },
		{ "web", "web", "(it equals service.name)" },
		{ "web api", "w1", "service.name \"web api\" has others" },
		{ "caf\xc3\xa9", "w1", "has others" },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_service_spec svc = { .name = (char *)t[i].name,
					       .id = (char *)t[i].id };
		struct hr_consul_conf c;
		struct hr_diag d, d2;

		cr_assert_eq(parse("{\"min_healthy\":2}", NULL, &c, &d), 0);
		hr_diag_init(&d2);
		cr_assert_eq(hr_consul_floor_check(&c, &svc, "registry.consul",
						   &d2),
			     t[i].text ? -EINVAL : 0, "case %zu", i);
		dump(&d2);
		if (t[i].text)
			cr_assert(diag_has(&d2, HR_DIAG_ERROR, t[i].text),
				  "case %zu: no \"%s\"", i, t[i].text);
		hr_consul_conf_dispose(&c);
		hr_diag_dispose(&d);
		hr_diag_dispose(&d2);
		/* without the floor the service is not the floor's concern */
		cr_assert_eq(parse("{}", NULL, &c, &d), 0);
		hr_diag_init(&d2);
		cr_assert_eq(hr_consul_floor_check(&c, &svc, "registry.consul",
						   &d2), 0);
		hr_consul_conf_dispose(&c);
		hr_diag_dispose(&d);
		hr_diag_dispose(&d2);
	}
}

Test(consul_payload, floor_urls)
{
	char *u = hr_consul_url_floor("http://h:8500", "web", false, 0);

	cr_assert_str_eq(u, "http://h:8500/v1/kv/healthreg/floor/web");
	free(u);
	u = hr_consul_url_floor("http://h:8500", "web", true, 0);
	cr_assert_str_eq(u, "http://h:8500/v1/kv/healthreg/floor/web?cas=0");
	free(u);
	u = hr_consul_url_floor("http://h", "web", true, 18446744073709551615u);
	cr_assert_str_eq(u, "http://h/v1/kv/healthreg/floor/web"
			    "?cas=18446744073709551615");
	free(u);
	u = hr_consul_url_fleet("http://h:8500", "web");
	cr_assert_str_eq(u, "http://h:8500/v1/health/service/web");
	free(u);
}

/* Consul's GET /v1/kv/<key> answer, with value v (NULL: null). */
static char *kv_answer(uint64_t index, const char *v)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789+/";
	char enc[2048], *out = malloc(4096);
	size_t n = v ? strlen(v) : 0, i, o = 0;

	for (i = 0; v && i < n; i += 3) {
		unsigned a = (unsigned char)v[i];
		unsigned b = i + 1 < n ? (unsigned char)v[i + 1] : 0;
		unsigned c = i + 2 < n ? (unsigned char)v[i + 2] : 0;
		unsigned w = a << 16 | b << 8 | c;

		enc[o++] = b64[w >> 18 & 63];
		enc[o++] = b64[w >> 12 & 63];
		enc[o++] = i + 1 < n ? b64[w >> 6 & 63] : '=';
		enc[o++] = i + 2 < n ? b64[w & 63] : '=';
	}
	enc[o] = '\0';
	snprintf(out, 4096,
		 "[{\"LockIndex\":0,\"Key\":\"healthreg/floor/web\","
		 "\"Flags\":0,\"Value\":%s%s%s,\"CreateIndex\":3,"
		 "\"ModifyIndex\":%llu}]", v ? "\"" : "", v ? enc : "null",
		 v ? "\"" : "", (unsigned long long)index);
	return out;
}

static int doc_parse(struct hr_consul_floor_doc *d, long code,
		     const char *body)
{
	return hr_consul_floor_doc_parse(d, code, body, body ? strlen(body) : 0);
}

Test(consul_payload, floor_doc_parse)
{
	struct hr_consul_floor_doc d;
	char *a;

	/* no key: the empty list, created with cas=0 */
	cr_assert_eq(doc_parse(&d, 404, ""), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(d.index, 0);
	hr_consul_floor_doc_dispose(&d);

	a = kv_answer(42, "{\"leavers\":[{\"id\":\"web-1\",\"at\":1700000000},"
			  "{\"id\":\"web-3\",\"at\":1700000100,\"x\":1},"
			  "{\"id\":7,\"at\":1},{\"id\":\"web-4\"},"
			  "{\"id\":\"\",\"at\":1},{\"id\":\"w\",\"at\":1e300},"
			  "{\"id\":\"v\",\"at\":-5},{\"id\":\"u\",\"at\":1.5}],"
			  "\"other\":true}");
	cr_assert_eq(doc_parse(&d, 200, a), 0);
	free(a);
	cr_assert_eq(d.index, 42);
	cr_assert_eq(d.n, 2, "malformed entries are skipped");
	cr_assert_str_eq(d.v[0].id, "web-1");
	cr_assert_eq(d.v[0].at, 1700000000);
	cr_assert_str_eq(d.v[1].id, "web-3");
	cr_assert(hr_consul_floor_doc_has(&d, "web-3"));
	cr_assert_not(hr_consul_floor_doc_has(&d, "web-4"));
	hr_consul_floor_doc_dispose(&d);

	/* a null value (an empty PUT) is the empty list at its index */
	a = kv_answer(9, NULL);
	cr_assert_eq(doc_parse(&d, 200, a), 0);
	cr_assert_eq(d.index, 9);
	cr_assert_eq(d.n, 0);
	hr_consul_floor_doc_dispose(&d);
	free(a);

	/* not the document: the caller stays (the safe side) */
	{
		static const char *bad[] = {
			"[]", "{}", "[{\"ModifyIndex\":0,\"Value\":null}]",
			"[{\"ModifyIndex\":5,\"Value\":\"@@@\"}]",
			"[{\"ModifyIndex\":5}]", "not json",
			"[{\"ModifyIndex\":1e30,\"Value\":null}]",
			"[{\"ModifyIndex\":-3,\"Value\":null}]",
		};
		size_t i;

		for (i = 0; i < N(bad); i++) {
			cr_assert_eq(doc_parse(&d, 200, bad[i]), -EPROTO,
				     "%s", bad[i]);
			cr_assert_eq(d.n, 0);
		}
		a = kv_answer(5, "leavers: web-1");
		cr_assert_eq(doc_parse(&d, 200, a), -EPROTO);
		free(a);
		a = kv_answer(5, "{\"leavers\":{}}");
		cr_assert_eq(doc_parse(&d, 200, a), -EPROTO);
		free(a);
		cr_assert_eq(doc_parse(&d, 500, "No cluster leader"), -EPROTO);
	}
}

Test(consul_payload, floor_doc_body)
{
	struct hr_consul_floor_doc d;
	char *a, *b;

	a = kv_answer(42, "{\"leavers\":[{\"id\":\"old\",\"at\":1000},"
			  "{\"id\":\"web-1\",\"at\":5000},"
			  "{\"id\":\"web-2\",\"at\":6000}]}");
	cr_assert_eq(doc_parse(&d, 200, a), 0);
	free(a);
	/* add: expired entries dropped (1000 + 3600 < 7000), appended */
	b = hr_consul_floor_doc_body(&d, "web-3", NULL, 7000, 3600);
	cr_assert_str_eq(b, "{\"leavers\":[{\"id\":\"web-1\",\"at\":5000},"
			    "{\"id\":\"web-2\",\"at\":6000},"
			    "{\"id\":\"web-3\",\"at\":7000}]}");
	free(b);
	/* an entry of our own gets the new time, once */
	b = hr_consul_floor_doc_body(&d, "web-1", NULL, 7000, 3600);
	cr_assert_str_eq(b, "{\"leavers\":[{\"id\":\"web-2\",\"at\":6000},"
			    "{\"id\":\"web-1\",\"at\":7000}]}");
	free(b);
	/* remove */
	b = hr_consul_floor_doc_body(&d, NULL, "web-2", 4000, 3600);
	cr_assert_str_eq(b, "{\"leavers\":[{\"id\":\"old\",\"at\":1000},"
			    "{\"id\":\"web-1\",\"at\":5000}]}");
	free(b);
	hr_consul_floor_doc_dispose(&d);
	/* from nothing */
	b = hr_consul_floor_doc_body(NULL, "web-9", NULL, 12, 3600);
	cr_assert_str_eq(b, "{\"leavers\":[{\"id\":\"web-9\",\"at\":12}]}");
	free(b);
}

/* One entry of /v1/health/service/<name>: checks "passing,warning". */
static void fleet_entry(char *buf, size_t len, const char *id,
			const char *node_st, const char *svc_st)
{
	snprintf(buf + strlen(buf), len - strlen(buf),
		 "%s{\"Node\":{\"Node\":\"n\"},\"Service\":{\"ID\":\"%s\","
		 "\"Service\":\"web\"},\"Checks\":[{\"CheckID\":\"serfHealth\","
		 "\"Status\":\"%s\"},{\"CheckID\":\"service:%s:healthreg\","
		 "\"Status\":\"%s\"}]}", buf[1] ? "," : "", id, node_st, id,
		 svc_st);
}

Test(consul_payload, fleet_parse)
{
	struct hr_consul_fleet f;
	char body[4096] = "[";

	fleet_entry(body, sizeof(body), "web-0", "passing", "passing");
	fleet_entry(body, sizeof(body), "web-1", "passing", "warning");
	fleet_entry(body, sizeof(body), "web-2", "passing", "critical");
	fleet_entry(body, sizeof(body), "web-3", "critical", "passing");
	fleet_entry(body, sizeof(body), "web-4", "passing", "maintenance");
	strcat(body, ",{\"Service\":{},\"Checks\":[]}]");
	cr_assert_eq(hr_consul_fleet_parse(&f, body, strlen(body)), 0);
	cr_assert_eq(f.n, 5, "an entry without Service.ID is skipped");
	cr_assert_str_eq(f.v[1].id, "web-1");
	cr_assert_eq(f.v[0].status, HR_STATUS_PASSING);
	cr_assert_eq(f.v[1].status, HR_STATUS_WARNING);
	cr_assert_eq(f.v[2].status, HR_STATUS_CRITICAL);
	cr_assert_eq(f.v[3].status, HR_STATUS_CRITICAL, "the node check counts");
	cr_assert_eq(f.v[4].status, HR_STATUS_CRITICAL,
		     "an unknown word is critical");
	hr_consul_fleet_dispose(&f);
	cr_assert_eq(hr_consul_fleet_parse(&f, "{}", 2), -EPROTO);
	cr_assert_eq(hr_consul_fleet_parse(&f, "[", 1), -EPROTO);
	cr_assert_eq(hr_consul_fleet_parse(&f, "[]", 2), 0);
	cr_assert_eq(f.n, 0);
	hr_consul_fleet_dispose(&f);
}

/* A fleet of n instances "w<i>" with the given statuses (p, w, c). */
static void make_fleet(struct hr_consul_fleet *f, const char *st)
{
	size_t i, n = strlen(st);

	f->v = calloc(n + 1, sizeof(*f->v));
	f->n = n;
	for (i = 0; i < n; i++) {
		char id[8];

		snprintf(id, sizeof(id), "w%zu", i);
		f->v[i].id = strdup(id);
		f->v[i].status = st[i] == 'p' ? HR_STATUS_PASSING :
				 st[i] == 'w' ? HR_STATUS_WARNING :
						HR_STATUS_CRITICAL;
	}
}

/* A list of the ids in ids (comma separated), all at time at. */
static void make_doc(struct hr_consul_floor_doc *d, const char *ids,
		     int64_t at)
{
	char buf[256], *save = NULL, *t;

	memset(d, 0, sizeof(*d));
	d->v = calloc(16, sizeof(*d->v));
	d->index = 7;
	snprintf(buf, sizeof(buf), "%s", ids);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		d->v[d->n].id = strdup(t);
		d->v[d->n++].at = at;
	}
}

Test(consul_payload, floor_decide)
{
	static const struct {
		const char *fleet, *listed, *self;
		int min;
		double frac;
		size_t fleet_n, healthy, listed_n, need;
		bool leave;
	} t[] = {
		/* 5 instances, floor 2, w1..w4 fail: as each one writes
		 * itself into the list, the next counts one healthy less */
		{ "ppppp", "", "w1", 2, 1.0, 5, 4, 0, 2, true },
		{ "ppppp", "w1", "w2", 2, 1.0, 5, 3, 1, 2, true },
		{ "ppppp", "w1,w2", "w3", 2, 1.0, 5, 2, 2, 2, true },
		{ "ppppp", "w1,w2,w3", "w4", 2, 1.0, 5, 1, 3, 2, false },
		/* the catalog has caught up: the same */
		{ "pw", "w2,w3,w4", "w1", 2, 1.0, 5, 1, 3, 2, false },
		/* a kept instance warns and still counts for the others */
		{ "pppppw", "w1,w2,w3", "w0", 2, 1.0, 6, 2, 3, 2, true },
		/* a critical one does not */
		{ "pcppp", "w2,w3", "w0", 2, 1.0, 5, 1, 2, 2, false },
		/* a listed one that is back in the catalog, healthy, but not
		 * yet out of the list, does not count either */
		{ "ppp", "w1", "w0", 2, 1.0, 3, 1, 1, 2, false },
		/* the fraction: 5 known, at most 0.4 -> 2 may fail: 3 */
		{ "ppppp", "w1", "w2", 0, 0.4, 5, 3, 1, 3, true },
		{ "ppppp", "w1,w2", "w3", 0, 0.4, 5, 2, 2, 3, false },
		/* the stricter wins */
		{ "ppppp", "w1", "w2", 3, 0.5, 5, 3, 1, 3, true },
		{ "ppppp", "w1", "w2", 4, 0.5, 5, 3, 1, 4, false },
		/* self not in the catalog (yet): still one of the fleet */
		{ "pp", "", "w9", 2, 1.0, 3, 2, 0, 2, true },
		/* a lone instance with a fraction stays */
		{ "p", "", "w0", 0, 0.5, 1, 0, 0, 1, false },
		/* 0.1 * 10 is 1 however binary rounds it */
		{ "pppppppppp", "", "w0", 0, 0.1, 10, 9, 0, 9, true },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		struct hr_consul_fleet f;
		struct hr_consul_floor_doc d;
		struct hr_consul_floor out;

		make_fleet(&f, t[i].fleet);
		make_doc(&d, t[i].listed, 1000);
		hr_consul_floor_decide(&f, &d, t[i].self, t[i].min, t[i].frac,
				       2000, 3600, &out);
		cr_assert_eq(out.fleet, t[i].fleet_n, "case %zu: fleet %zu", i,
			     out.fleet);
		cr_assert_eq(out.healthy, t[i].healthy, "case %zu: healthy %zu",
			     i, out.healthy);
		cr_assert_eq(out.listed, t[i].listed_n, "case %zu: listed %zu",
			     i, out.listed);
		cr_assert_eq(out.need, t[i].need, "case %zu: need %zu", i,
			     out.need);
		cr_assert_eq(out.leave, t[i].leave, "case %zu", i);
		hr_consul_fleet_dispose(&f);
		hr_consul_floor_doc_dispose(&d);
	}
}

/* A stale entry (the instance was killed after it left and never came
 * back) stops counting: its ID healthy in the catalog counts again. */
Test(consul_payload, floor_decide_stale_entries_expire)
{
	struct hr_consul_fleet f;
	struct hr_consul_floor_doc d;
	struct hr_consul_floor out;

	make_fleet(&f, "ppp");
	make_doc(&d, "w1", 1000);
	hr_consul_floor_decide(&f, &d, "w0", 2, 1.0, 1000 + 3600, 3600, &out);
	cr_assert_eq(out.healthy, 1, "not expired at at + stale_after");
	cr_assert_not(out.leave);
	hr_consul_floor_decide(&f, &d, "w0", 2, 1.0, 1000 + 3601, 3600, &out);
	cr_assert_eq(out.healthy, 2);
	cr_assert_eq(out.listed, 0);
	cr_assert(out.leave);
	hr_consul_fleet_dispose(&f);
	hr_consul_floor_doc_dispose(&d);
}

Test(consul_payload, floor_note)
{
	struct hr_consul_floor f = { .fleet = 3, .healthy = 1, .need = 2 };
	char b[200];

	hr_consul_floor_note(&f, 2, 1.0, b, sizeof(b));
	cr_assert_str_eq(b, "kept by fleet floor: 1 of 3 healthy "
			    "(min_healthy 2)");
	hr_consul_floor_note(&f, 2, 0.5, b, sizeof(b));
	cr_assert_str_eq(b, "kept by fleet floor: 1 of 3 healthy "
			    "(min_healthy 2, max_unhealthy_fraction 0.5)");
	hr_consul_floor_note(&f, 0, 0.25, b, sizeof(b));
	cr_assert_str_eq(b, "kept by fleet floor: 1 of 3 healthy "
			    "(max_unhealthy_fraction 0.25)");
}

Test(consul_payload, floor_classify)
{
	cr_assert_eq(hr_consul_classify(HR_CONSUL_OP_FLOOR_READ, 404, "", 0),
		     HR_CONSUL_OK, "no list yet");
	cr_assert_eq(hr_consul_classify(HR_CONSUL_OP_FLEET_READ, 404, "", 0),
		     HR_CONSUL_REJECTED);
	cr_assert_eq(hr_consul_classify(HR_CONSUL_OP_FLOOR_WRITE, 200,
					"false", 5), HR_CONSUL_OK,
		     "a lost cas is an answer, not a failure");
	cr_assert_eq(hr_consul_classify(HR_CONSUL_OP_FLOOR_WRITE, 403,
					"Permission denied", 17),
		     HR_CONSUL_FORBIDDEN);
	cr_assert_eq(hr_consul_classify(HR_CONSUL_OP_FLOOR_READ, 500,
					"No cluster leader", 17),
		     HR_CONSUL_RETRY);
	cr_assert_str_eq(hr_consul_op_name(HR_CONSUL_OP_FLOOR_WRITE),
			 "floor_write");
}
