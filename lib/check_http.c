/*
 * check_http.c - the http check kind.
 *
 * Two engines, one behaviour (docs/checks.md, docs/performance.md):
 *
 * - direct (the common case: a plain GET of http://<numeric address>/...
 *   with no custom headers or body): a small HTTP/1.1 client on the loop,
 *   in check_http_direct.c.
 *     start: socket, connect, send the request at once (on loopback the
 *       handshake is done by then), else on writable
 *     -> readable: status line, headers, body (Content-Length, chunked or
 *        until EOF); the first HR_OUTPUT_MAX body bytes kept
 *     -> done: close with an RST (no TIME_WAIT), classify, finish
 *     -> a redirect (3xx + Location) is handed to the libcurl engine at
 *        the Location, so redirect rules stay libcurl's
 *   The request bytes are exactly libcurl's, and errors use libcurl's
 *   texts. It exists because libcurl's per-transfer setup (connection
 *   object, option parsing, getsockname/getpeername/poll calls, ~20
 *   syscalls and many allocations per check) cost 1.5x HAProxy's CPU per
 *   check; see docs/performance.md for the profile.
 *
 * - libcurl (everything else: https, host names, methods, headers,
 *   bodies, redirects), on the shared multi handle:
 *     start(): easy handle from the pool, request options, hr_http_start
 *     -> header_cb (keeps the last status line's reason phrase)
 *     -> write_cb (keeps the first HR_OUTPUT_MAX body bytes, counts all)
 *   done_cb(): classify (2xx passing, 429 warning, else critical),
 *     build "HTTP GET <url>: 200 OK Output: <body>", release, finish.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "check_http.h"
#include "healthreg/http.h"
#include "internal.h"

struct http_run {
	int engine;           /* HR__HTTP_ENGINE_CURL; first member, see run_engine() */
	struct hr_check *c;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *connect_to;
	char *body;           /* first HR_OUTPUT_MAX bytes */
	size_t len, total;
	char reason[64];
	char errbuf[CURL_ERROR_SIZE];
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct http_run *r = userp;
	size_t n = size * nmemb, room;

	r->total += n;
	if (r->len < HR_OUTPUT_MAX) {
		if (!r->body) {
			r->body = malloc(HR_OUTPUT_MAX);
			if (!r->body)
				return n; /* drop the body, keep the check */
		}
		room = HR_OUTPUT_MAX - r->len;
		memcpy(r->body + r->len, ptr, n < room ? n : room);
		r->len += n < room ? n : room;
	}
	return n; /* the rest is read and discarded */
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct http_run *r = userp;
	size_t n = size * nmemb, i;
	const char *sp;

	if (n > 5 && !memcmp(ptr, "HTTP/", 5)) {
		/* "HTTP/1.1 200 OK\r\n": reason is after the second space */
		sp = memchr(ptr, ' ', n);
		if (sp)
			sp = memchr(sp + 1, ' ', n - (size_t)(sp + 1 - ptr));
		r->reason[0] = '\0';
		if (sp) {
			sp++;
			for (i = 0; sp + i < ptr + n && i + 1 < sizeof(r->reason) &&
				    sp[i] != '\r' && sp[i] != '\n'; i++)
				r->reason[i] = sp[i];
			r->reason[i] = '\0';
		}
	}
	return n;
}

static void run_free(struct http_run *r, struct hr_http *h)
{
	if (r->easy)
		hr_http_easy_put(h, r->easy);
	curl_slist_free_all(r->headers);
	curl_slist_free_all(r->connect_to);
	free(r->body);
	free(r);
}

static void done_cb(CURL *easy, CURLcode rc, void *payload)
{
	struct http_run *r = payload;
	struct hr_check *c = r->c;
	struct hr_http *h = hr__check_http_glue(c);
	long code = 0;

	*hr__check_run_slot(c) = NULL;
	if (rc != CURLE_OK)
		hr__http_report_error(c, r->errbuf[0] ? r->errbuf
						      : curl_easy_strerror(rc));
	else {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
		hr__http_report(c, code, r->reason, r->body, r->len, r->total);
	}
	run_free(r, h);
}

/*
 * tls_server_name: request the URL with the host replaced by the server
 * name (so SNI and certificate checks use it) and connect to the real host
 * with CURLOPT_CONNECT_TO.
 */
static int set_server_name(struct http_run *r, const struct hr_check_spec *s)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *url = NULL;
	char map[512];
	int rc = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, s->target, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
		goto cleanup;
	snprintf(map, sizeof(map), "%s:%s:%s:%s", s->tls_server_name, port,
		 host, port);
	if (curl_url_set(u, CURLUPART_HOST, s->tls_server_name, 0) ||
	    curl_url_get(u, CURLUPART_URL, &url, 0))
		goto cleanup;
	r->connect_to = curl_slist_append(NULL, map);
	if (!r->connect_to) {
		rc = -ENOMEM;
		goto cleanup;
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_CONNECT_TO, r->connect_to);
	rc = 0;
cleanup:
	curl_free(host);
	curl_free(port);
	curl_free(url);
	curl_url_cleanup(u);
	return rc;
}

/*
 * The libcurl engine. url: where to start (the check's URL, or a
 * redirect's Location handed over by the direct engine, which then has
 * used one of the 10 redirects).
 */
int hr__http_curl_start(struct hr_check *c, const char *url, long redirects,
			 struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct hr_http *h = hr__check_http_glue(c);
	struct http_run *r;
	const char *method = hr__http_method(s);
	int has_ua = 0, has_accept = 0, rc;
	size_t i;

	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->engine = HR__HTTP_ENGINE_CURL;
	r->c = c;
	r->easy = hr_http_easy_get(h);
	if (!r->easy) {
		run_free(r, h);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	for (i = 0; i < s->n_headers; i++) {
		char line[2048];
		struct curl_slist *l;

		if (!strcasecmp(s->headers[i].name, "User-Agent"))
			has_ua = 1;
		if (!strcasecmp(s->headers[i].name, "Accept"))
			has_accept = 1;
		snprintf(line, sizeof(line), "%s: %s", s->headers[i].name,
			 s->headers[i].value);
		l = curl_slist_append(r->headers, line);
		if (!l)
			goto oom;
		r->headers = l;
	}
	if (!has_ua) {
		struct curl_slist *l = curl_slist_append(
			r->headers, "User-Agent: healthreg/" HR_VERSION);

		if (!l)
			goto oom;
		r->headers = l;
	}
	if (!has_accept) {
		struct curl_slist *l = curl_slist_append(
			r->headers, "Accept: text/plain, text/*, */*");

		if (!l)
			goto oom;
		r->headers = l;
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	if (s->tls_server_name) {
		rc = set_server_name(r, s);
		if (rc) {
			run_free(r, h);
			return hr_err_set(err, rc, "HTTP %s %s: cannot apply tls_server_name",
					  method, s->target);
		}
	}
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(r->easy, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET"))
		curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
	if (s->body) {
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, s->body);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(s->body));
		if (!strcmp(method, "GET"))
			curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, "GET");
	}
	/* A fresh connection per check, like Consul and HAProxy. */
	curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
	if (!s->disable_redirects) {
		curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(r->easy, CURLOPT_MAXREDIRS, 10L - redirects);
	}
	if (s->tls_skip_verify) {
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	*hr__check_run_slot(c) = r;
	rc = hr_http_start(h, r->easy, done_cb, r);
	if (rc) {
		*hr__check_run_slot(c) = NULL;
		run_free(r, h);
		return hr_err_set(err, rc, "HTTP %s %s: cannot start transfer",
				  method, s->target);
	}
	return 0;
oom:
	run_free(r, h);
	return hr_err_set(err, -ENOMEM, "out of memory");
}

/* ---- shared by both engines --------------------------------------- */

const char *hr__http_method(const struct hr_check_spec *s)
{
	return s->method ? s->method : "GET";
}

void hr__http_report_error(struct hr_check *c, const char *msg)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	char out[1024];
	int n;

	n = snprintf(out, sizeof(out), "HTTP %s %s: %s", hr__http_method(s),
		     s->target, msg);
	if (n < 0 || (size_t)n >= sizeof(out))
		n = (int)strlen(out);
	hr__check_finish(c, HR_STATUS_CRITICAL, out, (size_t)n, (size_t)n);
}

void hr__http_report(struct hr_check *c, long code, const char *reason,
		     const char *body, size_t len, size_t total)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	enum hr_status st;
	char prefix[1024];
	char *out;
	size_t plen, olen;

	/* Consul's rule: 2xx passing, 429 warning, anything else critical. */
	if (code >= 200 && code < 300)
		st = HR_STATUS_PASSING;
	else if (code == 429)
		st = HR_STATUS_WARNING;
	else
		st = HR_STATUS_CRITICAL;
	plen = (size_t)snprintf(prefix, sizeof(prefix),
				"HTTP %s %s: %ld%s%s Output: ",
				hr__http_method(s), s->target, code,
				reason[0] ? " " : "", reason);
	if (plen >= sizeof(prefix))
		plen = sizeof(prefix) - 1;
	olen = plen + len;
	if (olen <= sizeof(prefix)) {
		/* the common small body: no allocation */
		if (len)
			memcpy(prefix + plen, body, len);
		hr__check_finish(c, st, prefix, olen, plen + total);
		return;
	}
	out = malloc(olen);
	if (!out) {
		hr__check_finish(c, st, prefix, plen, plen);
		return;
	}
	memcpy(out, prefix, plen);
	memcpy(out + plen, body, len);
	hr__check_finish(c, st, out, olen, plen + total);
	free(out);
}


static void http_cancel(struct hr_check *c)
{
	struct http_run *r = *hr__check_run_slot(c);
	struct hr_http *h = hr__check_http_glue(c);

	if (!r)
		return;
	if (r->engine == HR__HTTP_ENGINE_DIRECT) {
		hr__http_direct_cancel(c);
		return;
	}
	hr_http_cancel(h, r->easy);
	*hr__check_run_slot(c) = NULL;
	run_free(r, h);
}

static int http_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	int rc = hr__http_direct_start(c);

	if (rc != -EAGAIN)
		return 0; /* started, or already finished */
	return hr__http_curl_start(c, s->target, 0, err);
}

const struct hr__check_kind hr__check_http = {
	.start = http_start,
	.cancel = http_cancel,
};
