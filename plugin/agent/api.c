/*
 * api.c - the local HTTP API on libmicrohttpd in external-loop epoll mode:
 * MHD owns one epoll fd, which the agent's libev loop watches; after every
 * MHD_run() the timer is re-armed from MHD_get_timeout(). No thread, no
 * second event loop.
 *
 *   uri_cb (the raw request line: allocate struct req, note what the
 *           percent-decoding will hide: a %00 in the path)
 *   access_cb (1st call: nothing yet)
 *     -> (upload chunks: append up to HR_API_BODY_MAX, else mark too big)
 *     -> (last call) route(): the token first, then the path -> one response
 *   completed_cb: free struct req
 *
 * Every JSON body goes through one UTF-8 cleaner (send_json), whatever a
 * check's output or a request's path held. Connections: see
 * start_daemon() (limits against a flood of idle connections). The
 * listening socket is made here (listen_socket(): never shared).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "state.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

struct hr_api {
	struct ev_loop *loop;
	struct MHD_Daemon *d;
	ev_io io;
	ev_timer timer;
	char *token;
	struct hr_api_host host;
	int port;
};

struct req {
	char *body;
	size_t len;
	bool too_big;
	bool nul_in_path; /* the raw path has a %00: no name can match */
	bool seen;        /* access_cb had its first call */
};

/* ---- helpers -------------------------------------------------------------- */

int hr_api_parse_addr(const char *addr, char *host, size_t hlen, int *port)
{
	const char *colon;
	char *end;
	long p;
	size_t n;

	if (!addr || !*addr)
		return -EINVAL;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = (size_t)(close - addr - 1);
		if (n >= hlen)
			return -EINVAL;
		memcpy(host, addr + 1, n);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - addr);
		if (n >= hlen || memchr(addr, ':', n))
			return -EINVAL;
		memcpy(host, addr, n);
	}
	host[n] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code,
				 const char *ctype, char *body_owned)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body_owned), body_owned,
					    MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body_owned);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code,
				 cJSON *doc)
{
	char *s = cJSON_PrintUnformatted(doc);
	char *clean, *body;
	size_t n;

	cJSON_Delete(doc);
	if (!s)
		return MHD_NO;
	/* cJSON copies string bytes as they are: an invalid UTF-8 byte can
	 * only sit inside a string, where U+FFFD keeps the JSON valid. */
	clean = hr_utf8_clean(s);
	cJSON_free(s);
	if (!clean)
		return MHD_NO;
	/* A trailing newline, in a malloc'ed buffer for MHD to free. */
	n = strlen(clean);
	body = realloc(clean, n + 2);
	if (!body) {
		free(clean);
		return MHD_NO;
	}
	body[n] = '\n';
	body[n + 1] = '\0';
	return send_text(c, code, "application/json", body);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code,
				  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code,
				  const char *fmt, ...)
{
	char msg[512];
	cJSON *doc = cJSON_CreateObject();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(doc, "error", msg);
	return send_json(c, code, doc);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *c,
					  const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *body;

	if (asprintf(&body, "{\"error\":\"method not allowed; use %s\"}\n",
		     allow) < 0)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Allow", allow);
	ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
	MHD_destroy_response(r);
	return ret;
}

static unsigned http_code(enum hr_status st)
{
	switch (st) {
	case HR_STATUS_PASSING:
		return 200;
	case HR_STATUS_WARNING:
		return 429;
	default:
		return 503;
	}
}

static cJSON *check_json(const struct hr_check_info *i)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *runs;
	char ts[40] = "";

	cJSON_AddStringToObject(o, "name", i->name);
	cJSON_AddStringToObject(o, "kind", hr_check_kind_name(i->kind));
	cJSON_AddStringToObject(o, "status", hr_status_name(i->status));
	cJSON_AddStringToObject(o, "output", i->output);
	if (i->group)
		cJSON_AddStringToObject(o, "group", i->group);
	else
		cJSON_AddNullToObject(o, "group");
	cJSON_AddStringToObject(o, "on_failure", hr_on_failure_name(i->on_failure));
	if (i->last_run > 0) {
		time_t t = (time_t)i->last_run;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cJSON_AddStringToObject(o, "last_run", ts);
	} else {
		cJSON_AddNullToObject(o, "last_run");
	}
	cJSON_AddNumberToObject(o, "duration_ms", (double)(long)(i->duration_ms * 1000) / 1000.0);
	cJSON_AddStringToObject(o, "last_result", hr_status_name(i->last_result));
	cJSON_AddNumberToObject(o, "consecutive_failures", i->consecutive_failures);
	cJSON_AddNumberToObject(o, "consecutive_successes", i->consecutive_successes);
	runs = cJSON_AddObjectToObject(o, "runs");
	cJSON_AddNumberToObject(runs, "passing", (double)i->runs_passing);
	cJSON_AddNumberToObject(runs, "warning", (double)i->runs_warning);
	cJSON_AddNumberToObject(runs, "critical", (double)i->runs_critical);
	cJSON_AddBoolToObject(o, "running", i->running);
	return o;
}

static void add_time(cJSON *o, const char *key, double t)
{
	char ts[40];
	time_t s = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	gmtime_r(&s, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(o, key, ts);
}

/* "registered", "deregistered", "maintenance", "pending", or, while its
 * requests fail, "unreachable" (no answer) or "failing" (refused);
 * "dry_run" for a registry with "dry_run": true (registration says what
 * would be registered). */
const char *hr_api_registry_state(const struct hr_registry_stats *s)
{
	if (s->dry_run)
		return "dry_run";
	if (s->failures)
		return s->unreachable ? "unreachable" : "failing";
	return hr_registry_state_name(s->state);
}

static cJSON *registry_json(const struct hr_api_registry *r)
{
	const struct hr_registry_stats *s = r->stats;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "backend", r->name);
	cJSON_AddStringToObject(o, "state", hr_api_registry_state(s));
	cJSON_AddStringToObject(o, "registration",
				hr_registry_state_name(s->state));
	cJSON_AddBoolToObject(o, "dry_run", s->dry_run);
	cJSON_AddBoolToObject(o, "up", !s->failures);
	add_time(o, "since", s->failures ? s->failing_since : 0);
	cJSON_AddNumberToObject(o, "failed_attempts", s->failures);
	if (s->last_error[0])
		cJSON_AddStringToObject(o, "last_error", s->last_error);
	else
		cJSON_AddNullToObject(o, "last_error");
	add_time(o, "last_error_at", s->last_error_at);
	add_time(o, "last_success", s->last_success);
	cJSON_AddNumberToObject(o, "writes", (double)s->writes);
	cJSON_AddNumberToObject(o, "errors", (double)s->errors);
	cJSON_AddBoolToObject(o, "floor_kept", s->floor_kept);
	return o;
}

/* The status a caller sees: maintenance forces critical. */
static enum hr_status effective(struct hr_api *api,
				const struct hr_api_service *sv, char *out,
				size_t len)
{
	const char *reason = NULL;
	struct hr_agg *agg = sv->agg;

	if (api->host.maint_get(api->host.ctx, sv->id, &reason)) {
		snprintf(out, len, "maintenance: %s",
			 reason && *reason ? reason : "(no reason given)");
		return HR_STATUS_CRITICAL;
	}
	snprintf(out, len, "%s", hr_agg_output(agg));
	return hr_agg_status(agg);
}

/* How bad a status is for the worst-of rule: unknown is as bad as
 * critical (both answer 503). */
static int badness(enum hr_status st)
{
	switch (st) {
	case HR_STATUS_PASSING:
		return 0;
	case HR_STATUS_WARNING:
		return 1;
	default:
		return 2;
	}
}

/* The index of the service whose id is id, or -1. */
static long service_index(struct hr_api *api, const char *id)
{
	struct hr_api_service sv;
	size_t i, n = api->host.n_services(api->host.ctx);

	for (i = 0; i < n; i++) {
		api->host.service(api->host.ctx, i, &sv);
		if (sv.id && !strcmp(sv.id, id))
			return (long)i;
	}
	return -1;
}

/* The maintenance of the service id (NULL: the agent's). */
static void add_maintenance(struct hr_api *api, cJSON *doc, bool full,
			    const char *id)
{
	const char *reason = NULL;
	bool maint = api->host.maint_get(api->host.ctx, id, &reason);
	cJSON *m = cJSON_AddObjectToObject(doc, "maintenance");

	cJSON_AddBoolToObject(m, "enabled", maint);
	if (maint && full)
		cJSON_AddStringToObject(m, "reason", reason ? reason : "");
}

/* One service's fields (GET /v1/health/<id>, and of the only one in
 * GET /v1/health): without full, no check names or outputs. */
static enum hr_status service_fields(struct hr_api *api,
				     const struct hr_api_service *sv,
				     cJSON *doc, bool full)
{
	struct hr_check_info info;
	char output[1200];
	enum hr_status st = effective(api, sv, output, sizeof(output));
	cJSON *arr;
	size_t i;

	cJSON_AddStringToObject(doc, "service", sv->name ? sv->name : "");
	cJSON_AddStringToObject(doc, "id", sv->id ? sv->id : "");
	cJSON_AddStringToObject(doc, "status", hr_status_name(st));
	if (!full)
		return st;
	cJSON_AddStringToObject(doc, "output", output);
	arr = cJSON_AddArrayToObject(doc, "checks");
	for (i = 0; i < hr_agg_n_checks(sv->agg); i++) {
		hr_agg_check_at(sv->agg, i, &info);
		cJSON_AddItemToArray(arr, check_json(&info));
	}
	arr = cJSON_AddArrayToObject(doc, "registries");
	for (i = 0; i < sv->n_regs; i++)
		cJSON_AddItemToArray(arr, registry_json(&sv->regs[i]));
	return st;
}

static enum MHD_Result send_health(struct MHD_Connection *c, const char *fmt,
				   enum hr_status st, cJSON *doc)
{
	char *body;

	if (fmt && !strcmp(fmt, "text")) {
		cJSON_Delete(doc);
		if (asprintf(&body, "%s\n", hr_status_name(st)) < 0)
			return MHD_NO;
		return send_text(c, http_code(st), "text/plain; charset=utf-8",
				 body);
	}
	return send_json(c, http_code(st), doc);
}

/* ---- handlers ------------------------------------------------------------- */

/*
 * GET /v1/health (id NULL) or /v1/health/<id>. full: with the token (or
 * when none is configured). Without it, when a token is configured, only
 * what a probe needs: the code, the status word, the service and whether
 * it is in maintenance; no check names, outputs or the summary (which
 * names failing checks).
 *
 * The agent as a whole is the worst of its services (critical or unknown,
 * then warning, then passing); with one service, the body is that
 * service's, as it always was, and every body lists "services".
 */
static enum MHD_Result get_health(struct hr_api *api, struct MHD_Connection *c,
				  bool full, const char *id)
{
	const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						      "format");
	size_t n = api->host.n_services(api->host.ctx), i;
	size_t counts[3] = { 0, 0, 0 };
	struct hr_api_service sv;
	enum hr_status worst = HR_STATUS_PASSING;
	char output[1200], bad[600];
	size_t ob = 0;
	cJSON *doc, *arr = NULL;

	if (fmt && strcmp(fmt, "text") && strcmp(fmt, "json"))
		return send_error(c, 400, "format: \"%s\" is not text or json", fmt);
	doc = cJSON_CreateObject();
	if (id) {
		long k = service_index(api, id);
		enum hr_status st;

		if (k < 0) {
			cJSON_Delete(doc);
			return send_error(c, 404, "unknown service \"%.200s\"", id);
		}
		api->host.service(api->host.ctx, (size_t)k, &sv);
		st = service_fields(api, &sv, doc, full);
		add_maintenance(api, doc, full, sv.id);
		return send_health(c, fmt, st, doc);
	}
	if (n == 1) {
		api->host.service(api->host.ctx, 0, &sv);
		worst = service_fields(api, &sv, doc, full);
	}
	bad[0] = '\0';
	for (i = 0; i < n; i++) {
		enum hr_status st;
		int b;

		api->host.service(api->host.ctx, i, &sv);
		st = effective(api, &sv, output, sizeof(output));
		b = badness(st);
		counts[b]++;
		if (b > badness(worst))
			worst = st;
		if (b && ob + 1 < sizeof(bad))
			ob += (size_t)snprintf(bad + ob, sizeof(bad) - ob,
					       "%s%s", ob ? ", " : "", sv.id);
	}
	if (n > 1) {
		cJSON_AddNullToObject(doc, "service");
		cJSON_AddStringToObject(doc, "status", hr_status_name(worst));
		if (full) {
			snprintf(output, sizeof(output),
				 "%zu services: %zu passing, %zu warning, %zu critical%s%s",
				 n, counts[0], counts[1], counts[2],
				 *bad ? ": " : "", bad);
			cJSON_AddStringToObject(doc, "output", output);
		}
	}
	if (n == 1)
		api->host.service(api->host.ctx, 0, &sv);
	add_maintenance(api, doc, full, n == 1 ? sv.id : NULL);
	arr = cJSON_AddArrayToObject(doc, "services");
	for (i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();

		api->host.service(api->host.ctx, i, &sv);
		service_fields(api, &sv, o, full && n > 1);
		if (n > 1)
			add_maintenance(api, o, full, sv.id);
		cJSON_AddItemToArray(arr, o);
	}
	return send_health(c, fmt, worst, doc);
}

/* 0 when the request carries the token (or none is configured), else the
 * code to answer a request that needs it: 401 without, 403 with a wrong one. */
static unsigned authorize(const struct hr_api *api, struct MHD_Connection *c)
{
	const char *h;
	size_t i, n, t;
	unsigned char diff = 0;

	if (!api->token)
		return 0;
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (!h || strncmp(h, "Bearer ", 7))
		return 401;
	h += 7;
	n = strlen(h);
	t = strlen(api->token);
	/* Constant time in the token's length. */
	for (i = 0; i < t; i++)
		diff |= (unsigned char)(api->token[i] ^ (i < n ? h[i] : 0));
	return diff || n != t ? 403 : 0;
}

static enum MHD_Result put_check(struct MHD_Connection *c, struct hr_agg *agg,
				 const char *name, const char *verb,
				 const struct req *rq)
{
	struct hr_check_info info;
	enum hr_status st;
	const char *output = NULL;
	cJSON *doc = NULL, *it;
	enum MHD_Result ret;
	int rc;

	if (hr_agg_check_get(agg, name, &info))
		return send_error(c, 404, "unknown check \"%s\"", name);
	if (info.kind != HR_CHECK_TTL)
		return send_error(c, 400, "check \"%s\" is a %s check; only ttl checks take pushed results",
				  name, hr_check_kind_name(info.kind));
	if (verb) {
		if (!strcmp(verb, "pass"))
			st = HR_STATUS_PASSING;
		else if (!strcmp(verb, "warn"))
			st = HR_STATUS_WARNING;
		else
			st = HR_STATUS_CRITICAL;
		output = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "note");
		rc = hr_agg_ttl_update(agg, name, st, output ? output : "");
	} else {
		const cJSON *status = NULL, *out = NULL;

		doc = cJSON_ParseWithLength(rq->body ? rq->body : "", rq->len);
		if (!cJSON_IsObject(doc)) {
			cJSON_Delete(doc);
			return send_error(c, 400, "body: expected a JSON object {\"status\": ..., \"output\": ...}");
		}
		cJSON_ArrayForEach(it, doc) {
			if (!strcasecmp(it->string, "status"))
				status = it;
			else if (!strcasecmp(it->string, "output"))
				out = it;
			else {
				ret = send_error(c, 400, "body.%s: unknown key", it->string);
				cJSON_Delete(doc);
				return ret;
			}
		}
		if (!cJSON_IsString(status) ||
		    hr_status_parse(status->valuestring, 0, &st)) {
			cJSON_Delete(doc);
			return send_error(c, 400, "body.status: must be \"passing\", \"warning\" or \"critical\"");
		}
		if (out && !cJSON_IsString(out)) {
			cJSON_Delete(doc);
			return send_error(c, 400, "body.output: must be a string");
		}
		rc = hr_agg_ttl_update(agg, name, st, out ? out->valuestring : "");
		cJSON_Delete(doc);
	}
	if (rc)
		return send_error(c, 500, "update failed: %s", strerror(-rc));
	hr_agg_check_get(agg, name, &info);
	return send_json(c, 200, check_json(&info));
}

/* GET/PUT /v1/maintenance[?service=ID]: the agent's (every service), or
 * one service's own. */
static enum MHD_Result maintenance(struct hr_api *api, struct MHD_Connection *c,
				   const char *method)
{
	const char *svc = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						      "service");
	const char *reason = NULL;
	cJSON *doc;
	bool on;

	if (svc && service_index(api, svc) < 0)
		return send_error(c, 404, "unknown service \"%.200s\"", svc);
	if (!strcmp(method, "PUT")) {
		const char *en = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "enable");
		const char *why = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reason");
		char msg[512] = "";
		int rc;

		if (!en || (strcmp(en, "true") && strcmp(en, "false")))
			return send_error(c, 400, "enable: must be true or false");
		rc = api->host.maint_set(api->host.ctx, svc, !strcmp(en, "true"),
					 why ? why : "", msg, sizeof(msg));
		if (rc == -EMSGSIZE)
			return send_error(c, 400, "reason: too long (at most %d bytes)",
					  HR_MAINT_REASON_MAX);
		if (rc)
			return send_error(c, 500, "%s",
					  *msg ? msg : strerror(-rc));
	}
	on = api->host.maint_get(api->host.ctx, svc, &reason);
	doc = cJSON_CreateObject();
	if (svc)
		cJSON_AddStringToObject(doc, "service", svc);
	cJSON_AddBoolToObject(doc, "enabled", on);
	if (on)
		cJSON_AddStringToObject(doc, "reason", reason ? reason : "");
	return send_json(c, 200, doc);
}

/* The request as a route handler sees it. */
struct call {
	struct hr_api *api;
	struct MHD_Connection *c;
	const char *url;
	const struct req *rq;
	bool get, put;
	unsigned auth; /* authorize(), decided before the path is looked at */
};

static enum MHD_Result unauthorized(struct MHD_Connection *c, unsigned code)
{
	return send_error(c, code, code == 401 ? "a bearer token is required"
					       : "invalid token");
}

static enum MHD_Result route_health(const struct call *k)
{
	const char *id = NULL;

	if (!k->get)
		return method_not_allowed(k->c, "GET");
	if (!strncmp(k->url, "/v1/health/", 11))
		id = k->url + 11;
	else if (strcmp(k->url, "/v1/health"))
		return send_error(k->c, 404, "no such endpoint: %s", k->url);
	return get_health(k->api, k->c, !k->auth, id);
}

static enum MHD_Result route_metrics(const struct call *k)
{
	char *text;

	if (!k->get)
		return method_not_allowed(k->c, "GET");
	text = k->api->host.metrics(k->api->host.ctx);
	if (!text)
		return send_error(k->c, 500, "out of memory");
	return send_text(k->c, 200, "text/plain; version=0.0.4; charset=utf-8",
			 text);
}

static enum MHD_Result route_maintenance(const struct call *k)
{
	if (!k->get && !k->put)
		return method_not_allowed(k->c, "GET, PUT");
	if (k->put && k->auth)
		return unauthorized(k->c, k->auth);
	return maintenance(k->api, k->c, k->put ? "PUT" : "GET");
}

static enum MHD_Result route_reload(const struct call *k)
{
	char msg[2048] = "";
	cJSON *doc;

	if (!k->put)
		return method_not_allowed(k->c, "PUT");
	if (k->auth)
		return unauthorized(k->c, k->auth);
	if (k->api->host.reload(k->api->host.ctx, msg, sizeof(msg)))
		return send_error(k->c, 400, "%s", msg);
	doc = cJSON_CreateObject();
	cJSON_AddBoolToObject(doc, "reloaded", 1);
	return send_json(k->c, 200, doc);
}

/*
 * GET /v1/decisions[?limit=N][&service=ID]: the journal, newest last; the
 * last N of the entries (of that service). Check names and outputs: with
 * a token configured, it needs the token.
 */
static enum MHD_Result route_decisions(const struct call *k)
{
	const struct hr_journal *j = k->api->host.journal ?
		k->api->host.journal(k->api->host.ctx) : NULL;
	const char *lim = MHD_lookup_connection_value(k->c,
						      MHD_GET_ARGUMENT_KIND,
						      "limit");
	const char *svc = MHD_lookup_connection_value(k->c,
						      MHD_GET_ARGUMENT_KIND,
						      "service");
	size_t n = hr_journal_count(j), i, skip, match = 0;
	unsigned long limit = HR_JOURNAL_SIZE_MAX;
	cJSON *doc, *arr;
	char *end;

	if (!k->get)
		return method_not_allowed(k->c, "GET");
	if (k->auth)
		return unauthorized(k->c, k->auth);
	if (lim) {
		errno = 0;
		limit = strtoul(lim, &end, 10);
		if (!*lim || *end || errno || *lim == '-' || limit < 1 ||
		    limit > HR_JOURNAL_SIZE_MAX)
			return send_error(k->c, 400,
					  "limit: \"%.40s\" is not an integer "
					  "from 1 to %d", lim,
					  HR_JOURNAL_SIZE_MAX);
	}
	for (i = 0; i < n; i++)
		if (!svc || !strcmp(hr_journal_at(j, i)->service, svc))
			match++;
	skip = match > limit ? match - limit : 0;
	doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, "journal_size", j ? (double)j->cap : 0);
	arr = cJSON_AddArrayToObject(doc, "decisions");
	for (i = 0; i < n; i++) {
		const struct hr_journal_entry *e = hr_journal_at(j, i);

		if (svc && strcmp(e->service, svc))
			continue;
		if (skip) {
			skip--;
			continue;
		}
		cJSON_AddItemToArray(arr, hr_journal_entry_json(e));
	}
	return send_json(k->c, 200, doc);
}

static bool is_verb(const char *slash)
{
	return !strcmp(slash, "/pass") || !strcmp(slash, "/warn") ||
	       !strcmp(slash, "/fail");
}

/*
 * The service whose check name is: of the service id, or (id NULL) of
 * the one service that has it. 0 with *agg; -ENOENT; -EEXIST when several
 * services have it (their ids in ids, cut to fit).
 */
static int find_check(struct hr_api *api, const char *id, const char *name,
		      struct hr_agg **agg, char *ids, size_t len)
{
	size_t n = api->host.n_services(api->host.ctx), i, o = 0, found = 0;
	struct hr_api_service sv;
	struct hr_check_info info;

	*agg = NULL;
	ids[0] = '\0';
	for (i = 0; i < n; i++) {
		api->host.service(api->host.ctx, i, &sv);
		if (id && (!sv.id || strcmp(sv.id, id)))
			continue;
		if (hr_agg_check_get(sv.agg, name, &info))
			continue;
		if (!found++)
			*agg = sv.agg;
		if (o + 1 < len)
			o += (size_t)snprintf(ids + o, len - o, "%s%s",
					      o ? ", " : "", sv.id);
	}
	if (!found)
		return -ENOENT;
	return found > 1 ? -EEXIST : 0;
}

/*
 * /v1/checks/<name>[/pass|/warn|/fail] (rest after "/v1/checks/", id
 * NULL: the one service that has the check) or
 * /v1/services/<id>/checks/<name>[...]. A check's output is not public:
 * with a token configured, reads need it as writes do. A name is bounded
 * before it is copied (414 beyond HR_API_NAME_MAX).
 */
static enum MHD_Result serve_check(const struct call *k, const char *id,
				   const char *rest)
{
	size_t n = strlen(rest);
	const char *verb = NULL;
	struct hr_check_info info;
	struct hr_agg *agg;
	char name[HR_API_NAME_MAX + sizeof("/pass")], ids[400];
	char *slash;
	int rc;

	if (k->auth)
		return unauthorized(k->c, k->auth);
	if (n >= sizeof(name))
		return send_error(k->c, 414, "check name longer than %d bytes",
				  HR_API_NAME_MAX);
	memcpy(name, rest, n + 1);
	slash = strrchr(name, '/');
	/* "<name>/pass" unless a check has that full name. */
	if (slash && is_verb(slash) &&
	    find_check(k->api, id, name, &agg, ids, sizeof(ids)) == -ENOENT) {
		*slash = '\0';
		verb = slash + 1;
	}
	if (strlen(name) > HR_API_NAME_MAX)
		return send_error(k->c, 414, "check name longer than %d bytes",
				  HR_API_NAME_MAX);
	if (!*name)
		return send_error(k->c, 404, "no check name");
	if ((verb || k->put) && !k->put)
		return method_not_allowed(k->c, "PUT");
	if (!verb && !k->put && !k->get)
		return method_not_allowed(k->c, "GET, PUT");
	rc = find_check(k->api, id, name, &agg, ids, sizeof(ids));
	if (rc == -EEXIST)
		return send_error(k->c, 409, "check \"%s\" is in several services (%s): use /v1/services/<id>/checks/%s",
				  name, ids, name);
	if (rc)
		return send_error(k->c, 404, "unknown check \"%s\"", name);
	if (verb || k->put)
		return put_check(k->c, agg, name, verb, k->rq);
	hr_agg_check_get(agg, name, &info);
	return send_json(k->c, 200, check_json(&info));
}

static enum MHD_Result route_checks(const struct call *k)
{
	return serve_check(k, NULL, k->url + strlen("/v1/checks/"));
}

/* /v1/services/<id>/checks/<name>[/pass|/warn|/fail]. */
static enum MHD_Result route_services(const struct call *k)
{
	const char *rest = k->url + strlen("/v1/services/");
	const char *cut = strstr(rest, "/checks/");
	char id[HR_API_NAME_MAX + 1];
	size_t n;

	if (k->auth)
		return unauthorized(k->c, k->auth);
	if (!cut)
		return send_error(k->c, 404, "no such endpoint: %s (use /v1/services/<id>/checks/<name>)",
				  k->url);
	n = (size_t)(cut - rest);
	if (n > HR_API_NAME_MAX)
		return send_error(k->c, 414, "service id longer than %d bytes",
				  HR_API_NAME_MAX);
	memcpy(id, rest, n);
	id[n] = '\0';
	if (service_index(k->api, id) < 0)
		return send_error(k->c, 404, "unknown service \"%.200s\"", id);
	return serve_check(k, id, cut + strlen("/checks/"));
}

static const struct route {
	const char *path;
	bool prefix; /* path is a prefix of the URL */
	enum MHD_Result (*fn)(const struct call *k);
} routes[] = {
	{ "/v1/health", true, route_health },
	{ "/metrics", false, route_metrics },
	{ "/v1/maintenance", false, route_maintenance },
	{ "/v1/reload", false, route_reload },
	{ "/v1/decisions", false, route_decisions },
	{ "/v1/checks/", true, route_checks },
	{ "/v1/services/", true, route_services },
};

static enum MHD_Result route(struct hr_api *api, struct MHD_Connection *c,
			     const char *url, const char *method,
			     const struct req *rq)
{
	struct call k = { api, c, url, rq, false, false, 0 };
	size_t i;

	/* The token first: nothing of the path is parsed before. */
	k.auth = authorize(api, c);
	if (rq->nul_in_path)
		return send_error(c, 404, "no such endpoint: the path holds a NUL byte (%%00)");
	k.get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	k.put = !strcmp(method, "PUT");
	for (i = 0; i < HR_ARRAY_SIZE(routes); i++) {
		const struct route *r = &routes[i];

		if (r->prefix ? !strncmp(url, r->path, strlen(r->path))
			      : !strcmp(url, r->path))
			return r->fn(&k);
	}
	return send_error(c, 404, "no such endpoint: %s", url);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c,
				 const char *url, const char *method,
				 const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct hr_api *api = cls;
	struct req *rq = *con_cls;

	(void)version;
	if (!rq) /* uri_cb could not allocate */
		return MHD_NO;
	if (!rq->seen) {
		rq->seen = true;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!rq->too_big && rq->len + *upload_size <= HR_API_BODY_MAX) {
			char *nb = realloc(rq->body, rq->len + *upload_size + 1);

			if (!nb)
				return MHD_NO;
			rq->body = nb;
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
			rq->body[rq->len] = '\0';
		} else {
			rq->too_big = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return send_error(c, 413, "request body larger than %d bytes",
				  HR_API_BODY_MAX);
	return route(api, c, url, method, rq);
}

/* The raw request target, before MHD percent-decodes it into the url that
 * access_cb sees: a %00 would silently end the decoded path there. The
 * return value is the request's first *con_cls. */
static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct req *rq = calloc(1, sizeof(*rq));
	const char *q = strchr(uri, '?');
	const char *nul = strstr(uri, "%00");

	(void)cls;
	(void)c;
	if (rq)
		rq->nul_in_path = nul && (!q || nul < q);
	return rq;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* ---- loop glue ------------------------------------------------------------- */

static void rearm(struct hr_api *api)
{
	MHD_UNSIGNED_LONG_LONG ms;

	ev_timer_stop(api->loop, &api->timer);
	if (MHD_get_timeout(api->d, &ms) == MHD_YES) {
		ev_timer_set(&api->timer, (double)ms / 1000.0, 0.);
		ev_timer_start(api->loop, &api->timer);
	}
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hr_api *api = w->data;

	(void)loop;
	(void)revents;
	MHD_run(api->d);
	rearm(api);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_api *api = w->data;

	(void)loop;
	(void)revents;
	MHD_run(api->d);
	rearm(api);
}

/* addr as a numeric socket address (a host name would block). */
static int listen_addr(const char *addr, struct addrinfo **ai, int *p,
		       struct hr_err *err)
{
	struct addrinfo hints;
	char h[256], port[16];
	int rc;

	*ai = NULL;
	if (hr_api_parse_addr(addr, h, sizeof(h), p))
		return hr_err_set(err, -EINVAL,
				  "agent.api_listen: \"%s\" is not host:port", addr);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", *p);
	rc = getaddrinfo(*h ? h : NULL, port, &hints, ai);
	if (rc) {
		*ai = NULL;
		return hr_err_set(err, -EINVAL,
				  "agent.api_listen: \"%s\": %s (use an IP address)",
				  addr, gai_strerror(rc));
	}
	return 0;
}

int hr_api_check_listen(const char *addr, struct hr_err *err)
{
	struct addrinfo *ai = NULL;
	int p, rc = listen_addr(addr, &ai, &p, err);

	freeaddrinfo(ai);
	return rc;
}

/*
 * How many connections MHD holds: a quarter of the fd limit, at most
 * HR_API_CONN_MAX, at least 64. A soft fd limit below 4096 is raised
 * towards it first (up to the hard limit): idle connections are cheap,
 * a probe stuck in the listen backlog behind them is not.
 */
static unsigned conn_limit(void)
{
	const rlim_t want = 4 * HR_API_CONN_MAX;
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 64;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rlim_t cur = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
				      ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			rl.rlim_cur = cur;
	}
	n = rl.rlim_cur == RLIM_INFINITY ? want : rl.rlim_cur;
	n /= 4;
	if (n > HR_API_CONN_MAX)
		n = HR_API_CONN_MAX;
	return n < 64 ? 64 : (unsigned)n;
}

/*
 * The listening socket, made here rather than by MHD so that its options
 * are ours and a failure has its errno: SO_REUSEADDR only (a restart
 * binds while the old connections sit in TIME_WAIT), never SO_REUSEPORT,
 * so a second agent on a taken address fails instead of sharing it (the
 * kernel would split the requests between the two). -errno.
 */
static int listen_socket(const struct addrinfo *ai, int *out)
{
	const int on = 1;
	int fd, rc;

	*out = -1;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    (ai->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

/* The port fd is bound to (port 0 asks the kernel for one). */
static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/*
 * MHD's daemon on ai, driven by one ev_io (its epoll fd) and one timer.
 * Against a flood of idle or half-sent requests (probes must still be
 * answered, docs/operations.md): conn_limit() slots, a per-address limit
 * of three quarters of them (the rest is a reserve for every other
 * address) and an idle timeout of HR_API_IDLE_TIMEOUT seconds, which also
 * bounds how long a request may take to arrive.
 */
static int start_daemon(struct hr_api *api, const struct addrinfo *ai,
			const char *addr, struct hr_err *err)
{
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL;
	unsigned limit = conn_limit();
	int fd, rc;

	rc = listen_socket(ai, &fd);
	if (rc)
		return hr_err_set(err, rc, "agent.api_listen: cannot listen on %s: %s",
				  addr, strerror(-rc));
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	api->port = bound_port(fd);
	/* MHD owns fd from here: MHD_stop_daemon() closes it. */
	api->d = MHD_start_daemon(
		flags, 0, NULL, NULL, access_cb, api,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_URI_LOG_CALLBACK, uri_cb, api,
		MHD_OPTION_NOTIFY_COMPLETED, completed_cb, api,
		MHD_OPTION_CONNECTION_LIMIT, limit,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, limit / 4 * 3,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HR_API_IDLE_TIMEOUT,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_END);
	if (!api->d) {
		close(fd);
		return hr_err_set(err, -ENOMEM,
				  "agent.api_listen: cannot serve %s (libmicrohttpd failed to start)",
				  addr);
	}
	info = MHD_get_daemon_info(api->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		return hr_err_set(err, -ENOTSUP, "libmicrohttpd without epoll");
	ev_io_init(&api->io, io_cb, info->epoll_fd, EV_READ);
	api->io.data = api;
	ev_init(&api->timer, timer_cb);
	api->timer.data = api;
	ev_io_start(api->loop, &api->io);
	rearm(api);
	return 0;
}

int hr_api_new(struct hr_api **out, struct ev_loop *loop, const char *addr,
	       const char *token, const struct hr_api_host *host,
	       struct hr_err *err)
{
	struct hr_api *api = NULL;
	struct addrinfo *ai = NULL;
	int p, rc;

	*out = NULL;
	rc = listen_addr(addr, &ai, &p, err);
	if (rc)
		return rc;
	api = calloc(1, sizeof(*api));
	if (!api) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	api->loop = loop;
	api->host = *host;
	if (token) {
		api->token = strdup(token);
		if (!api->token) {
			rc = hr_err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	rc = start_daemon(api, ai, addr, err);
	if (rc)
		goto fail;
	freeaddrinfo(ai);
	*out = api;
	return 0;
fail:
	freeaddrinfo(ai);
	if (api && api->d)
		MHD_stop_daemon(api->d);
	if (api)
		hr_secret_free(api->token);
	free(api);
	return rc;
}

int hr_api_port(const struct hr_api *api)
{
	return api->port;
}

void hr_api_free(struct hr_api *api)
{
	if (!api)
		return;
	ev_io_stop(api->loop, &api->io);
	ev_timer_stop(api->loop, &api->timer);
	MHD_stop_daemon(api->d);
	hr_secret_free(api->token);
	free(api);
}
