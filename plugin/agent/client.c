/*
 * client.c - blocking libcurl calls to the local API (a CLI, not the
 * agent: blocking is fine here).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agent.h"
#include "api.h"
#include "client.h"
#include "preflight.h"
#include "healthreg/util.h"
#include "state.h"

/* The agent's answers: /v1/health lists every check; far below this. */
#define CLIENT_BODY_MAX (4 * 1024 * 1024)

/* The token file's first line (wiped when freed), or exit code 78. */
static int read_token(const char *tf, char **token)
{
	struct hr_err err = { "" };
	int rc = hr_secret_read(tf, "token file", HR_API_TOKEN_MAX, token, NULL,
				&err);

	if (!rc)
		return 0;
	if (rc == -EINVAL || rc == -ENOMEM || rc == -EPERM)
		fprintf(stderr, "healthreg: %s\n", err.msg);
	else
		fprintf(stderr, "healthreg: token file %s: %s\n", tf,
			strerror(-rc));
	return HR_EXIT_CONFIG;
}

#define API_EXPECTED "expected host:port, :port, port or http://host:port"

static int bad_api(struct hr_err *err, const char *addr, const char *why)
{
	return hr_err_set(err, -EINVAL, "\"%s\": %s; " API_EXPECTED, addr, why);
}

/* 1..65535 from s[0..n), digits only. */
static int port_of(const char *s, size_t n)
{
	long p = 0;
	size_t i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		p = p * 10 + (s[i] - '0');
	}
	return p >= 1 && p <= 65535 ? (int)p : -1;
}

static bool host_chars_ok(const char *h, size_t n, bool v6)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (v6 ? !(isxdigit(ch) || ch == ':' || ch == '.')
		       : !(isalnum(ch) || ch == '.' || ch == '-' || ch == '_'))
			return false;
	}
	return n > 0;
}

int hr_client_api_url(const char *addr, char *url, size_t len,
		      struct hr_err *err)
{
	const char *s = addr, *end, *colon, *hs;
	char host[256];
	size_t hn, n;
	bool v6 = false;
	int port;

	if (!addr || !*addr)
		return hr_err_set(err, -EINVAL, "\"\": empty; " API_EXPECTED);
	if (!strncasecmp(s, "https://", 8))
		return bad_api(err, addr, "the local API speaks plain HTTP, not https");
	if (!strncasecmp(s, "http://", 7)) {
		s += 7;
		end = strchr(s, '/');
		if (end && end[1])
			return bad_api(err, addr, "the API's address has no path");
	} else if (strstr(s, "://")) {
		return bad_api(err, addr, "an unknown scheme");
	} else if (strchr(s, '/')) {
		return bad_api(err, addr, "a URL is written http://host:port");
	} else {
		end = NULL;
	}
	n = end ? (size_t)(end - s) : strlen(s);
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return bad_api(err, addr, "no ']' after the IPv6 address");
		hs = s + 1;
		hn = (size_t)(close - hs);
		colon = close + 1;
		if (colon == s + n || *colon != ':')
			return bad_api(err, addr, "no port");
		v6 = true;
	} else {
		colon = memchr(s, ':', n);
		if (colon && memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
			return bad_api(err, addr, "an IPv6 address needs brackets, as in [::1]:9190");
		if (!colon) {
			/* "9190": a port alone (a host alone has no port). */
			if (!n || strspn(s, "0123456789") < n)
				return bad_api(err, addr, "no port");
			port = port_of(s, n);
			if (port < 0)
				return bad_api(err, addr, "the port is not 1-65535");
			hs = "127.0.0.1";
			hn = strlen(hs);
			goto out;
		}
		hs = s;
		hn = (size_t)(colon - s);
		if (hn == 0) { /* ":9190" */
			hs = "127.0.0.1";
			hn = strlen(hs);
		}
	}
	n = (size_t)(s + n - colon - 1); /* the port's digits */
	if (!n)
		return bad_api(err, addr, "no port");
	if (strspn(colon + 1, "0123456789") < n)
		return bad_api(err, addr, "the port is not a number");
	port = port_of(colon + 1, n);
	if (port < 0)
		return bad_api(err, addr, "the port is not 1-65535");
	if (!host_chars_ok(hs, hn, v6) || hn >= sizeof(host))
		return bad_api(err, addr, "the host is not a name or an IP address");
out:
	memcpy(host, hs, hn);
	host[hn] = '\0';
	/* A listen address (agent.api_listen) of every interface: ask the
	 * loopback one. */
	if (!strcmp(host, "0.0.0.0"))
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (v6 && (!strcmp(host, "::") || !strcmp(host, "::0")))
		snprintf(host, sizeof(host), "::1");
	if ((size_t)snprintf(url, len, v6 ? "http://[%s]:%d" : "http://%s:%d",
			     host, port) >= len)
		return hr_err_set(err, -ERANGE, "\"%s\": too long", addr);
	return 0;
}

/*
 * The API's base URL and the token, from the options, the config, the
 * environment; *from says where the token came from (for a 401/403).
 * 0, or an exit code (message printed).
 */
static int resolve(const struct hr_client_opts *o, char *url, size_t ulen,
		   char **token, const char **from)
{
	struct hr_config *cfg = NULL;
	struct hr_err err = { "" };
	const char *tf = o->token_file;
	const char *env = getenv("HEALTHREG_API_TOKEN");
	const char *addr = o->api, *what = "--api";
	int rc = 0;

	*token = NULL;
	*from = NULL;
	if (o->config) {
		if (hr_agent_load_config(o->config, 0, &cfg))
			return HR_EXIT_CONFIG;
		if (!addr && cfg->api_listen) {
			addr = cfg->api_listen;
			what = "agent.api_listen";
		}
		if (!tf)
			tf = cfg->api_token_file;
	}
	if (!addr)
		addr = HR_API_DEFAULT_LISTEN;
	if (!o->api && (!*addr || !strcmp(addr, "off"))) {
		fprintf(stderr, "healthreg: %s: agent.api_listen is \"off\": the agent has no API to ask\n",
			o->config);
		rc = HR_EXIT_CONFIG;
	} else if (hr_client_api_url(addr, url, ulen, &err)) {
		if (o->api)
			fprintf(stderr, "healthreg: --api %s\n", err.msg);
		else
			fprintf(stderr, "healthreg: %s: %s %s\n", o->config,
				what, err.msg);
		rc = o->api ? HR_EXIT_USAGE : HR_EXIT_CONFIG;
	} else if (tf) {
		rc = read_token(tf, token);
		*from = o->token_file ? "--token-file" : "agent.api_token_file";
	} else if (env && *env) {
		*token = strdup(env);
		*from = "$HEALTHREG_API_TOKEN";
	}
	hr_config_free(cfg);
	return rc;
}

/* One request; returns the HTTP code (or -1) and the body in *out. */
static long request(const char *base, const char *method, const char *path,
		    const char *token, char **out)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	struct hr_capture b;
	char *url = NULL, auth[4200], err[CURL_ERROR_SIZE] = "";
	long code = -1;

	*out = NULL;
	/* No fixed buffer: a cut URL would cut a maintenance reason. */
	if (!e || asprintf(&url, "%s%s", base, path) < 0) {
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
		fprintf(stderr, "healthreg: cannot reach the agent at %s: %s "
			"(is it running? --api ADDR or -c FILE say where)\n",
			base, err);
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

/* A refusal: the agent's message, a hint for 401/403, an exit code. */
static int print_error(long code, const char *body, const char *from)
{
	cJSON *doc = cJSON_Parse(body ? body : "");
	const char *msg = jstr(doc, "error");

	fprintf(stderr, "healthreg: the agent answered %ld: %s\n", code,
		*msg ? msg : (body ? body : ""));
	if (code == 401)
		fprintf(stderr, "healthreg: the agent wants its API token: "
			"--token-file FILE, $HEALTHREG_API_TOKEN, or -c FILE "
			"with agent.api_token_file\n");
	else if (code == 403)
		fprintf(stderr, "healthreg: the token from %s is not the agent's "
			"(agent.api_token_file)\n", from ? from : "?");
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
		else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
				 r, "dry_run")))
			printf("registry %s: dry_run (nothing sent; would be: %s)\n",
			       jstr(r, "backend"), jstr(r, "registration"));
		else
			printf("registry %s: %s%s\n", jstr(r, "backend"), state,
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
				       r, "floor_kept")) ?
			       " (critical, kept by the fleet floor)" : "");
	}
}

static void print_maintenance(const cJSON *doc)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "maintenance");

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "enabled")))
		printf("maintenance: on (%s)\n", jstr(m, "reason"));
}

/* One service: its aggregate, checks and registries (by_id: one of
 * several, named by its id, and its name when that differs). */
static void print_service(const cJSON *doc, bool by_id)
{
	const cJSON *c, *checks;

	if (by_id && strcmp(jstr(doc, "id"), jstr(doc, "service")))
		printf("service %s (%s): %s (%s)\n", jstr(doc, "id"),
		       jstr(doc, "service"), jstr(doc, "status"),
		       jstr(doc, "output"));
	else
		printf("service %s: %s (%s)\n",
		       by_id ? jstr(doc, "id") : jstr(doc, "service"),
		       jstr(doc, "status"), jstr(doc, "output"));
	if (!by_id)
		print_maintenance(doc);
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

int hr_client_status(const struct hr_client_opts *o)
{
	char addr[300], *token = NULL, *body = NULL;
	const char *from;
	cJSON *doc = NULL;
	long code;
	int rc;

	rc = resolve(o, addr, sizeof(addr), &token, &from);
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
		rc = print_error(code, body, from);
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
		const cJSON *svcs = cJSON_GetObjectItemCaseSensitive(doc, "services");
		const cJSON *sv;

		if (cJSON_GetArraySize(svcs) > 1) {
			/* the agent (the worst of its services), then each */
			printf("agent: %s (%s)\n", jstr(doc, "status"),
			       jstr(doc, "output"));
			print_maintenance(doc);
			cJSON_ArrayForEach(sv, svcs) {
				printf("\n");
				print_service(sv, true);
			}
		} else {
			print_service(doc, false);
		}
	}
	rc = code_for(jstr(doc, "status"));
cleanup:
	cJSON_Delete(doc);
	free(body);
	return rc;
}

/* ---- why ------------------------------------------------------------------ */

#define WHY_SHOWN 12 /* decisions printed: one screen */

/* "  because  db=critical (was passing): connection refused" lines. */
static void print_causes(const cJSON *e)
{
	const cJSON *checks = cJSON_GetObjectItemCaseSensitive(e, "checks");
	const cJSON *c;
	bool any = false;

	cJSON_ArrayForEach(c, checks) {
		char was[40] = "";

		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "changed")))
			snprintf(was, sizeof(was), " (was %s)", jstr(c, "was"));
		printf("    %s check %s: %s%s%s%.100s\n",
		       any ? "       " : "because", jstr(c, "name"),
		       jstr(c, "status"), was, *jstr(c, "output") ? ": " : "",
		       jstr(c, "output"));
		any = true;
	}
	if (!any && *jstr(e, "output"))
		printf("    because every check passes: %.100s\n",
		       jstr(e, "output"));
}

/* The same decision for another backend (listed together). */
static bool same_decision(const cJSON *a, const cJSON *b)
{
	static const char *const keys[] = { "decision", "why", "status",
					    "service" };
	size_t i;
	bool same;
	char *ca, *cb;

	for (i = 0; i < HR_ARRAY_SIZE(keys); i++)
		if (strcmp(jstr(a, keys[i]), jstr(b, keys[i])))
			return false;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "dry_run")) !=
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "dry_run")))
		return false;
	ca = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(a, "checks"));
	cb = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(b, "checks"));
	same = ca && cb && !strcmp(ca, cb);
	cJSON_free(ca);
	cJSON_free(cb);
	return same;
}

/* The journal, newest first, at most WHY_SHOWN decisions (one decision
 * made alike for several backends is one). */
static void print_why(const cJSON *doc, const char *service)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "decisions");
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(doc,
							     "journal_size");
	int n = cJSON_GetArraySize(arr), i, k, shown = 0;

	if (cJSON_IsNumber(size) && size->valuedouble == 0) {
		printf("the agent keeps no journal (agent.journal_size is 0); "
		       "its log has a \"decision\" line for each\n");
		return;
	}
	if (!n) {
		printf("no decisions yet%s%s\n", service ? " for " : "",
		       service ? service : "");
		return;
	}
	for (i = n - 1; i >= 0 && shown < WHY_SHOWN; i = k, shown++) {
		const cJSON *e = cJSON_GetArrayItem(arr, i);
		const char *status = jstr(e, "status");
		char backends[128];
		size_t o;

		o = (size_t)snprintf(backends, sizeof(backends), "%s",
				     jstr(e, "backend"));
		for (k = i - 1; k >= 0 &&
				same_decision(e, cJSON_GetArrayItem(arr, k));
		     k--)
			if (o < sizeof(backends))
				o += (size_t)snprintf(
					backends + o, sizeof(backends) - o,
					", %s",
					jstr(cJSON_GetArrayItem(arr, k),
					     "backend"));
		printf("%s  %s %s%s [%s]: status %s, aggregate %s%s\n",
		       jstr(e, "time"), jstr(e, "service"),
		       jstr(e, "decision"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e,
								     "dry_run"))
			       ? " (dry run: nothing sent)" : "",
		       backends, *status ? status : "none",
		       *jstr(e, "aggregate") ? jstr(e, "aggregate") : "none",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
			       e, "maintenance")) ? ", in maintenance" : "");
		printf("    %s\n", jstr(e, "why"));
		print_causes(e);
	}
	if (i >= 0)
		printf("(older decisions: healthreg why --json shows all)\n");
}

int hr_client_why(const struct hr_client_opts *o, const char *service)
{
	char addr[300], *token = NULL, *body = NULL, *path = NULL, *esc = NULL;
	const char *from;
	cJSON *doc = NULL;
	long code;
	int rc;

	rc = resolve(o, addr, sizeof(addr), &token, &from);
	if (rc)
		return rc;
	if (service)
		esc = curl_easy_escape(NULL, service, 0);
	if ((service && !esc) ||
	    asprintf(&path, "/v1/decisions%s%s", esc ? "?service=" : "",
		     esc ? esc : "") < 0) {
		curl_free(esc);
		hr_secret_free(token);
		return HR_EXIT_SOFTWARE;
	}
	curl_free(esc);
	code = request(addr, "GET", path, token, &body);
	free(path);
	hr_secret_free(token);
	if (code < 0) {
		free(body);
		return HR_EXIT_UNAVAILABLE;
	}
	if (code != 200) {
		rc = print_error(code, body, from);
		free(body);
		return rc;
	}
	doc = cJSON_Parse(body ? body : "");
	if (!doc) {
		fprintf(stderr, "healthreg: unreadable answer from %s\n", addr);
		rc = HR_EXIT_SOFTWARE;
	} else if (o->json) {
		printf("%s", body);
	} else {
		print_why(doc, service);
	}
	cJSON_Delete(doc);
	free(body);
	return rc;
}

/*
 * A PUT; what: the line printed on success. refused (may be NULL): what a
 * 400 means for this request, which then exits 78: the request was fine,
 * the agent's verdict was not (a new config it will not run).
 */
static int simple_put(const struct hr_client_opts *o, const char *path,
		      const char *what, const char *refused)
{
	char addr[300], *token = NULL, *body = NULL;
	const char *from;
	long code;
	int rc;

	rc = resolve(o, addr, sizeof(addr), &token, &from);
	if (rc)
		return rc;
	code = request(addr, "PUT", path, token, &body);
	hr_secret_free(token);
	if (code < 0) {
		rc = HR_EXIT_UNAVAILABLE;
	} else if (code == 400 && refused) {
		cJSON *doc = cJSON_Parse(body ? body : "");

		fprintf(stderr, "healthreg: %s: %s\n", refused,
			*jstr(doc, "error") ? jstr(doc, "error")
					    : (body ? body : ""));
		cJSON_Delete(doc);
		rc = HR_EXIT_CONFIG;
	} else if (code != 200) {
		rc = print_error(code, body, from);
	} else {
		printf("%s\n", what);
	}
	free(body);
	return rc;
}

int hr_client_maint(const struct hr_client_opts *o, bool enable,
		    const char *reason, const char *service)
{
	size_t n = reason ? strlen(reason) : 0;
	char *path = NULL, *esc, *sesc = NULL;
	int rc;

	if (enable && n > HR_MAINT_REASON_MAX) {
		fprintf(stderr, "healthreg: --reason: %zu bytes, at most %d\n", n,
			HR_MAINT_REASON_MAX);
		return HR_EXIT_USAGE;
	}
	esc = curl_easy_escape(NULL, reason ? reason : "", (int)n);
	if (service)
		sesc = curl_easy_escape(NULL, service, 0);
	if (!esc || (service && !sesc) ||
	    asprintf(&path, "/v1/maintenance?enable=%s&reason=%s%s%s",
		     enable ? "true" : "false", esc,
		     sesc ? "&service=" : "", sesc ? sesc : "") < 0) {
		curl_free(esc);
		curl_free(sesc);
		return HR_EXIT_SOFTWARE;
	}
	curl_free(esc);
	curl_free(sesc);
	rc = simple_put(o, path, enable ? "maintenance enabled" : "maintenance disabled",
			NULL);
	free(path);
	return rc;
}

int hr_client_reload(const struct hr_client_opts *o)
{
	return simple_put(o, "/v1/reload", "reloaded",
			  "reload refused, the agent keeps running its config");
}
