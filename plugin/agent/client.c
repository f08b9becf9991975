/*
 * client.c - blocking libcurl calls to the local API (a CLI, not the
 * agent: blocking is fine here).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agent.h"
#include "api.h"
#include "client.h"
#include "healthreg/util.h"
#include "state.h"

/* The agent's answers: /v1/health lists every check; far below this. */
#define CLIENT_BODY_MAX (4 * 1024 * 1024)
/* An API token is one line; anything longer is not a token. */
#define TOKEN_MAX 4095

/* The token file's first line (wiped when freed), or exit code 78. */
static int read_token(const char *tf, char **token)
{
	struct hr_err err = { "" };
	int rc = hr_secret_read(tf, "token file", TOKEN_MAX, token, NULL, &err);

	if (!rc)
		return 0;
	if (rc == -EINVAL || rc == -ENOMEM || rc == -EPERM)
		fprintf(stderr, "healthreg: %s\n", err.msg);
	else
		fprintf(stderr, "healthreg: token file %s: %s\n", tf,
			strerror(-rc));
	return HR_EXIT_CONFIG;
}

/* api address and token from the options, the config, the environment. */
static int resolve(const struct hr_client_opts *o, char *addr, size_t alen,
		   char **token)
{
	struct hr_config *cfg = NULL;
	const char *tf = o->token_file;
	const char *env = getenv("HEALTHREG_API_TOKEN");

	*token = NULL;
	snprintf(addr, alen, "%s", o->api ? o->api : HR_API_DEFAULT_LISTEN);
	if (o->config) {
		if (hr_agent_load_config(o->config, &cfg))
			return HR_EXIT_CONFIG;
		if (!o->api && cfg->api_listen && *cfg->api_listen)
			snprintf(addr, alen, "%s", cfg->api_listen);
		if (!tf)
			tf = cfg->api_token_file;
	}
	if (tf) {
		int rc = read_token(tf, token);

		hr_config_free(cfg);
		return rc;
	}
	if (env && *env)
		*token = strdup(env);
	hr_config_free(cfg);
	return 0;
}

/* One request; returns the HTTP code (or -1) and the body in *out. */
static long request(const char *addr, const char *method, const char *path,
		    const char *token, char **out)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	struct hr_capture b;
	char *url = NULL, auth[4200], err[CURL_ERROR_SIZE] = "";
	long code = -1;

	*out = NULL;
	/* No fixed buffer: a cut URL would cut a maintenance reason. */
	if (!e || asprintf(&url, "http://%s%s", addr, path) < 0) {
		curl_easy_cleanup(e);
		return -1;
	}
	hr_capture_init(&b, CLIENT_BODY_MAX);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hr_capture_curl_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
		hr_wipe(auth, sizeof(auth));
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	}
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	else
		fprintf(stderr, "healthreg: cannot reach the agent at %s: %s\n",
			addr, err);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	free(url);
	*out = hr_capture_take(&b);
	hr_capture_dispose(&b);
	return code;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static int code_for(const char *status)
{
	if (!strcmp(status, "passing"))
		return 0;
	if (!strcmp(status, "warning"))
		return 1;
	return 2;
}

static int print_error(long code, const char *body)
{
	cJSON *doc = cJSON_Parse(body ? body : "");
	const char *msg = jstr(doc, "error");

	fprintf(stderr, "healthreg: the agent answered %ld: %s\n", code,
		*msg ? msg : (body ? body : ""));
	cJSON_Delete(doc);
	return code == 401 || code == 403 ? HR_EXIT_USAGE : HR_EXIT_SOFTWARE;
}

/* One line per registry: its state, and while it fails since when, how
 * many attempts and the last error. */
static void print_registries(const cJSON *doc)
{
	const cJSON *regs = cJSON_GetObjectItemCaseSensitive(doc, "registries");
	const cJSON *r;

	if (!cJSON_IsArray(regs))
		return; /* an agent without the token, or an older one */
	if (!cJSON_GetArraySize(regs)) {
		printf("\nregistries: none configured\n");
		return;
	}
	printf("\n");
	cJSON_ArrayForEach(r, regs) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(
			r, "failed_attempts");
		const char *state = jstr(r, "state");

		if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "up")))
			printf("registry %s: %s since %s, %.0f failed attempt%s (last known: %s); last error: %s\n",
			       jstr(r, "backend"), state, jstr(r, "since"),
			       cJSON_IsNumber(n) ? n->valuedouble : 0.0,
			       cJSON_IsNumber(n) && n->valuedouble == 1 ? ""
									: "s",
			       jstr(r, "registration"), jstr(r, "last_error"));
		else
			printf("registry %s: %s\n", jstr(r, "backend"), state);
	}
}

int hr_client_status(const struct hr_client_opts *o)
{
	char addr[256], *token = NULL, *body = NULL;
	cJSON *doc = NULL;
	const cJSON *c, *checks, *m;
	long code;
	int rc;

	rc = resolve(o, addr, sizeof(addr), &token);
	if (rc)
		return rc;
	code = request(addr, "GET", "/v1/health", token, &body);
	hr_secret_free(token);
	if (code < 0) {
		free(body);
		return HR_EXIT_UNAVAILABLE;
	}
	doc = cJSON_Parse(body ? body : "");
	if (code != 200 && code != 429 && code != 503) {
		rc = print_error(code, body);
		goto cleanup;
	}
	if (!doc) {
		fprintf(stderr, "healthreg: unreadable answer from %s\n", addr);
		rc = HR_EXIT_SOFTWARE;
		goto cleanup;
	}
	if (o->json) {
		printf("%s", body);
	} else {
		printf("service %s: %s (%s)\n", jstr(doc, "service"),
		       jstr(doc, "status"), jstr(doc, "output"));
		m = cJSON_GetObjectItemCaseSensitive(doc, "maintenance");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "enabled")))
			printf("maintenance: on (%s)\n", jstr(m, "reason"));
		printf("\n%-24s  %-4s  %-8s  %-20s  %9s  %s\n", "NAME", "KIND",
		       "STATUS", "LAST RUN", "DURATION", "OUTPUT");
		checks = cJSON_GetObjectItemCaseSensitive(doc, "checks");
		cJSON_ArrayForEach(c, checks) {
			char out[61];
			const char *text = jstr(c, "output");
			size_t i;
			const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "duration_ms");
			char dur[32];

			for (i = 0; text[i] && text[i] != '\n' && i < 60; i++)
				out[i] = text[i];
			out[i] = '\0';
			snprintf(dur, sizeof(dur), "%.1fms",
				 cJSON_IsNumber(d) ? d->valuedouble : 0.0);
			printf("%-24.24s  %-4s  %-8s  %-20s  %9s  %s\n",
			       jstr(c, "name"), jstr(c, "kind"), jstr(c, "status"),
			       *jstr(c, "last_run") ? jstr(c, "last_run") : "never",
			       dur, out);
		}
		print_registries(doc);
	}
	rc = code_for(jstr(doc, "status"));
cleanup:
	cJSON_Delete(doc);
	free(body);
	return rc;
}

static int simple_put(const struct hr_client_opts *o, const char *path,
		      const char *what)
{
	char addr[256], *token = NULL, *body = NULL;
	long code;
	int rc;

	rc = resolve(o, addr, sizeof(addr), &token);
	if (rc)
		return rc;
	code = request(addr, "PUT", path, token, &body);
	hr_secret_free(token);
	if (code < 0)
		rc = HR_EXIT_UNAVAILABLE;
	else if (code != 200)
		rc = print_error(code, body);
	else
		printf("%s\n", what);
	free(body);
	return rc;
}

int hr_client_maint(const struct hr_client_opts *o, bool enable,
		    const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;
	char *path = NULL, *esc;
	int rc;

	if (enable && n > HR_MAINT_REASON_MAX) {
		fprintf(stderr, "healthreg: --reason: %zu bytes, at most %d\n", n,
			HR_MAINT_REASON_MAX);
		return HR_EXIT_USAGE;
	}
	esc = curl_easy_escape(NULL, reason ? reason : "", (int)n);
	if (!esc || asprintf(&path, "/v1/maintenance?enable=%s&reason=%s",
			     enable ? "true" : "false", esc) < 0) {
		curl_free(esc);
		return HR_EXIT_SOFTWARE;
	}
	curl_free(esc);
	rc = simple_put(o, path, enable ? "maintenance enabled" : "maintenance disabled");
	free(path);
	return rc;
}

int hr_client_reload(const struct hr_client_opts *o)
{
	return simple_put(o, "/v1/reload", "reloaded");
}
