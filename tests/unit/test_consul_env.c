/*
 * test_consul_env.c - the official Consul client's environment variables
 * (hashicorp/consul api/api.go) as healthreg reads them where the config
 * is silent: hr_consul_env_read() with an injected getter, then
 * hr_consul_conf_parse(). One table row per combination: the address
 * forms and CONSUL_HTTP_SSL, the TLS variables, the token variables, and
 * the config winning over each.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "consul/consul_payload.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* An environment as "NAME=value" strings, NULL-terminated. */
static const char *table_get(const char *name, void *payload)
{
	const char *const *e = payload;
	size_t n = strlen(name);

	for (; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

struct want {
	const char *address;
	bool tls;
	const char *unix_path;
	const char *ca_file, *ca_path, *cert_file, *key_file;
	const char *server_name;
	bool skip;
	const char *token, *token_file;
	bool token_file_from_env;
};

struct row {
	const char *env[12];
	const char *json;
	int rc;
	const char *diag;   /* a diag text that must be there (or NULL) */
	struct want w;
};

static const struct row rows[] = {
	/* ---- address and scheme ---- */
	{ { NULL }, "{}", 0, NULL,
	  { .address = "http://127.0.0.1:8500" } },
	{ { "CONSUL_HTTP_SSL=true" }, "{}", 0, NULL,
	  { .address = "https://127.0.0.1:8500", .tls = true } },
	/* The case: host:port on the TLS port with CONSUL_HTTP_SSL. */
	{ { "CONSUL_HTTP_ADDR=127.0.0.1:8501", "CONSUL_HTTP_SSL=true" }, "{}",
	  0, NULL, { .address = "https://127.0.0.1:8501", .tls = true } },
	{ { "CONSUL_HTTP_ADDR=127.0.0.1:8501", "CONSUL_HTTP_SSL=1" }, "{}",
	  0, NULL, { .address = "https://127.0.0.1:8501", .tls = true } },
	{ { "CONSUL_HTTP_ADDR=127.0.0.1:8500", "CONSUL_HTTP_SSL=False" },
	  "{}", 0, NULL, { .address = "http://127.0.0.1:8500" } },
	/* "Never revert to http if TLS was explicitly requested." */
	{ { "CONSUL_HTTP_ADDR=http://10.0.0.1:8501", "CONSUL_HTTP_SSL=T" },
	  "{}", 0, NULL, { .address = "https://10.0.0.1:8501", .tls = true } },
	{ { "CONSUL_HTTP_ADDR=https://[::1]:8501/" }, "{}", 0, NULL,
	  { .address = "https://[::1]:8501", .tls = true } },
	{ { "CONSUL_HTTP_ADDR=https://h:8501", "CONSUL_HTTP_SSL=false" },
	  "{}", 0, NULL, { .address = "https://h:8501", .tls = true } },
	{ { "CONSUL_HTTP_ADDR=unix:///run/consul/http.sock" }, "{}", 0, NULL,
	  { .address = "unix:///run/consul/http.sock",
	    .unix_path = "/run/consul/http.sock" } },
	{ { "CONSUL_HTTP_ADDR=unix:///run/c.sock", "CONSUL_HTTP_SSL=true" },
	  "{}", 0, NULL, { .address = "unix:///run/c.sock", .tls = true,
			   .unix_path = "/run/c.sock" } },
	{ { "CONSUL_HTTP_ADDR=" }, "{}", 0, NULL,
	  { .address = "http://127.0.0.1:8500" } },
	/* The config wins: its explicit http:// stays http. */
	{ { "CONSUL_HTTP_ADDR=10.9.9.9:1", "CONSUL_HTTP_SSL=true" },
	  "{\"address\":\"http://10.0.0.1:8500\"}", 0, NULL,
	  { .address = "http://10.0.0.1:8500" } },
	/* ... but a config address without a scheme takes CONSUL_HTTP_SSL. */
	{ { "CONSUL_HTTP_SSL=true" }, "{\"address\":\"10.0.0.1:8501\"}", 0,
	  NULL, { .address = "https://10.0.0.1:8501", .tls = true } },
	{ { NULL }, "{\"address\":\"unix:///run/hr/agent.sock\"}", 0, NULL,
	  { .address = "unix:///run/hr/agent.sock",
	    .unix_path = "/run/hr/agent.sock" } },
	/* Errors name the variable. */
	{ { "CONSUL_HTTP_SSL=yes" }, "{}", -EINVAL,
	  "registry.consul: CONSUL_HTTP_SSL=\"yes\" is not a boolean", {} },
	{ { "CONSUL_HTTP_ADDR=unix://run/c.sock" }, "{}", -EINVAL,
	  "(from CONSUL_HTTP_ADDR): a unix:// address needs an absolute", {} },
	{ { "CONSUL_HTTP_ADDR=http://h:8500/consul" }, "{}", -EINVAL,
	  "(from CONSUL_HTTP_ADDR) is not an http://, https:// or unix://",
	  {} },
	{ { "CONSUL_HTTP_ADDR=tcp://h:8500" }, "{}", -EINVAL,
	  "registry.consul.address: \"tcp://h:8500\" (from CONSUL_HTTP_ADDR)",
	  {} },

	/* ---- TLS ---- */
	{ { "CONSUL_HTTP_ADDR=https://127.0.0.1:8501",
	    "CONSUL_CACERT=/env/ca.pem", "CONSUL_CAPATH=/env/cas",
	    "CONSUL_CLIENT_CERT=/env/c.pem", "CONSUL_CLIENT_KEY=/env/k.pem",
	    "CONSUL_TLS_SERVER_NAME=consul.local:8501" }, "{}", 0,
	  "CONSUL_CAPATH is ignored: CONSUL_CACERT is set",
	  { .address = "https://127.0.0.1:8501", .tls = true,
	    .ca_file = "/env/ca.pem", .ca_path = "/env/cas",
	    .cert_file = "/env/c.pem", .key_file = "/env/k.pem",
	    .server_name = "consul.local" } },
	/* The config wins, field by field. */
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_CACERT=/env/ca.pem",
	    "CONSUL_CLIENT_CERT=/env/c.pem", "CONSUL_CLIENT_KEY=/env/k.pem",
	    "CONSUL_TLS_SERVER_NAME=env.name" },
	  "{\"ca_file\":\"/conf/ca.pem\",\"cert_file\":\"/conf/c.pem\","
	  "\"tls_server_name\":\"conf.name\"}", 0, NULL,
	  { .address = "https://127.0.0.1:8500", .tls = true,
	    .ca_file = "/conf/ca.pem", .cert_file = "/conf/c.pem",
	    .key_file = "/env/k.pem", .server_name = "conf.name" } },
	/* Without TLS the TLS variables do not apply. */
	{ { "CONSUL_CACERT=/env/ca.pem", "CONSUL_HTTP_SSL_VERIFY=false" },
	  "{}", 0, NULL, { .address = "http://127.0.0.1:8500" } },
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_HTTP_SSL_VERIFY=false" }, "{}", 0,
	  "CONSUL_HTTP_SSL_VERIFY=false: the agent's certificate and host "
	  "name are not verified",
	  { .address = "https://127.0.0.1:8500", .tls = true, .skip = true } },
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_HTTP_SSL_VERIFY=0" },
	  "{\"tls_skip_verify\":false}", 0, NULL,
	  { .address = "https://127.0.0.1:8500", .tls = true } },
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_HTTP_SSL_VERIFY=true" },
	  "{\"tls_skip_verify\":true}", 0,
	  "registry.consul.tls_skip_verify: true: the registry's certificate",
	  { .address = "https://127.0.0.1:8500", .tls = true, .skip = true } },
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_HTTP_SSL_VERIFY=nope" }, "{}",
	  -EINVAL, "CONSUL_HTTP_SSL_VERIFY=\"nope\" is not a boolean", {} },
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_CLIENT_KEY=/env/k.pem" }, "{}",
	  -EINVAL, "CONSUL_CLIENT_KEY needs a client certificate", {} },
	/* key_file in the config, its certificate from the environment
	 * (the rule waits for CONSUL_CLIENT_CERT). */
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_CLIENT_CERT=/env/c.pem" },
	  "{\"key_file\":\"/conf/k.pem\"}", 0, NULL,
	  { .address = "https://127.0.0.1:8500", .tls = true,
	    .cert_file = "/env/c.pem", .key_file = "/conf/k.pem" } },
	{ { "CONSUL_HTTP_SSL=true" }, "{\"key_file\":\"/conf/k.pem\"}",
	  -EINVAL, "registry.consul.key_file: needs a client certificate "
	  "(cert_file or CONSUL_CLIENT_CERT)", {} },
	{ { "CONSUL_HTTP_SSL=true", "CONSUL_TLS_SERVER_NAME=a b" }, "{}",
	  -EINVAL, "registry.consul: CONSUL_TLS_SERVER_NAME: \"a b\" is not "
	  "a host name", {} },
	{ { NULL }, "{\"address\":\"https://h:1\",\"tls_server_name\":\"a/b\"}",
	  -EINVAL, "registry.consul.tls_server_name: \"a/b\" is not a host "
	  "name", {} },
	{ { NULL }, "{\"ca_file\":\"/c\"}", 0,
	  "registry.consul: TLS settings are ignored",
	  { .address = "http://127.0.0.1:8500", .ca_file = "/c" } },

	/* ---- token ---- */
	{ { "CONSUL_HTTP_TOKEN=s3cret" }, "{}", 0, NULL,
	  { .address = "http://127.0.0.1:8500", .token = "s3cret" } },
	{ { "CONSUL_HTTP_TOKEN=s3cret", "CONSUL_HTTP_TOKEN_FILE=/env/t" },
	  "{}", 0, NULL,
	  { .address = "http://127.0.0.1:8500", .token_file = "/env/t",
	    .token_file_from_env = true } },
	{ { "CONSUL_HTTP_TOKEN=s3cret", "CONSUL_HTTP_TOKEN_FILE=/env/t" },
	  "{\"token_file\":\"/conf/t\"}", 0, NULL,
	  { .address = "http://127.0.0.1:8500", .token_file = "/conf/t" } },
};

static void expect_str(const char *got, const char *want, size_t i,
		       const char *what)
{
	if (want)
		cr_expect(got && !strcmp(got, want), "row %zu: %s \"%s\", not "
			  "\"%s\"", i, what, got ? got : "(null)", want);
	else
		cr_expect_null(got, "row %zu: %s \"%s\"", i, what, got);
}

static bool diag_has(const struct hr_diag *d, const char *text)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].text && strstr(d->v[i].text, text))
			return true;
	return false;
}

Test(consul_env, matrix)
{
	size_t i, k;

	for (i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		const struct want *w = &r->w;
		struct hr_consul_env env;
		struct hr_consul_conf c;
		struct hr_diag d;
		cJSON *j = cJSON_Parse(r->json);
		int rc;

		cr_assert_not_null(j, "row %zu: bad JSON", i);
		hr_consul_env_read(&env, table_get, (void *)r->env);
		hr_diag_init(&d);
		rc = hr_consul_conf_parse(&c, j, "registry.consul", &env, &d);
		cJSON_Delete(j);
		for (k = 0; k < d.n; k++)
			cr_log_info("row %zu: %s", i, d.v[k].text);
		cr_expect_eq(rc, r->rc, "row %zu: rc %d", i, rc);
		if (r->diag)
			cr_expect(diag_has(&d, r->diag), "row %zu: no \"%s\"",
				  i, r->diag);
		if (rc == 0) {
			expect_str(c.address, w->address, i, "address");
			cr_expect_eq(c.tls, w->tls, "row %zu: tls", i);
			expect_str(c.unix_path, w->unix_path, i, "unix_path");
			expect_str(c.common.ca_file, w->ca_file, i, "ca_file");
			expect_str(c.common.ca_path, w->ca_path, i, "ca_path");
			expect_str(c.common.cert_file, w->cert_file, i,
				   "cert_file");
			expect_str(c.common.key_file, w->key_file, i,
				   "key_file");
			expect_str(c.tls_server_name, w->server_name, i,
				   "tls_server_name");
			cr_expect_eq(c.common.tls_skip_verify, w->skip,
				     "row %zu: skip", i);
			expect_str(c.token, w->token, i, "token");
			expect_str(c.token_file, w->token_file, i,
				   "token_file");
			cr_expect_eq(c.token_file_from_env,
				     w->token_file_from_env,
				     "row %zu: token_file_from_env", i);
			hr_consul_conf_dispose(&c);
		} else {
			cr_expect_null(c.address, "row %zu: not disposed", i);
		}
		hr_diag_dispose(&d);
	}
}

/* Where a TLS file came from is kept for messages (validate names the
 * variable, not a config key the operator never wrote). */
Test(consul_env, tls_names_record_the_variable)
{
	static const char *const e[] = {
		"CONSUL_HTTP_SSL=true", "CONSUL_CACERT=/e/ca",
		"CONSUL_CLIENT_KEY=/e/k", NULL,
	};
	struct hr_consul_env env;
	struct hr_consul_conf c;
	struct hr_diag d;
	cJSON *j = cJSON_Parse("{\"cert_file\":\"/conf/c\"}");

	hr_consul_env_read(&env, table_get, (void *)e);
	hr_diag_init(&d);
	cr_assert_eq(hr_consul_conf_parse(&c, j, "registry.consul", &env, &d),
		     0);
	cr_expect_str_eq(c.tls_names.ca_file, "CONSUL_CACERT");
	cr_expect_str_eq(c.tls_names.key_file, "CONSUL_CLIENT_KEY");
	cr_expect_null(c.tls_names.cert_file);
	cr_expect_null(c.tls_names.ca_path);
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
	cJSON_Delete(j);
}

static const char *counting_get(const char *name, void *payload)
{
	size_t *n = payload;

	(*n)++;
	cr_expect(!strncmp(name, "CONSUL_", 7), "%s", name);
	return "x";
}

/* Every variable is asked for once and lands in its field. */
Test(consul_env, read_asks_every_variable)
{
	struct hr_consul_env env;
	size_t n = 0;

	memset(&env, 0, sizeof(env));
	hr_consul_env_read(&env, counting_get, &n);
	cr_expect_eq(n, 10);
	cr_expect(env.http_addr && env.http_token && env.http_token_file &&
		  env.http_ssl && env.http_ssl_verify && env.cacert &&
		  env.capath && env.client_cert && env.client_key &&
		  env.tls_server_name);
}
