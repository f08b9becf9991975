/*
 * regcore.c - the shared layer under every registry backend: one request
 * at a time on the shared multi handle, capture, stats, backoff, the
 * grace period, the shutdown deadline and done() on a fresh iteration.
 * See healthreg/regcore.h for the contracts and the lifetime rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "healthreg/confget.h"
#include "healthreg/duration.h"
#include "healthreg/http.h"
#include "healthreg/log.h"
#include "healthreg/regcore.h"
#include "internal.h"
#include "regcore_tls.h"

#ifndef HR_VERSION
#define HR_VERSION "0"
#endif

#define HEADER_VALUE_MAX 8192

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void done_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

int hr_regcore_init(struct hr_regcore *c, const struct hr_regcore_ops *ops,
		    const struct hr_registry_env *env, size_t resp_max)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->loop = env->loop;
	c->http = env->http;
	c->stats = env->stats ? env->stats : &c->own_stats;
	c->journal = env->journal;
	c->remind_every_s = HR_REGCORE_REMIND_S;
	hr_rng_seed(&c->rng, 0);
	hr_capture_init(&c->resp, resp_max);
	ev_init(&c->retry, retry_cb);
	ev_init(&c->grace, grace_cb);
	ev_init(&c->deadline, deadline_cb);
	ev_init(&c->done_timer, done_timer_cb);
	if (env->service && hr_service_spec_copy(&c->service, env->service))
		return -ENOMEM;
	return 0;
}

static void release(struct hr_regcore *c)
{
	if (c->easy) {
		hr_http_cancel(c->http, c->easy);
		hr_http_easy_put(c->http, c->easy);
		c->easy = NULL;
	}
	if (c->body && c->secret_body)
		hr_wipe(c->body, strlen(c->body));
	free(c->body);
	c->body = NULL;
	c->secret_body = false;
	/* Answers may carry tokens (etcd's authenticate). */
	if (c->resp.data)
		hr_wipe(c->resp.data, c->resp.len);
	hr_capture_reset(&c->resp);
}

void hr_regcore_dispose(struct hr_regcore *c)
{
	if (!c->ops)
		return;
	release(c);
	hr_capture_dispose(&c->resp);
	ev_timer_stop(c->loop, &c->retry);
	ev_timer_stop(c->loop, &c->grace);
	ev_timer_stop(c->loop, &c->deadline);
	ev_timer_stop(c->loop, &c->done_timer);
	hr_service_spec_dispose(&c->service);
	hr__reg_tls_dispose(&c->tls);
	c->done = NULL;
}

/* ---- state ------------------------------------------------------------- */

void hr_regcore_why(struct hr_regcore *c, const char *text)
{
	snprintf(c->why, sizeof(c->why), "%s", text ? text : "");
}

void hr_regcore_state(struct hr_regcore *c, enum hr_registry_state s)
{
	c->stats->state = s;
}

/* Why r failed when the backend did not say: libcurl's words, or the
 * HTTP status and the first line of the answer (printable ASCII). */
static void generic_why(const struct hr_reg_reply *r, char *buf, size_t len)
{
	size_t o, i;

	if (r->rc != CURLE_OK) {
		snprintf(buf, len, "%s%s%s", curl_easy_strerror(r->rc),
			 r->errbuf[0] ? ": " : "", r->errbuf);
		return;
	}
	o = (size_t)snprintf(buf, len, "HTTP %ld%s", r->status,
			     r->len ? ": " : "");
	for (i = 0; i < r->len && o + 1 < len && o < 200; i++) {
		unsigned char ch = (unsigned char)r->body[i];

		if (ch == '\n' || ch == '\r')
			break;
		buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	buf[o < len ? o : len - 1] = '\0';
}

static void iso_time(double t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* After each reply: the registry's up/down state, and a log line only
 * when it changes (or as the reminder while it is down). */
static void note_outcome(struct hr_regcore *c, const struct hr_reg_reply *r,
			 bool ok)
{
	struct hr_registry_stats *s = c->stats;
	const char *name = s->name ? s->name : "registry";
	char n[24], t[32], since[40], code[24];
	double now = ev_now(c->loop), wall = hr_wall_now();

	if (ok) {
		if (s->failures) {
			snprintf(n, sizeof(n), "%" PRIu32, s->failures);
			snprintf(t, sizeof(t), "%.1f",
				 wall > s->failing_since
					 ? wall - s->failing_since : 0.);
			hr_log(HR_LOG_INFO, "registry_reachable", "backend",
			       name, HR_LOG_NUM("failed_attempts"), n,
			       HR_LOG_NUM("down_seconds"), t, NULL);
		}
		s->failures = 0;
		s->unreachable = false;
		s->failing_since = 0;
		return;
	}
	if (c->why[0])
		snprintf(s->last_error, sizeof(s->last_error), "%s", c->why);
	else
		generic_why(r, s->last_error, sizeof(s->last_error));
	s->last_error_at = wall;
	if (s->failures < UINT32_MAX)
		s->failures++;
	snprintf(n, sizeof(n), "%" PRIu32, s->failures);
	snprintf(code, sizeof(code), "%ld", r->status);
	/* The word follows the last failure; the lines the first. A TLS
	 * failure (certificate, verification) is not an outage but a
	 * setting to fix: failing, as a refusal is. */
	s->unreachable = (r->rc != CURLE_OK &&
			  !hr_reg_tls_failed(r->rc, r->errbuf)) ||
			 (r->rc == CURLE_OK &&
			  (r->status >= 500 || r->status == 0));
	if (s->failures == 1) {
		s->failing_since = wall;
		c->remind_at = now + c->remind_every_s;
		hr_log(s->unreachable ? HR_LOG_WARN : HR_LOG_ERROR,
		       s->unreachable ? "registry_unreachable"
				      : "registry_failing",
		       "backend", name, "registration",
		       hr_registry_state_name(s->state), "error",
		       s->last_error,
		       r->status ? HR_LOG_NUM("http") : NULL, code, NULL);
		return;
	}
	if (now < c->remind_at)
		return;
	c->remind_at = now + c->remind_every_s;
	iso_time(s->failing_since, since, sizeof(since));
	hr_log(s->unreachable ? HR_LOG_WARN : HR_LOG_ERROR,
	       s->unreachable ? "registry_still_unreachable"
			      : "registry_still_failing",
	       "backend", name, "since", since, HR_LOG_NUM("failed_attempts"),
	       n, "registration", hr_registry_state_name(s->state), "error",
	       s->last_error, NULL);
}

void hr_regcore_note(struct hr_regcore *c, const struct hr_reg_reply *r,
		     bool ok, const char *why)
{
	char saved[sizeof(c->why)];

	memcpy(saved, c->why, sizeof(saved));
	snprintf(c->why, sizeof(c->why), "%s", why ? why : "");
	hr_registry_stats_record(c->stats, ok);
	note_outcome(c, r, ok);
	memcpy(c->why, saved, sizeof(saved));
}

/* ---- requests ---------------------------------------------------------- */

static void on_transfer(CURL *easy, CURLcode rc, void *payload)
{
	struct hr_regcore *c = payload;
	struct hr_reg_reply r;
	bool ok;

	memset(&r, 0, sizeof(r));
	r.rc = rc;
	if (rc == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
	r.body = hr_capture_str(&c->resp);
	r.len = c->resp.len;
	r.truncated = c->resp.total > c->resp.len || c->resp.oom;
	r.errbuf = c->errbuf;
	/* The handle is ours again (see http.h): back to the pool. */
	hr_http_easy_put(c->http, easy);
	c->easy = NULL;
	c->in_reply = true;
	c->why[0] = '\0';
	ok = c->ops->reply(c, &r);
	c->in_reply = false;
	hr_registry_stats_record(c->stats, ok);
	if (!c->quiet)
		note_outcome(c, &r, ok);
	release(c);
	c->ops->kick(c);
}

static void setup_easy(struct hr_regcore *c, CURL *e,
		       const struct hr_reg_req *q)
{
	curl_easy_setopt(e, CURLOPT_URL, q->url);
	if (!strcmp(q->method, "GET")) {
		/* a read: no body (Consul's KV and health reads) */
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(q->method, "POST"))
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS,
				 c->body ? c->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
				 (long)(c->body ? strlen(c->body) : 0));
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "healthreg/" HR_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hr_capture_curl_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->resp);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	if (q->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, q->timeout_ms);
	if (q->connect_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
				 q->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Registries are reached directly: never through *_proxy. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	if (q->http11)
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
				 (long)CURL_HTTP_VERSION_1_1);
	hr__reg_tls_apply(&c->tls, e);
	if (q->connect_to)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, q->connect_to);
	if (q->unix_socket)
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, q->unix_socket);
}

/* The lane of q: the Unix socket, or the URL up to its path. */
static void lane_key(const struct hr_reg_req *q, char *buf, size_t len)
{
	const char *u = q->url, *p = strstr(u, "://");
	size_t n;

	if (q->unix_socket) {
		snprintf(buf, len, "unix:%s", q->unix_socket);
		return;
	}
	p = p ? strchr(p + 3, '/') : NULL;
	n = p ? (size_t)(p - u) : strlen(u);
	snprintf(buf, len, "%.*s", (int)n, u);
}

int hr_regcore_send(struct hr_regcore *c, const struct hr_reg_req *q)
{
	char key[512];
	int rc;

	if (c->easy || c->in_reply)
		return -EBUSY;
	if (c->finished)
		return -ECANCELED;
	if (!q->url || !q->method)
		return -EINVAL;
	release(c);
	c->errbuf[0] = '\0';
	c->secret_body = q->secret_body;
	if (q->body && !(c->body = strdup(q->body)))
		return -ENOMEM;
	c->easy = hr_http_easy_get(c->http);
	if (!c->easy) {
		release(c);
		return -ENOMEM;
	}
	setup_easy(c, c->easy, q);
	lane_key(q, key, sizeof(key));
	rc = hr_http_start_lane(c->http, c->easy, on_transfer, c, key,
				HR_REGCORE_LANE_MAX, q->urgent);
	if (rc < 0) {
		hr_http_easy_put(c->http, c->easy);
		c->easy = NULL;
		release(c);
	}
	return rc;
}

void hr_regcore_cancel(struct hr_regcore *c)
{
	/* From reply(): nothing is in flight, and the answer being read is
	 * released by on_transfer() once reply() returns. */
	if (!c->in_reply)
		release(c);
}

bool hr_regcore_busy(const struct hr_regcore *c)
{
	return c->easy != NULL;
}

bool hr_regcore_idle(const struct hr_regcore *c)
{
	return !c->easy && !c->in_reply && !ev_is_active(&c->retry) &&
	       !c->finished;
}

/* ---- retries ------------------------------------------------------------ */

int64_t hr_reg_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms,
			  double rnd)
{
	int64_t d = base_ms < 1 ? 1 : base_ms;
	unsigned i;

	for (i = 1; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms < 1 ? 1 : cap_ms;
	if (d < 2)
		return d;
	if (!(rnd >= 0))
		rnd = 0;
	if (rnd >= 1)
		rnd = 0.999;
	return d / 2 + (int64_t)((double)(d / 2) * rnd);
}

void hr_regcore_retry_in(struct hr_regcore *c, int64_t ms)
{
	ev_timer_stop(c->loop, &c->retry);
	ev_timer_set(&c->retry, ms > 0 ? (double)ms / 1000.0 : 0., 0.);
	ev_timer_start(c->loop, &c->retry);
}

void hr_regcore_backoff(struct hr_regcore *c, unsigned attempt,
			int64_t base_ms, int64_t cap_ms)
{
	hr_regcore_retry_in(c, hr_reg_backoff_ms(attempt, base_ms, cap_ms,
						 hr_rng_unit(&c->rng)));
}

void hr_regcore_retry_stop(struct hr_regcore *c)
{
	ev_timer_stop(c->loop, &c->retry);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_regcore *c = container_of(w, struct hr_regcore, retry);

	(void)loop;
	(void)revents;
	c->ops->kick(c);
}

/* ---- register_when / deregister_after ----------------------------------- */

void hr_regcore_grace_setup(struct hr_regcore *c, unsigned register_when,
			    int64_t deregister_after_ms)
{
	c->register_when = register_when;
	c->deregister_after_ms = deregister_after_ms;
}

/* ---- decisions ---------------------------------------------------------- */

void hr_regcore_decide(struct hr_regcore *c, enum hr_decision d,
		       const char *why)
{
	struct hr_journal_entry e;
	const char *svc = c->service.id ? c->service.id : c->service.name;

	memset(&e, 0, sizeof(e));
	e.decision = d;
	hr_journal_excerpt(e.service, sizeof(e.service), svc);
	snprintf(e.backend, sizeof(e.backend), "%s",
		 c->stats->name ? c->stats->name : "registry");
	e.dry_run = c->dry_run;
	e.have_status = c->have_told;
	e.status = c->told;
	hr_journal_excerpt(e.why, sizeof(e.why), why);
	hr_journal_record(c->journal, &e);
}

/* What hr_regcore_status() decided, in the journal. */
static void decide_status(struct hr_regcore *c, enum hr_status s, bool first,
			  bool was_wanted, bool was_grace)
{
	const char *st = hr_status_name(s);
	char why[200], d[32];

	hr_duration_format(c->deregister_after_ms, d, sizeof(d));
	if (!was_wanted && c->wanted) {
		snprintf(why, sizeof(why), "status %s is in register_when", st);
		hr_regcore_decide(c, HR_DECISION_REGISTER, why);
	} else if (was_grace && c->wanted && !ev_is_active(&c->grace)) {
		snprintf(why, sizeof(why),
			 "status %s again within deregister_after %s: stays "
			 "registered", st, d);
		hr_regcore_decide(c, HR_DECISION_REGISTER, why);
	} else if ((was_wanted || first) && !c->wanted) {
		snprintf(why, sizeof(why), "status %s is not in register_when%s",
			 st, first ? " (nothing registered)" : "");
		hr_regcore_decide(c, HR_DECISION_DEREGISTER, why);
	} else if (!was_grace && ev_is_active(&c->grace)) {
		snprintf(why, sizeof(why),
			 "status %s is not in register_when: deregistering in "
			 "%s (deregister_after) unless it recovers", st, d);
		hr_regcore_decide(c, HR_DECISION_DEREGISTER_PENDING, why);
	}
}

bool hr_regcore_status(struct hr_regcore *c, enum hr_status s, bool now)
{
	bool in = (unsigned)s < 32 && (c->register_when & (1u << s));
	bool first = !c->have_status;
	bool was_wanted = hr_regcore_wanted(c);
	bool was_grace = ev_is_active(&c->grace);

	c->have_status = true;
	c->have_told = true;
	c->told = s;
	if (in) {
		ev_timer_stop(c->loop, &c->grace);
		c->wanted = true;
	} else if (first || (c->wanted && !ev_is_active(&c->grace))) {
		if (now || first || c->deregister_after_ms <= 0) {
			c->wanted = false;
		} else {
			ev_timer_set(&c->grace,
				     (double)c->deregister_after_ms / 1000.0,
				     0.);
			ev_timer_start(c->loop, &c->grace);
		}
	}
	/* Nothing written, nothing to write: the instance is not in the
	 * registry (a critical start), rather than still to come. */
	if (!c->wanted && c->stats->state == HR_REGISTRY_PENDING)
		c->stats->state = HR_REGISTRY_DEREGISTERED;
	decide_status(c, s, first, was_wanted, was_grace);
	return in;
}

bool hr_regcore_wanted(const struct hr_regcore *c)
{
	return c->have_status && c->wanted;
}

bool hr_regcore_in_grace(const struct hr_regcore *c)
{
	return ev_is_active(&c->grace);
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_regcore *c = container_of(w, struct hr_regcore, grace);
	char why[200], d[32];

	(void)loop;
	(void)revents;
	c->wanted = false;
	hr_duration_format(c->deregister_after_ms, d, sizeof(d));
	snprintf(why, sizeof(why),
		 "status %s for deregister_after %s",
		 hr_status_name(c->told), d);
	hr_regcore_decide(c, HR_DECISION_DEREGISTER, why);
	if (c->ops->grace_over)
		c->ops->grace_over(c);
	c->ops->kick(c);
}

/* ---- shutdown ----------------------------------------------------------- */

int hr_regcore_shutdown(struct hr_regcore *c, hr_registry_done_cb done,
			void *payload, int64_t deadline_ms)
{
	if (c->shutting_down)
		return -EALREADY;
	c->shutting_down = true;
	c->done = done;
	c->done_payload = payload;
	ev_timer_stop(c->loop, &c->retry);
	ev_timer_stop(c->loop, &c->grace);
	if (deadline_ms > 0) {
		ev_timer_set(&c->deadline, (double)deadline_ms / 1000.0, 0.);
		ev_timer_start(c->loop, &c->deadline);
	}
	hr_regcore_decide(c, HR_DECISION_SHUTDOWN,
			  "shutting down: deregistering");
	return 0;
}

void hr_regcore_finish(struct hr_regcore *c)
{
	if (c->finished)
		return;
	c->finished = true;
	hr_regcore_cancel(c);
	ev_timer_stop(c->loop, &c->retry);
	ev_timer_stop(c->loop, &c->grace);
	ev_timer_stop(c->loop, &c->deadline);
	/* A zero timer fires on the next iteration, never in this one: done()
	 * never runs inside a call or a transfer callback of ours, and an
	 * agent that polls from an ev_check wakes for it. */
	ev_timer_set(&c->done_timer, 0., 0.);
	ev_timer_start(c->loop, &c->done_timer);
}

bool hr_regcore_shutting_down(const struct hr_regcore *c)
{
	return c->shutting_down;
}

bool hr_regcore_finished(const struct hr_regcore *c)
{
	return c->finished;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_regcore *c = container_of(w, struct hr_regcore, deadline);

	(void)loop;
	(void)revents;
	if (c->ops->deadline)
		c->ops->deadline(c);
	hr_regcore_finish(c);
}

static void done_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_regcore *c = container_of(w, struct hr_regcore, done_timer);
	hr_registry_done_cb done = c->done;
	void *payload = c->done_payload;

	(void)loop;
	(void)revents;
	c->done = NULL;
	/* Last: done() may destroy the backend and so c. */
	if (done)
		done(payload);
}

/* ---- config schema ------------------------------------------------------ */

#define COMMON(m) offsetof(struct hr_reg_conf, m)
static const struct hr_reg_field common_fields[] = {
	{ "ca_file", HR_REG_NONEMPTY, COMMON(ca_file) },
	{ "cert_file", HR_REG_NONEMPTY, COMMON(cert_file) },
	{ "key_file", HR_REG_NONEMPTY, COMMON(key_file) },
	{ "ca_path", HR_REG_NONEMPTY, COMMON(ca_path) },
	{ "tls_skip_verify", HR_REG_BOOL, COMMON(tls_skip_verify) },
	{ "register_when", HR_REG_STATUSES, COMMON(register_when) },
	{ "deregister_after", HR_REG_DURATION, COMMON(deregister_after_ms) },
	{ "dry_run", HR_REG_BOOL, COMMON(dry_run) },
};
#undef COMMON

void hr_reg_conf_init(struct hr_reg_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->register_when = 1u << HR_STATUS_PASSING | 1u << HR_STATUS_WARNING;
}

void hr_reg_conf_dispose(struct hr_reg_conf *c)
{
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca_path);
	memset(c, 0, sizeof(*c));
}

int hr_reg_conf_check(const struct hr_reg_conf *c, const char *path,
		      struct hr_diag *d)
{
	char p[HR_CONF_PATH_MAX];

	if (c->tls_skip_verify)
		hr_diag_add(d, HR_DIAG_WARNING,
			    hr_conf_path(p, path, "tls_skip_verify"),
			    "true: the registry's certificate and host name "
			    "are not verified; anyone on the network path can "
			    "impersonate it");
	if (c->ca_path && c->ca_file)
		hr_diag_add(d, HR_DIAG_WARNING,
			    hr_conf_path(p, path, "ca_path"),
			    "is ignored: ca_file is set (as Consul's client "
			    "does)");
	if (!c->key_file || c->cert_file)
		return 0;
	hr_diag_add(d, HR_DIAG_ERROR, hr_conf_path(p, path, "key_file"),
		    "needs cert_file");
	return -EINVAL;
}

static const struct hr_reg_field *find_field(const struct hr_reg_field *f,
					     size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(f[i].key, key))
			return &f[i];
	return NULL;
}

int hr_reg_conf_member(const struct hr_reg_field *fields, size_t n,
		       void *conf, struct hr_reg_conf *common,
		       const cJSON *v, const char *path, struct hr_diag *d)
{
	const struct hr_reg_field *f = find_field(fields, n, v->string);
	char p[HR_CONF_PATH_MAX];
	char *at = conf;

	hr_conf_path(p, path, v->string);
	if (!f) {
		f = find_field(common_fields, HR_ARRAY_SIZE(common_fields),
			       v->string);
		at = (char *)common;
	}
	if (!f) {
		hr_diag_add(d, HR_DIAG_ERROR, p, "unknown key");
		return -EINVAL;
	}
	at += f->off;
	switch (f->kind) {
	case HR_REG_STRING:
		return hr_conf_string(v, p, d, (char **)(void *)at);
	case HR_REG_NONEMPTY:
		return hr_conf_nonempty_string(v, p, d, (char **)(void *)at);
	case HR_REG_DURATION:
		return hr_conf_duration(v, p, d, (int64_t *)(void *)at);
	case HR_REG_STATUSES:
		return hr_conf_statuses(v, p, d, (unsigned *)(void *)at);
	case HR_REG_BOOL:
		return hr_conf_bool(v, p, d, (bool *)(void *)at);
	}
	return -EINVAL;
}

int hr__reg_conf_common(const cJSON *conf, struct hr_reg_conf *common)
{
	struct hr_diag d;
	const cJSON *v;
	int rc = 0;

	hr_diag_init(&d);
	cJSON_ArrayForEach(v, conf) {
		if (v->string &&
		    find_field(common_fields, HR_ARRAY_SIZE(common_fields),
			       v->string) &&
		    hr_reg_conf_member(NULL, 0, NULL, common, v, "registry",
				       &d) < 0)
			rc = -EINVAL;
	}
	hr_diag_dispose(&d);
	return rc;
}

bool hr_reg_conf_dry_run(const cJSON *conf)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(conf, "dry_run"));
}

/* ---- headers with secrets ----------------------------------------------- */

int hr_reg_header_add(struct curl_slist **list, const char *name,
		      const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	struct curl_slist *l;
	char *line;

	if (strlen(value) > HEADER_VALUE_MAX || strpbrk(value, "\r\n"))
		return -EINVAL;
	line = malloc(n);
	if (!line)
		return -ENOMEM;
	memcpy(line, name, strlen(name));
	memcpy(line + strlen(name), ": ", 2);
	memcpy(line + strlen(name) + 2, value, strlen(value) + 1);
	l = curl_slist_append(*list, line);
	hr_wipe(line, n);
	free(line);
	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

void hr_reg_headers_free(struct curl_slist *list)
{
	struct curl_slist *i;

	for (i = list; i; i = i->next)
		hr_wipe(i->data, strlen(i->data));
	curl_slist_free_all(list);
}
