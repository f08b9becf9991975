/*
 * http_curl.c - the libcurl engine of the http check kind: https, host
 * names, methods, headers, bodies, redirects; one transfer per run on the
 * shared multi handle (lib/http.c), a fresh connection each time.
 *
 *   hr__http_curl_start: easy handle from the pool, request options,
 *     hr_http_start, the run's deadline timer
 *   -> header_cb: the last status line's reason phrase; the parser's rules
 *      where libcurl's differ (http_parse.c): the head size limit
 *      (HR__HTTP_HEAD_MAX, 1xx heads included), Content-Length values
 *      (hr__http_content_length: a sign or two different values fail)
 *   -> write_cb: the first HR_OUTPUT_MAX body bytes (struct hr_capture)
 *   done_cb: the CURLcode mapped to a failure class (curl_classes; a
 *     close inside a head that libcurl takes as a response is "Weird
 *     server reply", as on the direct engine), the result handed to
 *     run->done, then the handle back to the pool.
 *   deadline_cb: the check's timeout when libcurl missed it. libcurl 7.88
 *     keeps CURLOPT_TIMEOUT to the millisecond on the first hop of a
 *     transfer only: after a redirect its timer runs from the new hop, so
 *     it sees the deadline late, at the next socket event or that timer
 *     (slow redirect chains ran 605-695 ms with a 500 ms timeout; tests:
 *     test_hostile_targets.py). One deadline per run: the kind's rule
 *     (check_http.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>

#include "healthreg/http.h"
#include "http_curl.h"
#include "http_report.h"
#include "internal.h"

/* How long libcurl's own timer gets past the deadline, on a first hop,
 * to name the phase that timed out (resolving, connecting) itself. */
#define DEADLINE_GRACE 0.05

struct curl_run {
	struct hr__http_run base;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *connect_to;
	struct hr_capture body;
	ev_timer deadline;
	double started;          /* ev_now() at start */
	long elapsed_ms;         /* of the run before this transfer */
	size_t head_bytes;       /* of this hop's response, 1xx included */
	int64_t content_length;  /* of this response, -1 none */
	bool in_head, interim, head_too_large, bad_length, overdue;
	char reason[HR__HTTP_REASON_MAX];
	char errbuf[CURL_ERROR_SIZE];
};

static void curl_cancel(struct hr__http_run *run);

static const struct hr__http_engine curl_engine = {
	.name = "libcurl",
	.cancel = curl_cancel,
};

/*
 * CURLcode (and, where one code covers several failures, the start of
 * libcurl's message) -> failure class. First match wins; "" matches any
 * message. Only classification reads libcurl's words, never the output.
 */
static const struct {
	CURLcode rc;
	const char *prefix;
	enum hr__http_fail fail;
} curl_classes[] = {
	{ CURLE_COULDNT_CONNECT, "", HR__HTTP_E_CONNECT },
	{ CURLE_OPERATION_TIMEDOUT, "Failed to connect",
	  HR__HTTP_E_CONNECT_ETIMEDOUT },
	{ CURLE_OPERATION_TIMEDOUT, "Resolving", HR__HTTP_E_RESOLVE_TIMEOUT },
	{ CURLE_OPERATION_TIMEDOUT, "Connection", HR__HTTP_E_CONNECT_TIMEOUT },
	{ CURLE_OPERATION_TIMEDOUT, "", HR__HTTP_E_TIMEOUT },
	{ CURLE_SEND_ERROR, "Send failure", HR__HTTP_E_SEND },
	{ CURLE_RECV_ERROR, "Recv failure", HR__HTTP_E_RECV },
	{ CURLE_RECV_ERROR, "Illegal or missing hex", HR__HTTP_E_CHUNK_HEX },
	{ CURLE_RECV_ERROR, "Too long hex", HR__HTTP_E_CHUNK_TOO_LONG },
	{ CURLE_RECV_ERROR, "Malformed encoding", HR__HTTP_E_CHUNK_BAD },
	{ CURLE_GOT_NOTHING, "", HR__HTTP_E_EMPTY },
	{ CURLE_WEIRD_SERVER_REPLY, "Nul byte", HR__HTTP_E_NUL_HEADER },
	{ CURLE_WEIRD_SERVER_REPLY, "Header without colon",
	  HR__HTTP_E_NO_COLON },
	{ CURLE_WEIRD_SERVER_REPLY, "Invalid Content-Length",
	  HR__HTTP_E_BAD_LENGTH },
	{ CURLE_WEIRD_SERVER_REPLY, "", HR__HTTP_E_WEIRD },
	{ CURLE_UNSUPPORTED_PROTOCOL, "Received HTTP/0.9", HR__HTTP_E_HTTP09 },
	{ CURLE_PARTIAL_FILE, "", HR__HTTP_E_PARTIAL },
	{ CURLE_TOO_MANY_REDIRECTS, "", HR__HTTP_E_REDIRECTS },
	{ CURLE_OUT_OF_MEMORY, "", HR__HTTP_E_OOM },
};

/* A Content-Length line by the parser's rule; false: abort. */
static bool length_ok(struct curl_run *r, const char *line, size_t n)
{
	int64_t cl = -1;
	int rc = hr__http_content_length(line, n, &cl);

	if (rc < 0 || (rc > 0 && cl >= 0 && r->content_length >= 0 &&
		       cl != r->content_length)) {
		r->bad_length = true;
		return false;
	}
	if (rc > 0 && cl >= 0)
		r->content_length = cl;
	return true;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct curl_run *r = userp;
	size_t n = size * nmemb;
	bool status = n > 5 && !memcmp(ptr, "HTTP/", 5);

	if (status) {
		const char *sp = memchr(ptr, ' ', n);

		if (!r->interim)
			r->head_bytes = 0; /* a new hop, not after a 1xx */
		r->in_head = true;
		r->interim = sp && (size_t)(sp - ptr) + 4 <= n &&
			     sp[1] == '1' && memcmp(sp + 1, "101", 3);
		r->content_length = -1;
		hr__http_status_reason(ptr, n, r->reason, sizeof(r->reason));
	}
	if (!r->in_head)
		return n; /* trailers */
	r->head_bytes += n;
	if (r->head_bytes > HR__HTTP_HEAD_MAX) {
		r->head_too_large = true;
		return 0; /* abort the transfer */
	}
	if (n <= 2 && (ptr[0] == '\r' || ptr[0] == '\n'))
		r->in_head = false;
	else if (!status && !length_ok(r, ptr, n))
		return 0;
	return n;
}

static void run_free(struct curl_run *r, struct hr_http *h)
{
	if (r->easy)
		hr_http_easy_put(h, r->easy);
	curl_slist_free_all(r->headers);
	curl_slist_free_all(r->connect_to);
	hr_capture_dispose(&r->body);
	free(r);
}

static enum hr__http_fail curl_class(const struct curl_run *r, CURLcode rc)
{
	size_t i;

	if (r->head_too_large ||
	    (rc == CURLE_OUT_OF_MEMORY && r->in_head)) /* a line > 100 KiB */
		return HR__HTTP_E_HEAD_TOO_LARGE;
	if (r->bad_length)
		return HR__HTTP_E_BAD_LENGTH;
	if (r->in_head && rc == CURLE_PARTIAL_FILE)
		return HR__HTTP_E_WEIRD; /* closed before the empty line */
	for (i = 0; i < HR_ARRAY_SIZE(curl_classes); i++)
		if (curl_classes[i].rc == rc &&
		    !strncmp(r->errbuf, curl_classes[i].prefix,
			     strlen(curl_classes[i].prefix)))
			return curl_classes[i].fail;
	return HR__HTTP_E_OTHER;
}

/* A failed transfer's result: its class and what the texts name. */
static void failure(struct curl_run *r, CURLcode rc,
		    struct hr__http_result *res)
{
	const struct hr_check_spec *s = hr__check_spec(r->base.c);
	curl_off_t t = 0, got = 0, cl = -1;
	long os_errno = 0, redirects = 0;
	char *url = NULL;

	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &t);
	curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
	curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_COUNT, &redirects);
	curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
	res->fail = curl_class(r, rc);
	if (res->fail == HR__HTTP_E_PARTIAL && cl < 0)
		res->fail = HR__HTTP_E_PARTIAL_CHUNKED;
	/* with tls_server_name, libcurl connects to the URL's own host */
	res->url = s->tls_server_name && !redirects ? s->target : url;
	res->ms = r->elapsed_ms + (long)(t / 1000);
	res->received = got;
	res->expected = cl;
	res->os_errno = (int)os_errno;
	res->text = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
}

/* The slot cleared, the deadline stopped (the transfer is libcurl's or
 * over). */
static void run_detach(struct curl_run *r)
{
	struct hr_check *c = r->base.c;

	ev_timer_stop(hr__check_loop(c), &r->deadline);
	*hr__check_run_slot(c) = NULL;
}

static void done_cb(CURL *easy, CURLcode rc, void *payload)
{
	struct curl_run *r = payload;
	struct hr_check *c = r->base.c;
	struct hr_http *h = hr__check_http_glue(c);
	struct hr__http_result res = { .fail = HR__HTTP_OK };
	long code = 0;

	run_detach(r);
	if (r->in_head && rc == CURLE_OK)
		rc = CURLE_PARTIAL_FILE; /* not a response: see curl_class */
	if (rc != CURLE_OK) {
		failure(r, rc, &res);
	} else {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
		res.code = code;
		res.reason = r->reason;
		res.body = hr_capture_str(&r->body);
		res.len = r->body.len;
		res.total = r->body.total;
	}
	r->base.done(c, &res); /* c may be gone */
	run_free(r, h);
}

static void curl_cancel(struct hr__http_run *run)
{
	struct curl_run *r = container_of(run, struct curl_run, base);
	struct hr_http *h = hr__check_http_glue(run->c);

	run_detach(r);
	hr_http_cancel(h, r->easy);
	run_free(r, h);
}

/* The deadline passed and libcurl has not ended the transfer. */
static void expire(struct curl_run *r)
{
	struct hr_check *c = r->base.c;
	struct hr_http *h = hr__check_http_glue(c);
	struct ev_loop *loop = hr__check_loop(c);
	struct hr__http_result res = { .fail = HR__HTTP_E_TIMEOUT };
	curl_off_t got = 0, cl = -1;
	char *url = NULL;

	curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
	curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
	ev_now_update(loop);
	res.url = url;
	res.ms = r->elapsed_ms + (long)((ev_now(loop) - r->started) * 1000.0);
	res.received = got;
	res.expected = cl;
	run_detach(r);
	hr_http_cancel(h, r->easy);
	r->base.done(c, &res); /* c may be gone; url is the handle's */
	run_free(r, h);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct curl_run *r = container_of(w, struct curl_run, deadline);
	long redirects = 0;

	(void)revents;
	curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_COUNT, &redirects);
	if (!redirects && !r->overdue) {
		/* a first hop: libcurl's timer holds and names the phase */
		r->overdue = true;
		ev_timer_set(w, DEADLINE_GRACE, 0.);
		ev_timer_start(loop, w);
		return;
	}
	expire(r);
}

/*
 * tls_server_name: request the URL with the host replaced by the server
 * name (so SNI and certificate checks use it) and connect to the real host
 * with CURLOPT_CONNECT_TO.
 */
static int set_server_name(struct curl_run *r, const struct hr_check_spec *s)
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

static int add_header(struct curl_run *r, const char *line)
{
	struct curl_slist *l = curl_slist_append(r->headers, line);

	if (!l)
		return -ENOMEM;
	r->headers = l;
	return 0;
}

/* The check's headers, then User-Agent and Accept unless it set them. */
static int set_headers(struct curl_run *r, const struct hr_check_spec *s)
{
	bool has_ua = false, has_accept = false;
	char line[2048];
	size_t i;

	for (i = 0; i < s->n_headers; i++) {
		if (!strcasecmp(s->headers[i].name, "User-Agent"))
			has_ua = true;
		if (!strcasecmp(s->headers[i].name, "Accept"))
			has_accept = true;
		snprintf(line, sizeof(line), "%s: %s", s->headers[i].name,
			 s->headers[i].value);
		if (add_header(r, line))
			return -ENOMEM;
	}
	if (!has_ua && add_header(r, "User-Agent: healthreg/" HR_VERSION))
		return -ENOMEM;
	if (!has_accept && add_header(r, "Accept: text/plain, text/*, */*"))
		return -ENOMEM;
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	return 0;
}

static void set_request(struct curl_run *r, const struct hr_check_spec *s,
			const char *method)
{
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
}

static void set_transfer(struct curl_run *r, const struct hr_check_spec *s,
			 long redirects, long timeout_ms)
{
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* A fresh connection per check, like Consul and HAProxy. */
	curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	if (!s->disable_redirects) {
		curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(r->easy, CURLOPT_MAXREDIRS,
				 HR__HTTP_MAX_REDIRECTS - redirects);
	}
	if (s->tls_skip_verify) {
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (s->ca_file) {
		/* Only this CA: not also the CA directory libcurl was built
		 * with (Debian's /etc/ssl/certs), as for the registries. */
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, s->ca_file);
		curl_easy_setopt(r->easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, hr_capture_curl_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
}

int hr__http_curl_start(struct hr_check *c, const char *url, long redirects,
			long elapsed_ms, hr__http_done_cb done,
			struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct hr_http *h = hr__check_http_glue(c);
	struct ev_loop *loop = hr__check_loop(c);
	const char *method = s->method ? s->method : "GET";
	long timeout_ms = (long)s->timeout_ms - elapsed_ms;
	struct curl_run *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->base = (struct hr__http_run){ &curl_engine, c, done };
	r->elapsed_ms = elapsed_ms;
	r->content_length = -1;
	ev_timer_init(&r->deadline, deadline_cb, (double)timeout_ms / 1000.0,
		      0.);
	hr_capture_init(&r->body, HR_OUTPUT_MAX);
	r->easy = hr_http_easy_get(h);
	if (!r->easy || set_headers(r, s)) {
		run_free(r, h);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	if (s->tls_server_name) {
		rc = set_server_name(r, s);
		if (rc) {
			run_free(r, h);
			return hr_err_set(err, rc, "HTTP %s %s: cannot apply "
					  "tls_server_name", method, s->target);
		}
	}
	set_request(r, s, method);
	set_transfer(r, s, redirects, timeout_ms);
	*hr__check_run_slot(c) = &r->base;
	rc = hr_http_start(h, r->easy, done_cb, r);
	if (rc) {
		*hr__check_run_slot(c) = NULL;
		run_free(r, h);
		return hr_err_set(err, rc, "HTTP %s %s: cannot start transfer",
				  method, s->target);
	}
	r->started = ev_now(loop);
	ev_timer_start(loop, &r->deadline);
	return 0;
}
