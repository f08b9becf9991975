/*
 * http_direct.c - the direct HTTP/1.1 engine of the http check kind: a
 * plain GET of an http:// URL with a numeric host, on the loop, without
 * libcurl. It exists because libcurl's per-transfer setup (connection
 * object, option parsing, ~20 syscalls and many allocations per check)
 * cost 1.5x HAProxy's CPU per check; see docs/performance.md.
 *
 *   hr__http_direct_start: socket, connect, send the request at once
 *     (on loopback the handshake is done by then), else on writable
 *   -> readable: the bytes go to the response parser (http_parse.c); the
 *      body to the run's capture (the first HR_OUTPUT_MAX bytes), or,
 *      when the whole body came in the read that completed the response,
 *      straight from the receive buffer
 *   -> done: close with an RST (no TIME_WAIT), the result to run->done;
 *      a 3xx's Location goes with it (the kind continues on libcurl)
 * The request bytes are exactly libcurl's; failures are named by class
 * only (texts: http_report.c). tests/integration/test_http_engines.py
 * compares the two engines.
 *
 * Per run: one allocation (the run with its request) and socket,
 * connect, send, recv (x2: data, EAGAIN or EOF), close.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_direct.h"
#include "http_proxy.h"
#include "http_report.h"
#include "internal.h"

struct direct_run {
	struct hr__http_run base;
	ev_io io;
	ev_timer timer;
	int fd;
	double started;         /* ev_now() at start */
	bool connected, sending;
	size_t req_len, req_off;
	struct hr__http_parser parser;
	struct hr_capture body;
	const char *pending;    /* body bytes still in the receive buffer */
	size_t pending_len;
	char req[];             /* the request */
};

static void direct_cancel(struct hr__http_run *run);

static const struct hr__http_engine direct_engine = {
	.name = "direct",
	.cancel = direct_cancel,
};

/* The path: printable, no fragment, no dot segments (libcurl would
 * normalise those). */
static bool path_plain(const char *path)
{
	const char *p;

	for (p = path; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    *p == '#' || *p == '\\')
			return false;
	for (p = path; *p && *p != '?'; p++)
		if (*p == '/' && p[1] == '.' &&
		    (p[2] == '/' || p[2] == '?' || !p[2] ||
		     (p[2] == '.' && (p[3] == '/' || p[3] == '?' || !p[3]))))
			return false;
	return true;
}

/*
 * The direct engine takes only what it reproduces exactly: GET of an
 * http:// URL whose host is a numeric address, no userinfo, a plain path,
 * no custom headers, no body, no tls settings, and that libcurl would
 * not send through a proxy (http_proxy.h: otherwise libcurl runs it, so
 * a check takes the same way whatever its headers). Writes the address,
 * the Host header value (libcurl leaves out the default port) and the
 * path.
 */
static bool direct_eligible(const struct hr_check_spec *s,
			    struct sockaddr_storage *ss, socklen_t *sslen,
			    char *host, size_t hlen, const char **path)
{
	struct hr__http_url u;
	char addr[64];

	if ((s->method && strcmp(s->method, "GET")) || s->body ||
	    s->n_headers || s->tls_server_name ||
	    strncmp(s->target, "http://", 7) ||
	    hr__http_url_split(s->target, &u) || u.has_userinfo ||
	    u.host_len >= sizeof(addr) || !path_plain(u.path))
		return false;
	memcpy(addr, u.host, u.host_len);
	addr[u.host_len] = '\0';
	if (hr__sockaddr_numeric(u.bracketed ? AF_INET6 : AF_INET, addr,
				 u.port, ss, sslen) ||
	    !hr__http_proxy_none_env(addr))
		return false;
	snprintf(host, hlen, "%s%s%s", u.bracketed ? "[" : "", addr,
		 u.bracketed ? "]" : "");
	if (u.port != 80) {
		size_t n = strlen(host);

		snprintf(host + n, hlen - n, ":%u", u.port);
	}
	*path = u.path;
	return true;
}

/* Memory only: the check is not touched (it may be gone). */
static void run_free(struct direct_run *r)
{
	hr__http_parse_dispose(&r->parser);
	hr_capture_dispose(&r->body);
	free(r);
}

/* Stop the watchers, close the socket, clear the slot. */
static void run_detach(struct direct_run *r)
{
	struct hr_check *c = r->base.c;
	struct ev_loop *loop = hr__check_loop(c);

	ev_io_stop(loop, &r->io);
	ev_timer_stop(loop, &r->timer);
	if (r->fd >= 0)
		hr__close_rst(r->fd);
	r->fd = -1;
	*hr__check_run_slot(c) = NULL;
}

static void direct_cancel(struct hr__http_run *run)
{
	struct direct_run *r = container_of(run, struct direct_run, base);

	run_detach(r);
	run_free(r);
}

/* End the run with res (its pointers may point into r). */
static void direct_finish(struct direct_run *r, struct hr__http_result *res)
{
	struct hr_check *c = r->base.c;

	run_detach(r);
	r->base.done(c, res); /* c may be gone */
	run_free(r);
}

static long ms_since(struct direct_run *r)
{
	struct ev_loop *loop = hr__check_loop(r->base.c);

	ev_now_update(loop);
	return (long)((ev_now(loop) - r->started) * 1000.0);
}

static void direct_fail(struct direct_run *r, enum hr__http_fail f, int e)
{
	struct hr__http_result res = {
		.fail = f,
		.url = hr__check_spec(r->base.c)->target,
		.ms = ms_since(r),
		.received = r->parser.body_total,
		.expected = r->parser.content_length,
		.os_errno = e,
	};

	direct_finish(r, &res);
}

static void connect_failed(struct direct_run *r, int e)
{
	direct_fail(r, e == ETIMEDOUT ? HR__HTTP_E_CONNECT_ETIMEDOUT
				      : HR__HTTP_E_CONNECT, e);
}

/* Body bytes from the parser: left where they are while they may be the
 * whole body, else captured. */
static void body_cb(const char *p, size_t n, void *payload)
{
	struct direct_run *r = payload;

	if (!r->pending && !r->body.total) {
		r->pending = p;
		r->pending_len = n;
		return;
	}
	if (r->pending) {
		hr_capture_add(&r->body, r->pending, r->pending_len);
		r->pending = NULL;
	}
	hr_capture_add(&r->body, p, n);
}

/* The receive buffer is about to be reused. */
static void keep_pending(struct direct_run *r)
{
	if (!r->pending)
		return;
	hr_capture_add(&r->body, r->pending, r->pending_len);
	r->pending = NULL;
}

/* A complete response. */
static void direct_done(struct direct_run *r)
{
	const struct hr__http_parser *p = &r->parser;
	struct hr__http_result res = {
		.fail = HR__HTTP_OK,
		.code = p->code,
		.reason = p->reason,
		.location = p->location,
		.total = (size_t)p->body_total,
	};

	if (p->location)
		res.ms = ms_since(r); /* the kind may go on with the rest */
	if (r->pending) {
		res.body = r->pending;
		res.len = r->pending_len < HR_OUTPUT_MAX ? r->pending_len
							 : HR_OUTPUT_MAX;
	} else {
		res.body = hr_capture_str(&r->body);
		res.len = r->body.len;
	}
	direct_finish(r, &res);
}

static void direct_read(struct direct_run *r)
{
	char buf[16384];
	ssize_t n;
	int rc;

	for (;;) {
		n = recv(r->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			direct_fail(r, HR__HTTP_E_RECV, errno);
			return;
		}
		rc = n ? hr__http_parse_feed(&r->parser, buf, (size_t)n)
		       : hr__http_parse_eof(&r->parser);
		if (rc == HR__HTTP_FAILED) {
			direct_fail(r, r->parser.fail, 0);
			return;
		}
		if (rc == HR__HTTP_DONE) {
			direct_done(r);
			return;
		}
		keep_pending(r);
	}
}

/* Send (the rest of) the request; 1 done, 0 try later, -errno failed. */
static int direct_send(struct direct_run *r)
{
	while (r->req_off < r->req_len) {
		ssize_t n = send(r->fd, r->req + r->req_off,
				 r->req_len - r->req_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		r->req_off += (size_t)n;
	}
	return 1;
}

/* Writable while sending: connected (or not), then the request. */
static void direct_writable(struct ev_loop *loop, struct direct_run *r)
{
	int rc;

	if (!r->connected) {
		int so_error = 0;
		socklen_t len = sizeof(so_error);

		if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
			so_error = errno;
		if (so_error) {
			connect_failed(r, so_error);
			return;
		}
		r->connected = true;
	}
	rc = direct_send(r);
	if (rc < 0) {
		direct_fail(r, HR__HTTP_E_SEND, -rc);
		return;
	}
	if (!rc)
		return;
	r->sending = false;
	ev_io_stop(loop, &r->io);
	ev_io_set(&r->io, r->fd, EV_READ);
	ev_io_start(loop, &r->io);
}

static void direct_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct direct_run *r = container_of(w, struct direct_run, io);

	(void)revents;
	if (r->sending)
		direct_writable(loop, r);
	else
		direct_read(r);
}

static void direct_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct direct_run *r = container_of(w, struct direct_run, timer);

	(void)loop;
	(void)revents;
	direct_fail(r, r->connected ? HR__HTTP_E_TIMEOUT
				    : HR__HTTP_E_CONNECT_TIMEOUT, 0);
}

/* The run with libcurl's request bytes for this check; NULL: no memory. */
static struct direct_run *run_new(const char *host, const char *path)
{
	size_t rlen = strlen(path) + strlen(host) + 128;
	struct direct_run *r = malloc(sizeof(*r) + rlen);

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->req_len = (size_t)snprintf(r->req, rlen,
				      "GET %s%s HTTP/1.1\r\nHost: %s\r\n"
				      "User-Agent: healthreg/" HR_VERSION "\r\n"
				      "Accept: text/plain, text/*, */*\r\n\r\n",
				      *path == '/' ? "" : "/", path, host);
	if (r->req_len >= rlen) {
		free(r);
		return NULL;
	}
	r->fd = -1;
	hr__http_parse_init(&r->parser, false, body_cb, r);
	hr_capture_init(&r->body, HR_OUTPUT_MAX);
	return r;
}

int hr__http_direct_start(struct hr_check *c, hr__http_done_cb done)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct ev_loop *loop = hr__check_loop(c);
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct direct_run *r;
	const char *path;
	char host[96];
	int rc;

	if (!direct_eligible(s, &ss, &sslen, host, sizeof(host), &path))
		return -EAGAIN;
	r = run_new(host, path);
	if (!r)
		return -EAGAIN; /* libcurl reports the shortage */
	r->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (r->fd < 0) {
		run_free(r);
		return -EAGAIN;
	}
	r->base = (struct hr__http_run){ &direct_engine, c, done };
	r->started = ev_now(loop);
	ev_init(&r->io, direct_io_cb);
	ev_timer_init(&r->timer, direct_timeout_cb,
		      (double)s->timeout_ms / 1000.0, 0.);
	*hr__check_run_slot(c) = &r->base;
	if (connect(r->fd, (struct sockaddr *)&ss, sslen) == 0) {
		r->connected = true;
	} else if (errno != EINPROGRESS) {
		connect_failed(r, errno);
		return 0;
	}
	/* On loopback the handshake is usually complete by now: send at
	 * once and save a wakeup; EAGAIN means "not yet connected". */
	rc = direct_send(r);
	if (rc < 0) {
		if (!r->connected)
			connect_failed(r, -rc);
		else
			direct_fail(r, HR__HTTP_E_SEND, -rc);
		return 0;
	}
	r->connected = r->connected || rc > 0;
	r->sending = rc == 0;
	ev_io_set(&r->io, r->fd, r->sending ? EV_WRITE : EV_READ);
	ev_io_start(loop, &r->io);
	ev_timer_start(loop, &r->timer);
	return 0;
}
