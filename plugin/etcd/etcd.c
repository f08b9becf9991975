/*
 * etcd.c - the etcd registry backend: the I/O shell around etcd_payload.c.
 *
 * One request at a time, driven by reconcile(), which compares what we
 * want (a lease; the key present with the current value, or absent) with
 * what we know etcd holds, and issues the next step:
 *
 *   reconcile()
 *     shutting down      -> [authenticate] -> revoke lease -> done()
 *     no token (auth on) -> authenticate
 *     no lease           -> grant (TTL = lease_ttl)
 *     keepalive due      -> keepalive (timer: every TTL/3)
 *     key wanted, value differs from what we wrote -> put under the lease
 *     key unwanted, we wrote it -> txn: delete if LEASE == ours
 *     otherwise idle: no write while nothing changes
 *
 *   on_done() -> hr_etcd_reply_parse() ->
 *     OK            forget failures, record the new state
 *     LEASE_LOST    forget lease and key; grant + put again at once
 *     AUTH_EXPIRED  drop the token; authenticate again at once
 *     UNAVAILABLE   next endpoint at once; after a full round of failures
 *                   exponential backoff with jitter (<= 5 s)
 *     AUTH_DENIED / FAILED  backoff
 *     -> reconcile()
 *
 * The key is wanted while the aggregate is in register_when, and for
 * deregister_after once it left (grace timer). During the grace period the
 * last registrable value stays as it is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>

#include "etcd.h"
#include "etcd_payload.h"
#include "healthreg/duration.h"
#include "healthreg/log.h"
#include "healthreg/status.h"

#define RESP_MAX (256 * 1024)
#define PASSWORD_MAX 4096

struct hr_registry {
	struct ev_loop *loop;
	struct hr_http *http;
	const struct hr_service_spec *service;
	int64_t shutdown_timeout_ms;
	struct hr_registry_stats *stats; /* the agent's, may be NULL */
	struct hr_etcd_conf conf;
	char *user;
	char *password;
	char *token;
	char *key;
	char addr[320];

	size_t ep;             /* endpoint in use */
	unsigned failures;     /* consecutive unavailable replies */
	unsigned retries;      /* consecutive other failures (backoff) */
	unsigned auth_again;   /* re-authentications without progress */
	uint64_t rng;

	int64_t lease;         /* 0: none */
	int64_t lease_ttl_s;
	char *written;         /* value stored under our lease, or NULL */
	bool have_status;
	enum hr_status status;
	enum hr_status value_status; /* last registrable status */
	bool want_key;
	bool keepalive_due;
	char reason[160];      /* why the next write happens, for logs */

	bool shutting_down;
	hr_registry_done_cb done;
	void *done_payload;

	/* the request in flight */
	CURL *easy;
	enum hr_etcd_op op;
	char *body;
	char *op_value;        /* put: the value being written */
	enum hr_status op_status; /* put: the status in that value */
	char *resp;
	size_t resp_len;
	bool resp_truncated;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];

	ev_timer keepalive_timer;
	ev_timer retry_timer;
	ev_timer grace_timer;
	ev_timer giveup_timer;
	ev_timer done_timer;
};

#define owner_of(ptr, member) \
	((struct hr_registry *)(void *)((char *)(ptr) - \
					offsetof(struct hr_registry, member)))

static void reconcile(struct hr_registry *r);

static double rnd01(struct hr_registry *r)
{
	/* xorshift64*: only for jitter. */
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return (double)((r->rng * UINT64_C(2685821657736338717)) >> 11) /
	       9007199254740992.0;
}

static const char *lease_hex(int64_t id, char *buf, size_t len)
{
	/* etcdctl prints lease IDs in hex. */
	snprintf(buf, len, "%" PRIx64, (uint64_t)id);
	return buf;
}

static const char *endpoint(const struct hr_registry *r)
{
	return r->conf.endpoints[r->ep];
}

/* ---- validate / create ----------------------------------------------- */

static void etcd_validate(const cJSON *conf, const char *path,
			  struct hr_diag *diag)
{
	struct hr_etcd_conf c;

	if (hr_etcd_conf_parse(&c, conf, path, diag) == 0)
		hr_etcd_conf_dispose(&c);
}

static int read_secret(const char *path, char **out, struct hr_err *err)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n;
	int rc = 0;

	*out = NULL;
	if (!f)
		return hr_err_set(err, -errno,
				  "registry.etcd.password_file: %s: %s", path,
				  strerror(errno));
	buf = malloc(PASSWORD_MAX + 1);
	if (!buf) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto cleanup;
	}
	n = fread(buf, 1, PASSWORD_MAX + 1, f);
	if (ferror(f) || n > PASSWORD_MAX) {
		rc = hr_err_set(err, -EINVAL,
				"registry.etcd.password_file: %s: unreadable "
				"or larger than %d bytes", path, PASSWORD_MAX);
		goto cleanup;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (n == 0 || memchr(buf, '\0', n)) {
		rc = hr_err_set(err, -EINVAL,
				"registry.etcd.password_file: %s: empty or "
				"binary", path);
		goto cleanup;
	}
	*out = buf;
	buf = NULL;
cleanup:
	if (buf) {
		memset(buf, 0, PASSWORD_MAX + 1);
		free(buf);
	}
	fclose(f);
	return rc;
}

static int load_credentials(struct hr_registry *r, struct hr_err *err)
{
	const char *env_user = getenv("ETCD_USERNAME");
	const char *env_pass = getenv("ETCD_PASSWORD");
	int rc;

	if (r->conf.username)
		r->user = strdup(r->conf.username);
	else if (env_user && *env_user)
		r->user = strdup(env_user);
	if (r->conf.password_file) {
		rc = read_secret(r->conf.password_file, &r->password, err);
		if (rc < 0)
			return rc;
		if (!r->user)
			return hr_err_set(err, -EINVAL,
					  "registry.etcd.password_file is set "
					  "but no username (username or "
					  "ETCD_USERNAME)");
	} else if (r->user && env_pass && *env_pass) {
		r->password = strdup(env_pass);
	}
	if (r->user && !r->password)
		return hr_err_set(err, -EINVAL,
				  "registry.etcd: username \"%s\" has no "
				  "password (password_file or ETCD_PASSWORD)",
				  r->user);
	return 0;
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void giveup_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void done_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void etcd_destroy(struct hr_registry *r);

static int etcd_create(struct hr_registry **out, const cJSON *conf,
		       const struct hr_registry_env *env, struct hr_err *err)
{
	struct hr_registry *r;
	char host[256] = "";
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->loop = env->loop;
	r->http = env->http;
	r->service = env->service;
	r->shutdown_timeout_ms = env->shutdown_timeout_ms;
	r->stats = env->stats;
	r->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^
		 (uint64_t)(uintptr_t)r;
	if (!r->rng)
		r->rng = 88172645463325252ull;
	ev_init(&r->keepalive_timer, keepalive_cb);
	ev_init(&r->retry_timer, retry_cb);
	ev_init(&r->grace_timer, grace_cb);
	ev_init(&r->giveup_timer, giveup_cb);
	ev_init(&r->done_timer, done_cb);

	rc = hr_etcd_conf_parse(&r->conf, conf, "registry.etcd", NULL);
	if (rc < 0) {
		hr_err_set(err, rc, "registry.etcd: invalid configuration");
		goto fail;
	}
	if (!r->service || !r->service->name) {
		rc = hr_err_set(err, -EINVAL, "etcd: the service has no name");
		goto fail;
	}
	if (!r->service->address || !*r->service->address) {
		if (gethostname(host, sizeof(host) - 1) < 0)
			host[0] = '\0';
	}
	rc = hr_etcd_addr(r->service, host, r->addr, sizeof(r->addr));
	if (rc < 0) {
		hr_err_set(err, rc,
			   "registry.etcd needs service.port (and "
			   "service.address or a host name) for the key");
		goto fail;
	}
	r->key = hr_etcd_key(r->conf.prefix, r->service->name, r->addr);
	if (!r->key) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = load_credentials(r, err);
	if (rc < 0)
		goto fail;
	hr_log(HR_LOG_INFO, "etcd_start", "key", r->key, "endpoint",
	       endpoint(r), "auth", r->user ? "on" : "off", NULL);
	*out = r;
	reconcile(r);
	return 0;
fail:
	etcd_destroy(r);
	return rc;
}

/* ---- requests -------------------------------------------------------- */

/* CURLOPT_WRITEFUNCTION */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct hr_registry *r = userdata;
	size_t n = size * nmemb, room;
	char *p;

	if (r->resp_len + n > RESP_MAX) {
		r->resp_truncated = true;
		room = RESP_MAX - r->resp_len;
	} else {
		room = n;
	}
	if (!room)
		return n;
	p = realloc(r->resp, r->resp_len + room + 1);
	if (!p)
		return 0;
	r->resp = p;
	memcpy(r->resp + r->resp_len, ptr, room);
	r->resp_len += room;
	r->resp[r->resp_len] = '\0';
	return n;
}

static void release_request(struct hr_registry *r)
{
	if (r->easy) {
		hr_http_cancel(r->http, r->easy);
		hr_http_easy_put(r->http, r->easy);
		r->easy = NULL;
	}
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	if (r->body) {
		/* The auth body holds the password. */
		memset(r->body, 0, strlen(r->body));
		free(r->body);
		r->body = NULL;
	}
	free(r->op_value);
	r->op_value = NULL;
	free(r->resp);
	r->resp = NULL;
	r->resp_len = 0;
	r->resp_truncated = false;
}

static const char *op_path(enum hr_etcd_op op)
{
	switch (op) {
	case HR_ETCD_OP_AUTH:
		return "/v3/auth/authenticate";
	case HR_ETCD_OP_GRANT:
		return "/v3/lease/grant";
	case HR_ETCD_OP_KEEPALIVE:
		return "/v3/lease/keepalive";
	case HR_ETCD_OP_PUT:
		return "/v3/kv/put";
	case HR_ETCD_OP_DELETE:
		return "/v3/kv/txn";
	case HR_ETCD_OP_REVOKE:
		return "/v3/lease/revoke";
	}
	return "/";
}

static void on_done(CURL *easy, CURLcode rc, void *payload);
static void backoff(struct hr_registry *r, unsigned attempt);

/* Start op with body (taken). value (taken) is the put's value. */
static void start_op(struct hr_registry *r, enum hr_etcd_op op, char *body,
		     char *value)
{
	char url[1024];
	int rc;

	r->body = body;
	r->op_value = value;
	r->op = op;
	if (!body || (op == HR_ETCD_OP_PUT && !value))
		goto oom;
	r->easy = hr_http_easy_get(r->http);
	if (!r->easy)
		goto oom;
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (!r->hdrs)
		goto oom;
	if (r->token && op != HR_ETCD_OP_AUTH) {
		size_t n = strlen(r->token) + 32;
		char *h = malloc(n);
		struct curl_slist *l;

		if (!h)
			goto oom;
		/* The raw token: "Bearer <token>" is rejected with 401. */
		snprintf(h, n, "Authorization: %s", r->token);
		l = curl_slist_append(r->hdrs, h);
		memset(h, 0, n);
		free(h);
		if (!l)
			goto oom;
		r->hdrs = l;
	}
	snprintf(url, sizeof(url), "%s%s", endpoint(r), op_path(op));
	r->errbuf[0] = '\0';
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS,
			 (long)r->conf.request_timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
			 (long)CURL_HTTP_VERSION_1_1);
	/* etcd is reached directly; ignore *_proxy environment variables. */
	curl_easy_setopt(r->easy, CURLOPT_PROXY, "");
	if (r->conf.ca_file)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, r->conf.ca_file);
	if (r->conf.cert_file)
		curl_easy_setopt(r->easy, CURLOPT_SSLCERT, r->conf.cert_file);
	if (r->conf.key_file)
		curl_easy_setopt(r->easy, CURLOPT_SSLKEY, r->conf.key_file);
	rc = hr_http_start(r->http, r->easy, on_done, r);
	if (rc < 0) {
		hr_log(HR_LOG_ERROR, "etcd_request_failed", "op",
		       hr_etcd_op_name(op), "error", strerror(-rc), NULL);
		release_request(r);
		backoff(r, r->retries++);
	}
	return;
oom:
	hr_log(HR_LOG_ERROR, "etcd_request_failed", "op", hr_etcd_op_name(op),
	       "error", "out of memory", NULL);
	release_request(r);
	backoff(r, r->retries++);
}

static void backoff(struct hr_registry *r, unsigned attempt)
{
	int64_t ms = hr_etcd_backoff_ms(attempt, rnd01(r));

	ev_timer_stop(r->loop, &r->retry_timer);
	ev_timer_set(&r->retry_timer, (double)ms / 1000.0, 0.);
	ev_timer_start(r->loop, &r->retry_timer);
}

static void forget_lease(struct hr_registry *r)
{
	r->lease = 0;
	free(r->written);
	r->written = NULL;
	r->keepalive_due = false;
	ev_timer_stop(r->loop, &r->keepalive_timer);
}

static void done_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = owner_of(w, done_timer);
	hr_registry_done_cb done = r->done;

	(void)loop;
	(void)revents;
	r->done = NULL;
	if (done)
		done(r->done_payload);
}

/*
 * done() is delivered from its own zero-delay timer: never from inside our
 * transfer callbacks, and always in a fresh loop iteration, so an agent
 * that polls for completion in an ev_check sees it at once.
 */
static void finish_shutdown(struct hr_registry *r)
{
	ev_timer_stop(r->loop, &r->giveup_timer);
	ev_timer_stop(r->loop, &r->retry_timer);
	if (!r->done || ev_is_active(&r->done_timer))
		return;
	ev_timer_set(&r->done_timer, 0., 0.);
	ev_timer_start(r->loop, &r->done_timer);
}

static void handle_ok(struct hr_registry *r, enum hr_etcd_op op,
		      struct hr_etcd_reply *rep, char *value)
{
	char hex[24], ttl[24];

	if (r->failures || r->retries)
		hr_log(HR_LOG_INFO, "etcd_reachable", "endpoint", endpoint(r),
		       NULL);
	r->failures = 0;
	r->retries = 0;
	if (op != HR_ETCD_OP_AUTH)
		r->auth_again = 0;
	switch (op) {
	case HR_ETCD_OP_AUTH:
		free(r->token);
		r->token = rep->token;
		rep->token = NULL;
		hr_log(HR_LOG_INFO, "etcd_authenticated", "user", r->user,
		       "endpoint", endpoint(r), NULL);
		break;
	case HR_ETCD_OP_GRANT:
		forget_lease(r);
		r->lease = rep->id;
		r->lease_ttl_s = rep->ttl;
		snprintf(ttl, sizeof(ttl), "%" PRId64 "s", rep->ttl);
		hr_log(HR_LOG_INFO, "etcd_lease_granted", "lease",
		       lease_hex(r->lease, hex, sizeof(hex)), "ttl", ttl,
		       "endpoint", endpoint(r), NULL);
		ev_timer_set(&r->keepalive_timer,
			     (double)r->lease_ttl_s / 3.0,
			     (double)r->lease_ttl_s / 3.0);
		ev_timer_start(r->loop, &r->keepalive_timer);
		break;
	case HR_ETCD_OP_KEEPALIVE:
		r->keepalive_due = false;
		if (rep->ttl != r->lease_ttl_s && rep->ttl > 0) {
			r->lease_ttl_s = rep->ttl;
			ev_timer_stop(r->loop, &r->keepalive_timer);
			ev_timer_set(&r->keepalive_timer,
				     (double)r->lease_ttl_s / 3.0,
				     (double)r->lease_ttl_s / 3.0);
			ev_timer_start(r->loop, &r->keepalive_timer);
		}
		break;
	case HR_ETCD_OP_PUT:
		hr_log(HR_LOG_INFO, "etcd_registered", "key", r->key, "status",
		       hr_status_name(r->op_status), "lease", lease_hex(r->lease, hex, sizeof(hex)),
		       "reason", r->reason, "endpoint", endpoint(r), NULL);
		free(r->written);
		r->written = value;
		value = NULL;
		break;
	case HR_ETCD_OP_DELETE:
		hr_log(HR_LOG_INFO, "etcd_deregistered", "key", r->key,
		       "reason", r->reason, "held",
		       rep->succeeded ? "true" : "false (gone or not ours)",
		       "endpoint", endpoint(r), NULL);
		free(r->written);
		r->written = NULL;
		break;
	case HR_ETCD_OP_REVOKE:
		hr_log(HR_LOG_INFO, "etcd_lease_revoked", "lease",
		       lease_hex(r->lease, hex, sizeof(hex)), "key", r->key,
		       "endpoint", endpoint(r), NULL);
		forget_lease(r);
		break;
	}
	free(value);
}

static void on_done(CURL *easy, CURLcode rc, void *payload)
{
	struct hr_registry *r = payload;
	struct hr_etcd_reply rep;
	enum hr_etcd_op op = r->op;
	long code = 0;
	char *value, hex[24], http[16];

	if (rc == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	hr_etcd_reply_parse(op, code, r->resp, r->resp_len, &rep);
	if (rc != CURLE_OK)
		snprintf(rep.message, sizeof(rep.message), "%.150s",
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
	/* Keep the put's value; drop the rest of the request. */
	value = r->op_value;
	r->op_value = NULL;
	hr_http_easy_put(r->http, r->easy);
	r->easy = NULL;
	release_request(r);
	snprintf(http, sizeof(http), "%ld", code);
	hr_registry_stats_record(r->stats, rep.result == HR_ETCD_OK);

	switch (rep.result) {
	case HR_ETCD_OK:
		handle_ok(r, op, &rep, value);
		value = NULL;
		if (r->shutting_down && op == HR_ETCD_OP_REVOKE) {
			hr_etcd_reply_dispose(&rep);
			finish_shutdown(r);
			return;
		}
		break;
	case HR_ETCD_LEASE_LOST:
		hr_log(HR_LOG_WARN, "etcd_lease_lost", "lease",
		       lease_hex(r->lease, hex, sizeof(hex)), "op",
		       hr_etcd_op_name(op), "reason", rep.message, "endpoint",
		       endpoint(r), NULL);
		forget_lease(r);
		r->retries = 0;
		r->failures = 0;
		snprintf(r->reason, sizeof(r->reason), "lease lost: %.140s",
			 rep.message);
		if (r->shutting_down) {
			/* Nothing left to revoke: the key is gone. */
			free(value);
			hr_etcd_reply_dispose(&rep);
			finish_shutdown(r);
			return;
		}
		break;
	case HR_ETCD_AUTH_EXPIRED:
		free(r->token);
		r->token = NULL;
		if (!r->user) {
			hr_log(HR_LOG_ERROR, "etcd_auth_required", "op",
			       hr_etcd_op_name(op), "reason", rep.message,
			       "endpoint", endpoint(r), NULL);
			backoff(r, r->retries++);
		} else {
			hr_log(HR_LOG_INFO, "etcd_token_invalid", "op",
			       hr_etcd_op_name(op), "reason", rep.message,
			       "endpoint", endpoint(r), NULL);
			if (r->auth_again++ > 0)
				backoff(r, r->retries++);
		}
		break;
	case HR_ETCD_AUTH_DENIED:
		if (op == HR_ETCD_OP_AUTH) {
			free(r->token);
			r->token = NULL;
		}
		hr_log(HR_LOG_ERROR, "etcd_denied", "op", hr_etcd_op_name(op),
		       "user", r->user, "reason", rep.message, "http", http,
		       "endpoint", endpoint(r), NULL);
		backoff(r, r->retries++);
		break;
	case HR_ETCD_UNAVAILABLE:
		hr_log(HR_LOG_WARN, "etcd_unavailable", "op",
		       hr_etcd_op_name(op), "reason", rep.message, "http", http,
		       "endpoint", endpoint(r), NULL);
		r->failures++;
		r->ep = (r->ep + 1) % r->conf.n_endpoints;
		/* A full round of endpoints failed: wait before the next. */
		if (r->failures % r->conf.n_endpoints == 0)
			backoff(r, r->failures / (unsigned)r->conf.n_endpoints -
					   1);
		break;
	case HR_ETCD_FAILED:
		hr_log(HR_LOG_ERROR, "etcd_request_failed", "op",
		       hr_etcd_op_name(op), "reason", rep.message, "http", http,
		       "endpoint", endpoint(r), NULL);
		backoff(r, r->retries++);
		break;
	}
	free(value);
	hr_etcd_reply_dispose(&rep);
	reconcile(r);
}

/* ---- the state machine ----------------------------------------------- */

static void reconcile(struct hr_registry *r)
{
	char *value;

	if (r->easy || ev_is_active(&r->retry_timer))
		return;
	if (r->shutting_down) {
		if (!r->done || ev_is_active(&r->done_timer))
			return;
		if (!r->lease) {
			finish_shutdown(r);
			return;
		}
		if (r->user && !r->token)
			start_op(r, HR_ETCD_OP_AUTH,
				 hr_etcd_body_auth(r->user, r->password), NULL);
		else
			start_op(r, HR_ETCD_OP_REVOKE,
				 hr_etcd_body_lease(r->lease), NULL);
		return;
	}
	if (r->user && !r->token) {
		start_op(r, HR_ETCD_OP_AUTH,
			 hr_etcd_body_auth(r->user, r->password), NULL);
		return;
	}
	if (!r->lease) {
		start_op(r, HR_ETCD_OP_GRANT,
			 hr_etcd_body_grant(r->conf.lease_ttl_ms / 1000), NULL);
		return;
	}
	if (r->keepalive_due) {
		start_op(r, HR_ETCD_OP_KEEPALIVE, hr_etcd_body_lease(r->lease),
			 NULL);
		return;
	}
	if (!r->have_status)
		return;
	if (r->want_key) {
		value = hr_etcd_value(r->service, r->addr, r->value_status);
		if (!value) {
			backoff(r, r->retries++);
			return;
		}
		if (r->written && strcmp(r->written, value) == 0) {
			free(value);
			return;
		}
		r->op_status = r->value_status;
		start_op(r, HR_ETCD_OP_PUT,
			 hr_etcd_body_put(r->key, value, r->lease), value);
		return;
	}
	if (r->written)
		start_op(r, HR_ETCD_OP_DELETE,
			 hr_etcd_body_delete_if_lease(r->key, r->lease), NULL);
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = owner_of(w, keepalive_timer);

	(void)loop;
	(void)revents;
	r->keepalive_due = true;
	reconcile(r);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = owner_of(w, retry_timer);

	(void)loop;
	(void)revents;
	reconcile(r);
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = owner_of(w, grace_timer);
	char d[32];

	(void)loop;
	(void)revents;
	hr_duration_format(r->conf.deregister_after_ms, d, sizeof(d));
	snprintf(r->reason, sizeof(r->reason), "%s for %s",
		 hr_status_name(r->status), d);
	r->want_key = false;
	reconcile(r);
}

static void giveup_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_registry *r = owner_of(w, giveup_timer);
	char ttl[24];

	(void)loop;
	(void)revents;
	snprintf(ttl, sizeof(ttl), "%" PRId64 "s", r->lease_ttl_s);
	hr_log(HR_LOG_WARN, "etcd_revoke_abandoned", "key", r->key,
	       "expires_within", ttl, NULL);
	release_request(r);
	finish_shutdown(r);
}

/* ---- the agent's calls ----------------------------------------------- */

static void etcd_apply(struct hr_registry *r, enum hr_status status,
		       const char *output)
{
	bool first = !r->have_status;
	enum hr_status old = r->status;

	(void)output; /* the summary is not part of the value: no rewrites */
	if (r->shutting_down)
		return;
	r->have_status = true;
	r->status = status;
	if (hr_etcd_registrable(&r->conf, status)) {
		ev_timer_stop(r->loop, &r->grace_timer);
		if (first || !r->want_key)
			snprintf(r->reason, sizeof(r->reason), "status %s",
				 hr_status_name(status));
		else if (status != r->value_status)
			snprintf(r->reason, sizeof(r->reason),
				 "status %s -> %s",
				 hr_status_name(r->value_status),
				 hr_status_name(status));
		r->value_status = status;
		r->want_key = true;
	} else if (r->want_key) {
		if (r->conf.deregister_after_ms > 0) {
			if (!ev_is_active(&r->grace_timer)) {
				ev_timer_set(&r->grace_timer,
					     (double)r->conf.deregister_after_ms /
						     1000.0, 0.);
				ev_timer_start(r->loop, &r->grace_timer);
			}
		} else {
			snprintf(r->reason, sizeof(r->reason), "status %s",
				 hr_status_name(status));
			r->want_key = false;
		}
	}
	if (!first && old != status)
		hr_log(HR_LOG_DEBUG, "etcd_status", "status",
		       hr_status_name(status), NULL);
	reconcile(r);
}

static void etcd_shutdown(struct hr_registry *r, hr_registry_done_cb done,
			  void *payload)
{
	r->shutting_down = true;
	r->done = done;
	r->done_payload = payload;
	ev_timer_stop(r->loop, &r->keepalive_timer);
	ev_timer_stop(r->loop, &r->grace_timer);
	ev_timer_stop(r->loop, &r->retry_timer);
	/* Whatever is in flight is overtaken by the revoke. */
	release_request(r);
	r->failures = 0;
	r->retries = 0;
	if (r->shutdown_timeout_ms > 0) {
		ev_timer_set(&r->giveup_timer,
			     (double)r->shutdown_timeout_ms / 1000.0, 0.);
		ev_timer_start(r->loop, &r->giveup_timer);
	}
	hr_log(HR_LOG_INFO, "etcd_shutdown", "key", r->key, NULL);
	reconcile(r);
}

static void etcd_destroy(struct hr_registry *r)
{
	if (!r)
		return;
	release_request(r);
	ev_timer_stop(r->loop, &r->keepalive_timer);
	ev_timer_stop(r->loop, &r->retry_timer);
	ev_timer_stop(r->loop, &r->grace_timer);
	ev_timer_stop(r->loop, &r->giveup_timer);
	ev_timer_stop(r->loop, &r->done_timer);
	if (r->token) {
		memset(r->token, 0, strlen(r->token));
		free(r->token);
	}
	if (r->password) {
		memset(r->password, 0, strlen(r->password));
		free(r->password);
	}
	free(r->user);
	free(r->key);
	free(r->written);
	hr_etcd_conf_dispose(&r->conf);
	free(r);
}

const struct hr_registry_ops hr_registry_etcd = {
	.abi = HR_REGISTRY_ABI,
	.name = "etcd",
	.validate = etcd_validate,
	.create = etcd_create,
	.apply = etcd_apply,
	.maintenance = NULL,
	.shutdown = etcd_shutdown,
	.destroy = etcd_destroy,
};
