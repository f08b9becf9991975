/*
 * consul.c - the Consul registry backend: the I/O shell around the pure
 * functions of consul_payload.c.
 *
 * One request at a time. Every event (apply, maintenance, a finished
 * request, a timer) calls kick(), which compares what the agent is known
 * to hold with what it should hold and sends the one next request:
 *
 *   shutting down ............ deregister (if anything may be registered)
 *   service wanted:
 *     not registered ......... register (replace-existing-checks)
 *     status/output changed,
 *     or a third of the TTL
 *     since the last update .. check update
 *     maintenance differs .... maintenance
 *     else ................... arm the refresh timer
 *   service not wanted (status outside register_when for deregister_after):
 *     check not critical ..... check update (critical)
 *     may be registered ...... deregister
 *
 * Answers are classified by hr_consul_classify(): LOST clears "registered"
 * (so the next kick registers again), RETRY arms a capped jittered backoff,
 * FORBIDDEN and REJECTED log once and retry slowly. While the retry timer
 * runs nothing is sent; apply() only records the newest state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "consul.h"
#include "consul_payload.h"
#include "healthreg/log.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define RESP_MAX 16384          /* response bytes kept for classification */
#define SLOW_RETRY_MIN_MS 2000  /* after 403 / 4xx: about once a TTL */
#define SLOW_RETRY_MAX_MS 60000
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define SHUTDOWN_RETRY_MS 200

#ifndef HR_VERSION
#define HR_VERSION "0"
#endif

/* The request in flight. */
struct req {
	CURL *easy;
	enum hr_consul_op op;
	char *url, *body;
	char *resp;
	size_t resp_len;
	enum hr_status status; /* update: what was sent */
	char *output;          /* update: what was sent */
	bool maint_enable;     /* maintenance: what was sent */
	ev_tstamp sent_at;
	char errbuf[CURL_ERROR_SIZE];
};

struct hr_registry {
	struct ev_loop *loop;
	struct hr_http *http;
	const struct hr_service_spec *svc;
	struct hr_registry_stats *stats; /* the agent's, may be NULL */
	struct hr_consul_conf conf;
	const char *service_id;       /* borrowed from svc */
	char *check_id;
	char *base;                   /* URL base requests go to */
	struct curl_slist *headers;   /* may hold the token: wiped at free */
	struct curl_slist *connect_to;
	int64_t period_ms, timeout_ms, backoff_cap_ms, slow_ms, shutdown_ms;

	/* wanted */
	bool have_status;
	enum hr_status status;
	char *output;
	bool drop_due;                /* unwanted for deregister_after */
	bool maint_want;
	char *maint_reason;

	/* known about the agent */
	bool registered;              /* service and check are there */
	bool maybe_registered;        /* a register may have landed */
	bool maint_on;
	bool reported;
	enum hr_status rep_status;
	char *rep_output;
	ev_tstamp rep_at;

	/* machinery */
	struct req req;
	bool busy;
	ev_timer retry, refresh, drop, deadline, wake;
	unsigned failures, lost_streak;
	uint32_t rng;
	bool logged_down, logged_forbidden, logged_rejected;

	bool shutting_down, shutdown_finished;
	hr_registry_done_cb done;
	void *done_payload;
};

static void kick(struct hr_registry *r);

/* ---- small helpers ----------------------------------------------------- */

static uint32_t next_rand(struct hr_registry *r)
{
	uint32_t x = r->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	r->rng = x ? x : 0x9e3779b9u;
	return r->rng;
}

static int replace_str(char **dst, const char *src)
{
	char *c = strdup(src ? src : "");

	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static void wipe(char *s)
{
	volatile char *p = s;

	while (p && *p)
		*p++ = '\0';
}

static void slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *i;

	for (i = l; i; i = i->next)
		wipe(i->data);
	curl_slist_free_all(l);
}

static void arm(struct hr_registry *r, ev_timer *t, double after)
{
	ev_timer_stop(r->loop, t);
	ev_timer_set(t, after > 0 ? after : 0., 0.);
	ev_timer_start(r->loop, t);
}

static void arm_retry(struct hr_registry *r, int64_t ms)
{
	arm(r, &r->retry, (double)ms / 1000.0);
}

static void req_release(struct hr_registry *r)
{
	struct req *q = &r->req;

	if (q->easy) {
		hr_http_cancel(r->http, q->easy);
		hr_http_easy_put(r->http, q->easy);
	}
	free(q->url);
	free(q->body);
	free(q->resp);
	free(q->output);
	memset(q, 0, sizeof(*q));
	r->busy = false;
}

/* ---- sending ----------------------------------------------------------- */

/* CURLOPT_WRITEFUNCTION: keep the head of the answer. */
static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
	struct req *q = userp;
	size_t len = size * n, take = len;
	char *p;

	if (q->resp_len >= RESP_MAX)
		return len;
	if (take > RESP_MAX - q->resp_len)
		take = RESP_MAX - q->resp_len;
	p = realloc(q->resp, q->resp_len + take + 1);
	if (!p)
		return len;
	memcpy(p + q->resp_len, data, take);
	q->resp = p;
	q->resp_len += take;
	q->resp[q->resp_len] = '\0';
	return len;
}

static void done_cb(CURL *easy, CURLcode rc, void *payload);

static void setup_easy(struct hr_registry *r, CURL *e)
{
	struct req *q = &r->req;
	const struct hr_consul_conf *c = &r->conf;

	curl_easy_setopt(e, CURLOPT_URL, q->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body ? q->body : "");
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
			 (long)(q->body ? strlen(q->body) : 0));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "healthreg/" HR_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(r->timeout_ms < 5000 ? r->timeout_ms : 5000));
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* The agent is local: never send its traffic through a proxy. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	if (r->connect_to)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, r->connect_to);
}

/* Takes url and body. Returns 0, or a negative errno (nothing started). */
static int send_req(struct hr_registry *r, enum hr_consul_op op, char *url,
		    char *body)
{
	struct req *q = &r->req;
	int rc;

	memset(q, 0, sizeof(*q));
	q->op = op;
	q->url = url;
	q->body = body;
	q->sent_at = ev_now(r->loop);
	if (!url || (op != HR_CONSUL_OP_DEREGISTER &&
		     op != HR_CONSUL_OP_MAINTENANCE && !body)) {
		rc = -ENOMEM;
		goto fail;
	}
	q->easy = hr_http_easy_get(r->http);
	if (!q->easy) {
		rc = -ENOMEM;
		goto fail;
	}
	setup_easy(r, q->easy);
	rc = hr_http_start(r->http, q->easy, done_cb, r);
	if (rc < 0) {
		hr_http_easy_put(r->http, q->easy);
		q->easy = NULL;
		goto fail;
	}
	r->busy = true;
	return 0;
fail:
	req_release(r);
	return rc;
}

static int send_register(struct hr_registry *r)
{
	char *body = NULL;

	if (hr_consul_register_body(&body, r->svc, &r->conf, r->status) < 0)
		return -ENOMEM;
	r->maybe_registered = true;
	return send_req(r, HR_CONSUL_OP_REGISTER,
			hr_consul_url_register(r->base), body);
}

static int send_update(struct hr_registry *r, enum hr_status s)
{
	char *body = NULL, *out = strdup(r->output ? r->output : "");
	int rc;

	if (!out || hr_consul_update_body(&body, s, out) < 0) {
		free(out);
		return -ENOMEM;
	}
	rc = send_req(r, HR_CONSUL_OP_UPDATE,
		      hr_consul_url_update(r->base, r->check_id), body);
	if (rc < 0) {
		free(out);
		return rc;
	}
	r->req.status = s;
	r->req.output = out;
	return 0;
}

static int send_deregister(struct hr_registry *r)
{
	return send_req(r, HR_CONSUL_OP_DEREGISTER,
			hr_consul_url_deregister(r->base, r->service_id),
			NULL);
}

static int send_maintenance(struct hr_registry *r)
{
	int rc = send_req(r, HR_CONSUL_OP_MAINTENANCE,
			  hr_consul_url_maintenance(r->base, r->service_id,
						    r->maint_want,
						    r->maint_reason),
			  NULL);

	if (!rc)
		r->req.maint_enable = r->maint_want;
	return rc;
}

/* ---- deciding ---------------------------------------------------------- */

static bool want_registered(const struct hr_registry *r)
{
	return r->have_status &&
	       (hr_consul_wants(&r->conf, r->status) || !r->drop_due);
}

static bool update_due(const struct hr_registry *r)
{
	if (!r->reported || r->rep_status != r->status ||
	    strcmp(r->rep_output ? r->rep_output : "",
		   r->output ? r->output : ""))
		return true;
	return ev_now(r->loop) - r->rep_at >=
	       (double)r->period_ms / 1000.0 - 0.001;
}

static void finish_shutdown(struct hr_registry *r)
{
	hr_registry_done_cb done = r->done;

	ev_timer_stop(r->loop, &r->retry);
	ev_timer_stop(r->loop, &r->refresh);
	ev_timer_stop(r->loop, &r->drop);
	ev_timer_stop(r->loop, &r->deadline);
	if (r->busy)
		req_release(r);
	r->done = NULL;
	r->shutdown_finished = true;
	/* Wake the loop once more: an agent that polls for completion from
	 * an ev_check would otherwise sleep until its next event. Started
	 * before done(), which may destroy r. */
	arm(r, &r->wake, 0.);
	if (done)
		done(r->done_payload);
}

static void kick(struct hr_registry *r)
{
	int rc = 0;

	if (r->busy || ev_is_active(&r->retry))
		return;
	if (r->shutting_down) {
		if (r->shutdown_finished)
			return;
		if (!r->maybe_registered) {
			finish_shutdown(r);
			return;
		}
		rc = send_deregister(r);
	} else if (want_registered(r)) {
		if (!r->registered)
			rc = send_register(r);
		else if (update_due(r))
			rc = send_update(r, r->status);
		else if (r->maint_want != r->maint_on)
			rc = send_maintenance(r);
		else
			arm(r, &r->refresh,
			    r->rep_at + (double)r->period_ms / 1000.0 -
				    ev_now(r->loop));
	} else if (r->registered && (!r->reported ||
				     r->rep_status != HR_STATUS_CRITICAL)) {
		/* Let watchers see critical before the service goes away. */
		rc = send_update(r, HR_STATUS_CRITICAL);
	} else if (r->maybe_registered) {
		rc = send_deregister(r);
	} else {
		ev_timer_stop(r->loop, &r->refresh);
	}
	if (rc < 0) {
		hr_log(HR_LOG_ERROR, "consul_request_failed", "service",
		       r->service_id, "error", strerror(-rc), NULL);
		arm_retry(r, BACKOFF_CAP_MS);
	}
}

/* ---- answers ----------------------------------------------------------- */

static void on_ok(struct hr_registry *r, struct req *q)
{
	if (r->logged_down)
		hr_log(HR_LOG_INFO, "consul_reachable", "service",
		       r->service_id, "address", r->conf.address, NULL);
	r->failures = 0;
	r->logged_down = r->logged_forbidden = r->logged_rejected = false;
	switch (q->op) {
	case HR_CONSUL_OP_REGISTER:
		r->registered = true;
		r->reported = false;
		/* replace-existing-checks drops the maintenance check. */
		r->maint_on = false;
		hr_log(HR_LOG_INFO, "consul_registered", "service",
		       r->service_id, "check", r->check_id, "address",
		       r->conf.address, NULL);
		break;
	case HR_CONSUL_OP_UPDATE:
		r->lost_streak = 0;
		r->reported = true;
		r->rep_status = q->status;
		r->rep_at = q->sent_at;
		free(r->rep_output);
		r->rep_output = q->output;
		q->output = NULL;
		break;
	case HR_CONSUL_OP_DEREGISTER:
		r->registered = r->maybe_registered = false;
		r->reported = false;
		r->maint_on = false;
		hr_log(HR_LOG_INFO, "consul_deregistered", "service",
		       r->service_id, NULL);
		break;
	case HR_CONSUL_OP_MAINTENANCE:
		r->maint_on = q->maint_enable;
		hr_log(HR_LOG_INFO, "consul_maintenance", "service",
		       r->service_id, "enable",
		       q->maint_enable ? "true" : "false", NULL);
		break;
	}
}

static void on_failure(struct hr_registry *r, const struct req *q,
		       enum hr_consul_verdict v, long code,
		       const char *detail)
{
	const char *op = hr_consul_op_name(q->op);
	char code_s[16];

	snprintf(code_s, sizeof(code_s), "%ld", code);
	if (r->shutting_down && v != HR_CONSUL_RETRY) {
		hr_log(HR_LOG_ERROR, "consul_deregister_failed", "service",
		       r->service_id, "code", code_s, "error", detail, NULL);
		r->maybe_registered = false; /* give up */
		return;
	}
	switch (v) {
	case HR_CONSUL_LOST:
		r->registered = false;
		r->reported = false;
		r->maint_on = false;
		hr_log(HR_LOG_WARN, "consul_registration_lost", "service",
		       r->service_id, "op", op, "code", code_s, "error",
		       detail, NULL);
		/* A registration that never sticks must not spin. */
		if (++r->lost_streak > 1)
			arm_retry(r, hr_consul_backoff_ms(r->lost_streak - 1,
							  BACKOFF_BASE_MS,
							  r->backoff_cap_ms,
							  next_rand(r)));
		return;
	case HR_CONSUL_FORBIDDEN:
		if (!r->logged_forbidden)
			hr_log(HR_LOG_ERROR, "consul_forbidden", "service",
			       r->service_id, "op", op, "code", code_s,
			       "needs", "service:write on the service",
			       "name", r->svc->name, "error", detail, NULL);
		r->logged_forbidden = true;
		arm_retry(r, hr_consul_backoff_ms(1, r->slow_ms, r->slow_ms,
						  next_rand(r)));
		return;
	case HR_CONSUL_REJECTED:
		if (!r->logged_rejected)
			hr_log(HR_LOG_ERROR, "consul_rejected", "service",
			       r->service_id, "op", op, "code", code_s,
			       "error", detail, NULL);
		r->logged_rejected = true;
		arm_retry(r, hr_consul_backoff_ms(1, r->slow_ms, r->slow_ms,
						  next_rand(r)));
		return;
	case HR_CONSUL_RETRY:
	case HR_CONSUL_OK:
		break;
	}
	r->failures++;
	if (q->op == HR_CONSUL_OP_REGISTER)
		r->registered = false;
	if (!r->logged_down)
		hr_log(HR_LOG_WARN, "consul_unavailable", "service",
		       r->service_id, "op", op, "code", code_s, "error",
		       detail, "address", r->conf.address, NULL);
	else
		hr_log(HR_LOG_DEBUG, "consul_retry", "service", r->service_id,
		       "op", op, "code", code_s, "error", detail, NULL);
	r->logged_down = true;
	if (r->shutting_down)
		arm_retry(r, SHUTDOWN_RETRY_MS);
	else
		arm_retry(r, hr_consul_backoff_ms(r->failures, BACKOFF_BASE_MS,
						  r->backoff_cap_ms,
						  next_rand(r)));
}

static void done_cb(CURL *easy, CURLcode rc, void *payload)
{
	struct hr_registry *r = payload;
	struct req *q = &r->req;
	enum hr_consul_verdict v;
	char detail[256];
	long code = 0;

	if (rc == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK) {
		v = HR_CONSUL_RETRY;
		snprintf(detail, sizeof(detail), "%s%s%s",
			 curl_easy_strerror(rc), q->errbuf[0] ? ": " : "",
			 q->errbuf);
	} else {
		v = hr_consul_classify(q->op, code, q->resp, q->resp_len);
		hr_consul_excerpt(detail, sizeof(detail), q->resp,
				  q->resp_len);
	}
	hr_registry_stats_record(r->stats, v == HR_CONSUL_OK);
	if (v == HR_CONSUL_OK)
		on_ok(r, q);
	else
		on_failure(r, q, v, code, detail);
	req_release(r);
	kick(r);
}

/* ---- timers ------------------------------------------------------------ */

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	kick(container_of(w, struct hr_registry, retry));
}

static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	kick(container_of(w, struct hr_registry, refresh));
}

static void drop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = container_of(w, struct hr_registry, drop);

	(void)loop;
	(void)revents;
	r->drop_due = true;
	kick(r);
}

static void wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = container_of(w, struct hr_registry, deadline);

	(void)loop;
	(void)revents;
	hr_log(HR_LOG_WARN, "consul_deregister_timeout", "service",
	       r->service_id, NULL);
	finish_shutdown(r);
}

/* ---- the ops ----------------------------------------------------------- */

static void env_from_process(struct hr_consul_env *env)
{
	env->http_addr = getenv("CONSUL_HTTP_ADDR");
	env->http_token = getenv("CONSUL_HTTP_TOKEN");
	env->http_token_file = getenv("CONSUL_HTTP_TOKEN_FILE");
}

static void consul_validate(const cJSON *conf, const char *path,
			    struct hr_diag *diag)
{
	struct hr_consul_conf c;
	struct hr_consul_env env;

	env_from_process(&env);
	if (!hr_consul_conf_parse(&c, conf, path, &env, diag))
		hr_consul_conf_dispose(&c);
}

/* Read the token file (first line, trimmed) into conf->token. */
static int read_token(struct hr_consul_conf *c, struct hr_err *err)
{
	char buf[4096];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, rc = 0;

	fd = open(c->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return hr_err_set(err, -errno, "consul token_file %s: %s",
				  c->token_file, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		hr_log(HR_LOG_WARN, "consul_token_file_mode", "file",
		       c->token_file, "hint",
		       "readable by group or others; chmod 600", NULL);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		rc = hr_err_set(err, -errno, "consul token_file %s: %s",
				c->token_file, strerror(errno));
	close(fd);
	if (rc)
		return rc;
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (!len) {
		wipe(buf);
		return hr_err_set(err, -EINVAL, "consul token_file %s is empty",
				  c->token_file);
	}
	free(c->token);
	c->token = strdup(buf + strspn(buf, " \t"));
	wipe(buf);
	return c->token ? 0 : hr_err_set(err, -ENOMEM, "out of memory");
}

static int readable(const char *file, const char *key, struct hr_err *err)
{
	if (file && access(file, R_OK) < 0)
		return hr_err_set(err, -errno, "consul %s %s: %s", key, file,
				  strerror(errno));
	return 0;
}

/* Base URL and curl lists: URL host is tls_server_name when set, and
 * CONNECT_TO sends the connection to the configured host. */
static int setup_transport(struct hr_registry *r, struct hr_err *err)
{
	const struct hr_consul_conf *c = &r->conf;
	char host[256], line[600], hdr[4200];
	struct curl_slist *l;
	bool tls;
	int port;

	if (hr_consul_addr_split(c->address, &tls, host, sizeof(host),
				 &port) < 0)
		return hr_err_set(err, -EINVAL, "consul address %s is invalid",
				  c->address);
	if (tls && c->tls_server_name) {
		bool v6 = strchr(host, ':') != NULL;

		snprintf(line, sizeof(line), "https://%s:%d",
			 c->tls_server_name, port);
		r->base = strdup(line);
		snprintf(line, sizeof(line), "%s:%d:%s%s%s:%d",
			 c->tls_server_name, port, v6 ? "[" : "", host,
			 v6 ? "]" : "", port);
		r->connect_to = curl_slist_append(NULL, line);
		if (!r->connect_to)
			return hr_err_set(err, -ENOMEM, "out of memory");
	} else {
		r->base = strdup(c->address);
	}
	if (!r->base)
		return hr_err_set(err, -ENOMEM, "out of memory");
	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (l)
		r->headers = l;
	l = l ? curl_slist_append(r->headers, "Expect:") : NULL;
	if (l && c->token) {
		if (strlen(c->token) > sizeof(hdr) - 32 ||
		    strpbrk(c->token, "\r\n"))
			return hr_err_set(err, -EINVAL,
					  "consul token is malformed");
		snprintf(hdr, sizeof(hdr), "X-Consul-Token: %s", c->token);
		l = curl_slist_append(r->headers, hdr);
		wipe(hdr);
	}
	if (!l)
		return hr_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

static void consul_destroy(struct hr_registry *r);

static int consul_create(struct hr_registry **out, const cJSON *conf,
			 const struct hr_registry_env *env,
			 struct hr_err *err)
{
	struct hr_registry *r;
	struct hr_consul_env penv;
	struct hr_diag diag;
	int rc;

	*out = NULL;
	if (!env->service || !env->service->name)
		return hr_err_set(err, -EINVAL, "consul: no service name");
	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->loop = env->loop;
	r->http = env->http;
	r->svc = env->service;
	r->stats = env->stats;
	r->service_id = r->svc->id ? r->svc->id : r->svc->name;
	ev_init(&r->retry, retry_cb);
	ev_init(&r->refresh, refresh_cb);
	ev_init(&r->drop, drop_cb);
	ev_init(&r->deadline, deadline_cb);
	ev_init(&r->wake, wake_cb);

	env_from_process(&penv);
	hr_diag_init(&diag);
	rc = hr_consul_conf_parse(&r->conf, conf, "registry.consul", &penv,
				  &diag);
	if (rc < 0) {
		size_t i;

		for (i = 0; i < diag.n; i++)
			if (diag.v[i].level == HR_DIAG_ERROR && diag.v[i].text)
				break;
		hr_err_set(err, rc, "%s",
			   i < diag.n ? diag.v[i].text : "invalid config");
		hr_diag_dispose(&diag);
		goto fail;
	}
	hr_diag_dispose(&diag);
	if (r->conf.token_file) {
		rc = read_token(&r->conf, err);
		if (rc < 0)
			goto fail;
	}
	if ((rc = readable(r->conf.ca_file, "ca_file", err)) < 0 ||
	    (rc = readable(r->conf.cert_file, "cert_file", err)) < 0 ||
	    (rc = readable(r->conf.key_file, "key_file", err)) < 0)
		goto fail;
	rc = setup_transport(r, err);
	if (rc < 0)
		goto fail;
	r->check_id = hr_consul_check_id(r->service_id);
	if (!r->check_id) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r->period_ms = hr_consul_update_period_ms(&r->conf);
	r->timeout_ms = r->period_ms < 1000 ? 1000 :
			r->period_ms > 10000 ? 10000 : r->period_ms;
	r->backoff_cap_ms = r->period_ms < 1000 ? 1000 :
			    r->period_ms > BACKOFF_CAP_MS ? BACKOFF_CAP_MS :
			    r->period_ms;
	r->slow_ms = r->conf.check_ttl_ms < SLOW_RETRY_MIN_MS ?
		     SLOW_RETRY_MIN_MS :
		     r->conf.check_ttl_ms > SLOW_RETRY_MAX_MS ?
		     SLOW_RETRY_MAX_MS : r->conf.check_ttl_ms;
	r->shutdown_ms = env->shutdown_timeout_ms > 0 ?
			 env->shutdown_timeout_ms : 5000;
	r->rng = (uint32_t)getpid() ^ (uint32_t)time(NULL) ^
		 (uint32_t)(uintptr_t)r;
	if (!r->rng)
		r->rng = 1;
	*out = r;
	return 0;
fail:
	consul_destroy(r);
	return rc;
}

static void consul_apply(struct hr_registry *r, enum hr_status status,
			 const char *output)
{
	bool was_wanted = r->have_status &&
			  hr_consul_wants(&r->conf, r->status);
	bool first = !r->have_status;

	if (r->shutting_down)
		return;
	if (replace_str(&r->output, output) < 0) {
		hr_log(HR_LOG_ERROR, "consul_apply_failed", "service",
		       r->service_id, "error", strerror(ENOMEM), NULL);
		return;
	}
	r->status = status;
	r->have_status = true;
	if (hr_consul_wants(&r->conf, status)) {
		r->drop_due = false;
		ev_timer_stop(r->loop, &r->drop);
	} else if (first || was_wanted) {
		if (!r->maybe_registered || r->conf.deregister_after_ms <= 0) {
			r->drop_due = true;
		} else {
			r->drop_due = false;
			arm(r, &r->drop,
			    (double)r->conf.deregister_after_ms / 1000.0);
		}
	}
	kick(r);
}

static void consul_maintenance(struct hr_registry *r, bool enable,
			       const char *reason)
{
	if (r->shutting_down)
		return;
	if (replace_str(&r->maint_reason, reason) < 0)
		return;
	r->maint_want = enable;
	kick(r);
}

static void consul_shutdown(struct hr_registry *r, hr_registry_done_cb done,
			    void *payload)
{
	int64_t ms = r->shutdown_ms - 100;

	if (r->shutting_down)
		return;
	r->shutting_down = true;
	r->done = done;
	r->done_payload = payload;
	ev_timer_stop(r->loop, &r->refresh);
	ev_timer_stop(r->loop, &r->drop);
	ev_timer_stop(r->loop, &r->retry);
	/* Stop the updater first so no update races the deregistration. */
	if (r->busy && r->req.op != HR_CONSUL_OP_DEREGISTER)
		req_release(r);
	r->failures = 0;
	arm(r, &r->deadline, (double)(ms > 100 ? ms : 100) / 1000.0);
	kick(r);
}

static void consul_destroy(struct hr_registry *r)
{
	if (!r)
		return;
	ev_timer_stop(r->loop, &r->retry);
	ev_timer_stop(r->loop, &r->refresh);
	ev_timer_stop(r->loop, &r->drop);
	ev_timer_stop(r->loop, &r->deadline);
	ev_timer_stop(r->loop, &r->wake);
	if (r->busy)
		req_release(r);
	slist_wipe_free(r->headers);
	curl_slist_free_all(r->connect_to);
	hr_consul_conf_dispose(&r->conf);
	free(r->check_id);
	free(r->base);
	free(r->output);
	free(r->rep_output);
	free(r->maint_reason);
	free(r);
}

const struct hr_registry_ops hr_registry_consul = {
	.abi = HR_REGISTRY_ABI,
	.name = "consul",
	.validate = consul_validate,
	.create = consul_create,
	.apply = consul_apply,
	.maintenance = consul_maintenance,
	.shutdown = consul_shutdown,
	.destroy = consul_destroy,
};
