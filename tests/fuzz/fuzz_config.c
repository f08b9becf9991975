/*
 * fuzz_config.c - hr_config_parse() with the compiled-in backends'
 * validators (as the agent loads a config), on any text.
 *
 * Properties: a config comes back exactly when the result is 0, and then
 * with no error in the diagnostics (a failure with at least one); every
 * diagnostic is valid UTF-8; an accepted document holds only valid UTF-8
 * (keys and values, RFC 8259); each check's and the service's spec copies
 * equal to the original and each check is found by its name; what the
 * backends would send for an accepted config (Consul's register body,
 * etcd's key and value) is valid UTF-8 JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends.h"
#include "consul_payload.h"
#include "etcd_payload.h"
#include "fuzz.h"
#include "healthreg/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Every key and string of the document is valid UTF-8. */
static void utf8_strings(const cJSON *it)
{
	for (; it; it = it->next) {
		if (it->string)
			FUZZ_CHECK(hr_fuzz_utf8_valid(it->string,
						      strlen(it->string)),
				   "a key that is not UTF-8 was accepted");
		if (cJSON_IsString(it))
			FUZZ_CHECK(hr_fuzz_utf8_valid(it->valuestring,
						      strlen(it->valuestring)),
				   "a string that is not UTF-8 was accepted");
		utf8_strings(it->child);
	}
}

/* s is valid UTF-8 and a JSON object; frees s. */
static void json_body(char *s, const char *what)
{
	cJSON *doc;

	FUZZ_CHECK(s != NULL, what);
	FUZZ_CHECK(hr_fuzz_utf8_valid(s, strlen(s)), what);
	doc = cJSON_Parse(s);
	FUZZ_CHECK(cJSON_IsObject(doc), what);
	cJSON_Delete(doc);
	free(s);
}

/* One service: its specs copy and compare, its checks and the service
 * itself are found by name and id. */
static void specs(const struct hr_config *cfg, const struct hr_service_conf *sv)
{
	struct hr_check_spec c;
	struct hr_service_spec s;
	size_t i;

	for (i = 0; i < sv->n_checks; i++) {
		FUZZ_CHECK(hr_check_spec_copy(&c, &sv->checks[i]) == 0, "copy");
		FUZZ_CHECK(hr_check_spec_equal(&c, &sv->checks[i]),
			   "a check spec equals its copy");
		hr_check_spec_dispose(&c);
		FUZZ_CHECK(hr_service_find_check(sv, sv->checks[i].name) ==
				   (int)i,
			   "a check is found by its name");
	}
	FUZZ_CHECK(hr_service_spec_copy(&s, &sv->service) == 0, "copy");
	FUZZ_CHECK(hr_service_spec_equal(&s, &sv->service),
		   "the service spec equals its copy");
	hr_service_spec_dispose(&s);
	FUZZ_CHECK(sv->service.id &&
			   hr_config_find_service(cfg, sv->service.id) == sv,
		   "service ids are unique");
}

static void consul(const struct hr_service_conf *cfg, const cJSON *conf)
{
	struct hr_consul_conf c;
	struct hr_diag d;
	char *body = NULL;

	hr_diag_init(&d);
	FUZZ_CHECK(hr_consul_conf_parse(&c, conf, "registry.consul", NULL,
					&d) == 0,
		   "a validated consul section parses");
	FUZZ_CHECK(hr_consul_register_body(&body, &cfg->service, &c,
					   HR_STATUS_PASSING) == 0,
		   "register body");
	json_body(body, "Consul's register body");
	hr_consul_conf_dispose(&c);
	hr_diag_dispose(&d);
}

static void etcd(const struct hr_service_conf *cfg, const cJSON *conf)
{
	struct hr_etcd_conf c;
	struct hr_diag d;
	char addr[512], *key;

	hr_diag_init(&d);
	FUZZ_CHECK(hr_etcd_conf_parse(&c, conf, "registry.etcd", &d) == 0,
		   "a validated etcd section parses");
	if (!hr_etcd_addr(&cfg->service, "192.0.2.1", addr, sizeof(addr))) {
		key = hr_etcd_key(c.prefix, cfg->service.name, addr);
		FUZZ_CHECK(key && hr_fuzz_utf8_valid(key, strlen(key)),
			   "etcd's key");
		free(key);
		json_body(hr_etcd_value(&cfg->service, addr, HR_STATUS_WARNING,
					c.value_format), "etcd's value");
	}
	hr_etcd_conf_dispose(&c);
	hr_diag_dispose(&d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	hr_fuzz_quiet();
	/* The validators read these; the fuzzer's environment must not
	 * decide what a config means. */
	unsetenv("CONSUL_HTTP_ADDR");
	unsetenv("CONSUL_HTTP_TOKEN");
	unsetenv("CONSUL_HTTP_TOKEN_FILE");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hr_config_backend vals[8];
	size_t nb = hr_backends_validators(vals, HR_ARRAY_SIZE(vals)), i, k;
	char *text = hr_fuzz_copy(data, size, false);
	struct hr_config *cfg = (struct hr_config *)1;
	const cJSON *it;
	struct hr_diag diag;
	cJSON *doc;
	int rc;

	hr_diag_init(&diag);
	rc = hr_config_parse(&cfg, text, size, vals, nb, &diag);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "result");
	FUZZ_CHECK(!rc == !!cfg, "a config exactly on success");
	FUZZ_CHECK(rc ? diag.errors > 0 : diag.errors == 0, "errors counted");
	for (i = 0; i < diag.n; i++)
		FUZZ_CHECK(diag.v[i].text &&
			   hr_fuzz_utf8_valid(diag.v[i].text,
					      strlen(diag.v[i].text)),
			   "a diagnostic is valid UTF-8");
	if (cfg) {
		doc = cJSON_ParseWithLength(text, size);
		utf8_strings(doc);
		cJSON_Delete(doc);
		FUZZ_CHECK(cfg->n_services > 0, "a config has a service");
		for (k = 0; k < cfg->n_services; k++) {
			const struct hr_service_conf *sv = &cfg->services[k];

			specs(cfg, sv);
			cJSON_ArrayForEach(it, sv->registry) {
				if (!strcasecmp(it->string, "consul"))
					consul(sv, it);
				else if (!strcasecmp(it->string, "etcd"))
					etcd(sv, it);
			}
		}
	}
	hr_config_free(cfg);
	hr_diag_dispose(&diag);
	free(text);
	return 0;
}
