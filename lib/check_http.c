/*
 * check_http.c - the http check kind, on the shared libcurl multi handle.
 *
 *   start(): easy handle from the pool, request options, hr_http_start
 *     -> header_cb (keeps the last status line's reason phrase)
 *     -> write_cb (keeps the first HR_OUTPUT_MAX body bytes, counts all)
 *   done_cb(): classify (2xx passing, 429 warning, else critical),
 *     build "HTTP GET <url>: 200 OK Output: <body>", release, finish.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "healthreg/http.h"

struct http_run {
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

static const char *method_of(const struct hr_check_spec *s)
{
	return s->method ? s->method : "GET";
}

static void done_cb(CURL *easy, CURLcode rc, void *payload)
{
	struct http_run *r = payload;
	struct hr_check *c = r->c;
	const struct hr_check_spec *s = hr__check_spec(c);
	struct hr_http *h = hr__check_http_glue(c);
	enum hr_status st;
	char prefix[1024];
	char *out = NULL;
	size_t plen, total;
	long code = 0;

	*hr__check_run_slot(c) = NULL;
	if (rc != CURLE_OK) {
		plen = (size_t)snprintf(prefix, sizeof(prefix), "HTTP %s %s: %s",
					method_of(s), s->target,
					r->errbuf[0] ? r->errbuf
						     : curl_easy_strerror(rc));
		if (plen >= sizeof(prefix))
			plen = sizeof(prefix) - 1;
		run_free(r, h);
		hr__check_finish(c, HR_STATUS_CRITICAL, prefix, plen, plen);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300)
		st = HR_STATUS_PASSING;
	else if (code == 429)
		st = HR_STATUS_WARNING;
	else
		st = HR_STATUS_CRITICAL;
	plen = (size_t)snprintf(prefix, sizeof(prefix),
				"HTTP %s %s: %ld%s%s Output: ", method_of(s),
				s->target, code, r->reason[0] ? " " : "",
				r->reason);
	if (plen >= sizeof(prefix))
		plen = sizeof(prefix) - 1;
	total = plen + r->total;
	out = malloc(plen + r->len);
	if (out) {
		size_t len = plen + r->len;

		memcpy(out, prefix, plen);
		if (r->len)
			memcpy(out + plen, r->body, r->len);
		run_free(r, h);
		hr__check_finish(c, st, out, len, total);
		free(out);
	} else {
		run_free(r, h);
		hr__check_finish(c, st, prefix, plen, plen);
	}
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

static int http_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct hr_http *h = hr__check_http_glue(c);
	struct http_run *r;
	const char *method = method_of(s);
	int has_ua = 0, has_accept = 0, rc;
	size_t i;

	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
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
	curl_easy_setopt(r->easy, CURLOPT_URL, s->target);
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
		curl_easy_setopt(r->easy, CURLOPT_MAXREDIRS, 10L);
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

static void http_cancel(struct hr_check *c)
{
	struct http_run *r = *hr__check_run_slot(c);
	struct hr_http *h = hr__check_http_glue(c);

	if (!r)
		return;
	hr_http_cancel(h, r->easy);
	*hr__check_run_slot(c) = NULL;
	run_free(r, h);
}

const struct hr__check_kind hr__check_http = {
	.start = http_start,
	.cancel = http_cancel,
};
