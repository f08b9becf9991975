/*
 * check_grpc.c - the grpc check kind (Consul's "grpc"): the standard
 * grpc.health.v1.Health/Check over HTTP/2, one libcurl transfer per run on
 * the shared multi handle (lib/http.c), a fresh connection each time.
 *
 *   start(): split "host:port[/service]" (grpc_wire.c), easy handle from
 *     the pool, the request frame as the POST body, HTTP/2 (h2c with prior
 *     knowledge, or ALPN h2 with grpc_use_tls), hr_http_start, the
 *     backstop timer
 *   -> header_cb: head and trailer lines (libcurl hands HTTP/2 trailers to
 *      the header callback too) into struct hr__grpc_meta
 *   -> write_cb: the body into the frame reader; a bad stream (compressed,
 *      too large, malformed, a second message) aborts the transfer
 *   done_cb: a response -> hr__grpc_verdict(); a transport failure ->
 *     UNAVAILABLE, or DEADLINE_EXCEEDED for a timeout, in libcurl's words
 *   deadline_cb: the backstop when libcurl missed CURLOPT_TIMEOUT_MS
 *
 * One deadline per run: the check's timeout is libcurl's CURLOPT_TIMEOUT_MS
 * (name resolution, on libcurl's resolver thread, included) and goes to
 * the server as grpc-timeout, so a server that honours deadlines gives up
 * at the same instant (its DEADLINE_EXCEEDED may arrive first).
 *
 * Ownership: struct grpc_run is one run's state, in the check's run slot
 * from start() until grpc_release(), which every end calls before
 * hr__check_finish(): the output is built on the stack first, so nothing
 * of the run is touched after the check may be gone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <ev.h>

#include "check.h"
#include "grpc_wire.h"
#include "healthreg/http.h"
#include "internal.h"

#define HEALTH_PATH "/grpc.health.v1.Health/Check"
/* How long after the deadline the backstop ends a run libcurl has not. */
#define DEADLINE_GRACE 0.1
#define OUT_MAX 2048

struct grpc_run {
	struct hr_check *c;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *connect_to;
	uint8_t *request;
	char *url;
	ev_timer deadline;
	double started;          /* ev_now() at start */
	struct hr__grpc_meta meta;
	struct hr__grpc_reader reader;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct grpc_run *r = userp;
	size_t n = size * nmemb;

	hr__grpc_meta_line(&r->meta, ptr, n);
	return n;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct grpc_run *r = userp;
	size_t n = size * nmemb;

	return hr__grpc_reader_feed(&r->reader, ptr, n) ? n : 0;
}

static void grpc_release(struct grpc_run *r)
{
	struct hr_check *c = r->c;
	struct hr_http *h = hr__check_http_glue(c);

	ev_timer_stop(hr__check_loop(c), &r->deadline);
	*hr__check_run_slot(c) = NULL;
	if (r->easy) {
		hr_http_cancel(h, r->easy); /* idempotent: done or not */
		hr_http_easy_put(h, r->easy);
	}
	curl_slist_free_all(r->headers);
	curl_slist_free_all(r->connect_to);
	free(r->request);
	free(r->url);
	free(r);
}

/* Release the run, then report: the only way a started run ends. */
static void grpc_finish(struct grpc_run *r, enum hr_status st,
			const char *out, size_t len)
{
	struct hr_check *c = r->c;

	grpc_release(r);
	hr__check_finish(c, st, out, len, len); /* c may be gone */
}

static void transport_failure(struct grpc_run *r, CURLcode rc, char *out,
			      size_t *len)
{
	const char *target = hr__check_spec(r->c)->target;
	enum hr__grpc_code code = rc == CURLE_OPERATION_TIMEDOUT
					  ? HR__GRPC_DEADLINE_EXCEEDED
					  : HR__GRPC_UNAVAILABLE;
	int n = snprintf(out, OUT_MAX, "gRPC check %s: %s: %s", target,
			 hr__grpc_code_name(code),
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));

	*len = n < 0 ? 0 : (size_t)n < OUT_MAX ? (size_t)n : OUT_MAX - 1;
}

static void done_cb(CURL *easy, CURLcode rc, void *payload)
{
	struct grpc_run *r = payload;
	const char *target = hr__check_spec(r->c)->target;
	enum hr_status st = HR_STATUS_CRITICAL;
	long code = 0, version = 0;
	char out[OUT_MAX];
	size_t len = 0;

	/* A response: the transfer ended, or we ended it (the reader says
	 * why), or the server ended the call (grpc-status arrived, only at
	 * the end) and then the stream (an RST_STREAM after the trailers). */
	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->reader.err) ||
	    r->meta.grpc_status != -1) {
		rc = CURLE_OK;
		hr__grpc_reader_end(&r->reader); /* errors are sticky */
	}
	curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK) {
		transport_failure(r, rc, out, &len);
	} else if (version != CURL_HTTP_VERSION_2_0) {
		int n = snprintf(out, sizeof(out),
				 "gRPC check %s: UNAVAILABLE: the server does not "
				 "speak HTTP/2 (it answered HTTP/1.x)", target);

		len = n < 0 ? 0 : (size_t)n < sizeof(out) ? (size_t)n
							   : sizeof(out) - 1;
	} else {
		st = hr__grpc_verdict(target, code, &r->meta, &r->reader, out,
				      sizeof(out), &len);
	}
	grpc_finish(r, st, out, len);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct grpc_run *r = container_of(w, struct grpc_run, deadline);
	char out[OUT_MAX];
	long ms;
	int n;

	(void)revents;
	ev_now_update(loop);
	ms = (long)((ev_now(loop) - r->started) * 1000.0);
	n = snprintf(out, sizeof(out),
		     "gRPC check %s: DEADLINE_EXCEEDED: timed out after %ld ms",
		     hr__check_spec(r->c)->target, ms);
	grpc_finish(r, HR_STATUS_CRITICAL, out,
		    n < 0 ? 0 : (size_t)n < sizeof(out) ? (size_t)n
							: sizeof(out) - 1);
}

static void grpc_cancel(struct hr_check *c)
{
	struct grpc_run *r = *hr__check_run_slot(c);

	if (r)
		grpc_release(r);
}

static int add_header(struct grpc_run *r, const char *line)
{
	struct curl_slist *l = curl_slist_append(r->headers, line);

	if (!l)
		return -ENOMEM;
	r->headers = l;
	return 0;
}

static int set_headers(struct grpc_run *r, const struct hr_check_spec *s)
{
	char line[64] = "grpc-timeout: ";
	size_t at = strlen(line);

	hr__grpc_timeout(s->timeout_ms, line + at, sizeof(line) - at);
	if (add_header(r, "Content-Type: application/grpc") ||
	    add_header(r, "TE: trailers") || add_header(r, line) ||
	    add_header(r, "User-Agent: healthreg/" HR_VERSION) ||
	    add_header(r, "Accept:") || add_header(r, "Expect:"))
		return -ENOMEM;
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	return 0;
}

/* A malloc'ed string of the format; NULL on ENOMEM. */
static char *strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *strfmt(const char *fmt, ...)
{
	va_list ap;
	char *out;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	out = malloc((size_t)n + 1);
	if (!out)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(out, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return out;
}

/*
 * The URL, and with tls_server_name the name in it (the :authority, SNI
 * and the name verified) while libcurl connects to the target's own host
 * (CURLOPT_CONNECT_TO), as for http checks.
 */
static int set_url(struct grpc_run *r, const struct hr_check_spec *s,
		   size_t hostport_len)
{
	const char *end = s->target + hostport_len, *port = end;
	int hp = (int)hostport_len, plen;
	char *map;

	while (port[-1] != ':') /* hr__grpc_target_split found a port */
		port--;
	plen = (int)(end - port);
	if (!s->grpc_use_tls || !s->tls_server_name) {
		r->url = strfmt("%s://%.*s" HEALTH_PATH,
				s->grpc_use_tls ? "https" : "http", hp,
				s->target);
	} else {
		r->url = strfmt("https://%s:%.*s" HEALTH_PATH,
				s->tls_server_name, plen, port);
		map = strfmt("%s:%.*s:%.*s", s->tls_server_name, plen, port,
			     hp, s->target);
		if (map)
			r->connect_to = curl_slist_append(NULL, map);
		free(map);
		if (!r->connect_to)
			return -ENOMEM;
		curl_easy_setopt(r->easy, CURLOPT_CONNECT_TO, r->connect_to);
	}
	if (!r->url)
		return -ENOMEM;
	curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
	return 0;
}

static void set_transfer(struct grpc_run *r, const struct hr_check_spec *s,
			 size_t request_len)
{
	long ms = (long)s->timeout_ms;
	long version = s->grpc_use_tls ? (long)CURL_HTTP_VERSION_2TLS
				       : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;

	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION, version);
	/* through a proxy, a tunnel: gRPC needs HTTP/2 end to end */
	curl_easy_setopt(r->easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->request);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)request_len);
	/* A fresh connection per check, like Consul and HAProxy. */
	curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, ms);
	if (s->grpc_use_tls && s->tls_skip_verify) {
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (s->grpc_use_tls && s->ca_file) {
		/* Only this CA, not also libcurl's built-in CA directory. */
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, s->ca_file);
		curl_easy_setopt(r->easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
}

static int grpc_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct hr_http *h = hr__check_http_glue(c);
	struct ev_loop *loop = hr__check_loop(c);
	const char *service;
	size_t hostport_len, request_len;
	struct grpc_run *r;
	int rc;

	if (hr__grpc_target_split(s->target, &hostport_len, &service))
		return hr_err_set(err, -EINVAL, "gRPC check %s: not host:port"
				  "[/service]", s->target);
	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->c = c;
	hr__grpc_meta_init(&r->meta);
	hr__grpc_reader_init(&r->reader);
	ev_timer_init(&r->deadline, deadline_cb,
		      (double)s->timeout_ms / 1000.0 + DEADLINE_GRACE, 0.);
	request_len = hr__grpc_request(service, strlen(service), NULL, 0);
	r->request = malloc(request_len);
	r->easy = hr_http_easy_get(h);
	*hr__check_run_slot(c) = r;
	rc = -ENOMEM;
	if (!r->request || !r->easy || set_headers(r, s) ||
	    set_url(r, s, hostport_len))
		goto fail;
	hr__grpc_request(service, strlen(service), r->request, request_len);
	set_transfer(r, s, request_len);
	rc = hr_http_start(h, r->easy, done_cb, r);
	if (rc)
		goto fail;
	r->started = ev_now(loop);
	ev_timer_start(loop, &r->deadline);
	return 0;
fail:
	grpc_release(r);
	return hr_err_set(err, rc, "gRPC check %s: cannot start: %s",
			  s->target, strerror(-rc));
}

const struct hr__check_kind hr__check_grpc = {
	.start = grpc_start,
	.cancel = grpc_cancel,
};
