/*
 * check_http_direct.c - the direct HTTP/1.1 engine of the http check kind
 * (see check_http.c for when it is used and why): a plain GET of an
 * http:// URL with a numeric host, on the loop, without libcurl.
 *
 *   hr__http_direct_start: socket, connect, send the request at once
 *     (on loopback the handshake is done by then), else on writable
 *   -> readable: status line, headers, body (Content-Length, chunked or
 *      until EOF); the first HR_OUTPUT_MAX body bytes kept
 *   -> done: close with an RST (no TIME_WAIT), hr__http_report()
 *   -> a redirect (3xx + Location) is handed to the libcurl engine at the
 *      Location, so redirect rules stay libcurl's
 * The request bytes are exactly libcurl's, and errors use libcurl's texts
 * (tests/integration/test_http_engines.py compares the two engines).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "check_http.h"
#include "internal.h"

#define HEAD_MAX (100 * 1024) /* libcurl's limit on response headers */
#define INLINE_BODY 128       /* bodies this small live in the run */

enum direct_state { D_CONNECTING, D_HEAD, D_BODY_LEN, D_BODY_EOF,
		    D_CHUNK_SIZE, D_CHUNK_DATA, D_CHUNK_CRLF, D_TRAILER };

struct direct_run {
	int engine;            /* HR__HTTP_ENGINE_DIRECT */
	struct hr_check *c;
	ev_io io;
	ev_timer timer;
	int fd;
	double started;        /* ev_now() at start */
	enum direct_state state;
	bool connected;
	size_t req_len, req_off;
	char *head;            /* response head spanning reads (heap) */
	size_t head_len, head_cap;
	long code;
	char *location;        /* a redirect's Location (heap) */
	int64_t remaining;     /* D_BODY_LEN, D_CHUNK_DATA */
	int64_t content_length; /* -1 unknown */
	char line[128];        /* chunk-size / trailer line */
	size_t line_len;
	char *body;            /* first HR_OUTPUT_MAX body bytes */
	size_t len, total;
	char reason[64];
	char inline_body[INLINE_BODY];
	char req[];            /* the request */
};

/*
 * The direct engine takes only what it reproduces exactly: GET of an
 * http:// URL whose host is a numeric address, no userinfo, a path of
 * plain printable characters without dot segments (libcurl would
 * normalise those), no custom headers, no body, no tls settings.
 * Writes the address, the Host header value and the request target.
 */
static bool direct_eligible(const struct hr_check_spec *s,
			    struct sockaddr_storage *ss, socklen_t *sslen,
			    char *host, size_t hlen, const char **path)
{
	const char *u = s->target, *a, *end, *p, *colon = NULL;
	char addr[64];
	unsigned long port = 80;
	size_t n;

	if ((s->method && strcmp(s->method, "GET")) || s->body ||
	    s->n_headers || s->tls_server_name || strncmp(u, "http://", 7))
		return false;
	a = u + 7;
	end = a + strcspn(a, "/?#");
	if (*end == '#' || memchr(a, '@', (size_t)(end - a)))
		return false;
	if (*a == '[') {
		const char *close = memchr(a, ']', (size_t)(end - a));

		if (!close)
			return false;
		n = (size_t)(close - a - 1);
		if (close + 1 < end) {
			if (close[1] != ':')
				return false;
			colon = close + 1;
		}
		if (n >= sizeof(addr))
			return false;
		memcpy(addr, a + 1, n);
	} else {
		colon = memchr(a, ':', (size_t)(end - a));
		n = (size_t)((colon ? colon : end) - a);
		if (n >= sizeof(addr))
			return false;
		memcpy(addr, a, n);
	}
	addr[n] = '\0';
	if (colon) {
		const char *d;

		port = 0;
		if (colon + 1 == end || end - colon > 6)
			return false;
		for (d = colon + 1; d < end; d++) {
			if (*d < '0' || *d > '9')
				return false;
			port = port * 10 + (unsigned long)(*d - '0');
		}
		if (!port || port > 65535)
			return false;
	}
	if (hr__sockaddr_numeric(*a == '[' ? AF_INET6 : AF_INET, addr,
				 (unsigned)port, ss, sslen))
		return false;
	/* libcurl leaves out the default port */
	if (*a == '[' && port == 80)
		snprintf(host, hlen, "[%s]", addr);
	else if (*a == '[')
		snprintf(host, hlen, "[%s]:%lu", addr, port);
	else if (port == 80)
		snprintf(host, hlen, "%s", addr);
	else
		snprintf(host, hlen, "%s:%lu", addr, port);
	/* the path: printable, no fragment, no dot segments */
	for (p = end; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    *p == '#' || *p == '\\')
			return false;
	for (p = end; *p && *p != '?'; p++)
		if (*p == '/' && p[1] == '.' &&
		    (p[2] == '/' || p[2] == '?' || !p[2] ||
		     (p[2] == '.' && (p[3] == '/' || p[3] == '?' || !p[3]))))
			return false;
	*path = end;
	return true;
}

static void direct_free(struct direct_run *r)
{
	struct ev_loop *loop = hr__check_loop(r->c);

	ev_io_stop(loop, &r->io);
	ev_timer_stop(loop, &r->timer);
	if (r->fd >= 0)
		hr__close_rst(r->fd);
	free(r->head);
	free(r->location);
	if (r->body != r->inline_body)
		free(r->body);
	free(r);
}

static long ms_since(struct direct_run *r)
{
	struct ev_loop *loop = hr__check_loop(r->c);

	ev_now_update(loop);
	return (long)((ev_now(loop) - r->started) * 1000.0);
}

/* End the run with a transport error, in libcurl's words. */
static void direct_fail(struct direct_run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void direct_fail(struct direct_run *r, const char *fmt, ...)
{
	struct hr_check *c = r->c;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*hr__check_run_slot(c) = NULL;
	direct_free(r);
	hr__http_report_error(c, msg);
}

static void connect_failed(struct direct_run *r, int e)
{
	char addr[64] = "";
	const char *a = hr__check_spec(r->c)->target + 7, *end;
	size_t n;
	unsigned port = 80;

	/* host and port as libcurl prints them */
	if (*a == '[') {
		end = strchr(a, ']');
		n = (size_t)(end - a - 1);
		memcpy(addr, a + 1, n < sizeof(addr) ? n : sizeof(addr) - 1);
		addr[n < sizeof(addr) ? n : sizeof(addr) - 1] = '\0';
		a = end + 1;
	} else {
		n = strcspn(a, ":/?");
		memcpy(addr, a, n < sizeof(addr) ? n : sizeof(addr) - 1);
		addr[n < sizeof(addr) ? n : sizeof(addr) - 1] = '\0';
		a += n;
	}
	if (*a == ':')
		port = (unsigned)strtoul(a + 1, NULL, 10);
	if (e == ETIMEDOUT)
		direct_fail(r, "Failed to connect to %s port %u after %ld ms: "
			       "Timeout was reached", addr, port, ms_since(r));
	else
		direct_fail(r, "Failed to connect to %s port %u after %ld ms: "
			       "Couldn't connect to server", addr, port,
			    ms_since(r));
}

/* A complete response: classify and finish, or follow a redirect. */
static void direct_done(struct direct_run *r)
{
	struct hr_check *c = r->c;
	const struct hr_check_spec *s = hr__check_spec(c);

	*hr__check_run_slot(c) = NULL;
	if (r->location && !s->disable_redirects) {
		/* libcurl follows from here, with its rules and limits */
		struct hr_err err = { "" };
		CURLU *u = curl_url();
		char *next = NULL;
		int rc = -ENOMEM;

		if (u && !curl_url_set(u, CURLUPART_URL, s->target, 0) &&
		    !curl_url_set(u, CURLUPART_URL, r->location,
				  CURLU_NON_SUPPORT_SCHEME) &&
		    !curl_url_get(u, CURLUPART_URL, &next, 0))
			rc = 0;
		curl_url_cleanup(u);
		direct_free(r);
		if (!rc)
			rc = hr__http_curl_start(c, next, 1, &err);
		curl_free(next);
		if (rc)
			hr__http_report_error(c, err.msg[0] ? err.msg
							    : "redirect failed");
		return;
	}
	hr__http_report(c, r->code, r->reason, r->body, r->len, r->total);
	direct_free(r);
}

static void body_add(struct direct_run *r, const char *p, size_t n)
{
	size_t room;

	r->total += n;
	if (r->len >= HR_OUTPUT_MAX || !n)
		return;
	if (!r->body) {
		r->body = r->inline_body;
	}
	if (r->body == r->inline_body && r->len + n > INLINE_BODY) {
		char *b = malloc(HR_OUTPUT_MAX);

		if (!b)
			return; /* drop the body, keep the check */
		memcpy(b, r->inline_body, r->len);
		r->body = b;
	}
	room = HR_OUTPUT_MAX - r->len;
	memcpy(r->body + r->len, p, n < room ? n : room);
	r->len += n < room ? n : room;
}

/* Body bytes up to r->remaining from [*p, e); true once none remain. */
static bool take_remaining(struct direct_run *r, const char **p,
			   const char *e)
{
	size_t k = (size_t)(e - *p);

	if ((int64_t)k > r->remaining)
		k = (size_t)r->remaining;
	body_add(r, *p, k);
	*p += k;
	r->remaining -= (int64_t)k;
	return r->remaining == 0;
}

static bool header_is(const char *line, size_t n, const char *name,
		      const char **value, size_t *vlen)
{
	size_t k = strlen(name);
	const char *v, *e = line + n;

	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return false;
	for (v = line + k + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*value = v;
	*vlen = (size_t)(e - v);
	return true;
}

/*
 * Parse one complete response head (status line + headers, ending with
 * the empty line). Returns 0, 1 for an interim (1xx) response to skip,
 * or -1 for a reply that is not HTTP/1.x.
 */
static int parse_head(struct direct_run *r, const char *h, size_t n)
{
	const char *p = h, *e = h + n, *eol, *v;
	size_t vlen, i;
	bool chunked = false;

	eol = memchr(p, '\n', (size_t)(e - p));
	if (!eol || (size_t)(eol - p) < 12 || strncmp(p, "HTTP/1.", 7) ||
	    p[8] != ' ' || p[9] < '0' || p[9] > '9' || p[10] < '0' ||
	    p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	r->code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	r->reason[0] = '\0';
	if (p[12] == ' ') {
		const char *sp = p + 13;

		for (i = 0; sp + i < eol && i + 1 < sizeof(r->reason) &&
			    sp[i] != '\r'; i++)
			r->reason[i] = sp[i];
		r->reason[i] = '\0';
	}
	if (r->code >= 100 && r->code < 200 && r->code != 101)
		return 1;
	r->content_length = -1;
	free(r->location);
	r->location = NULL;
	for (p = eol + 1; p < e; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(e - p));
		if (!eol)
			break;
		if (header_is(p, (size_t)(eol - p), "Content-Length", &v,
			      &vlen)) {
			int64_t cl = 0;

			for (i = 0; i < vlen && v[i] >= '0' && v[i] <= '9' &&
				    cl < INT64_MAX / 10; i++)
				cl = cl * 10 + (v[i] - '0');
			if (i == vlen && vlen)
				r->content_length = cl;
		} else if (header_is(p, (size_t)(eol - p),
				     "Transfer-Encoding", &v, &vlen)) {
			chunked = vlen >= 7 &&
				  !strncasecmp(v + vlen - 7, "chunked", 7);
		} else if (header_is(p, (size_t)(eol - p), "Location", &v,
				     &vlen) && r->code >= 300 && r->code < 400 &&
			   r->code != 304 && vlen) {
			free(r->location);
			r->location = strndup(v, vlen);
		}
	}
	if (r->code == 204 || r->code == 304 || r->code == 101) {
		r->state = D_BODY_LEN;
		r->remaining = 0;
	} else if (chunked) {
		r->state = D_CHUNK_SIZE;
		r->line_len = 0;
	} else if (r->content_length >= 0) {
		r->state = D_BODY_LEN;
		r->remaining = r->content_length;
	} else {
		r->state = D_BODY_EOF;
	}
	return 0;
}

/* The end of the head ("\r\n\r\n" or "\n\n"): offset past it, or 0. */
static size_t head_end(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] == '\n' &&
		    ((i >= 1 && p[i - 1] == '\n') ||
		     (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')))
			return i + 1;
	return 0;
}

/* One line of a chunked body's framing into r->line. true: complete. */
static bool chunk_line(struct direct_run *r, const char **p, const char *e)
{
	while (*p < e) {
		char ch = *(*p)++;

		if (ch == '\n')
			return true;
		if (r->line_len + 1 < sizeof(r->line))
			r->line[r->line_len++] = ch;
	}
	return false;
}

/*
 * Feed received bytes. Returns 1 when the response is complete, 0 for
 * more, -1 on a protocol error (message in err).
 */
static int direct_feed(struct direct_run *r, const char *p, size_t n,
		       const char **err)
{
	const char *e = p + n;

	while (p < e || r->state == D_BODY_LEN) {
		switch (r->state) {
		case D_CONNECTING:
			return -1;
		case D_HEAD: {
			const char *h = p;
			size_t hn = (size_t)(e - p), end;
			int rc;

			if (r->head_len) {
				/* continue a head that spans reads */
				size_t need = r->head_len + hn;

				if (need > HEAD_MAX) {
					*err = "Too large response headers";
					return -1;
				}
				if (need > r->head_cap) {
					char *b = realloc(r->head, need);

					if (!b) {
						*err = "Out of memory";
						return -1;
					}
					r->head = b;
					r->head_cap = need;
				}
				memcpy(r->head + r->head_len, p, hn);
				end = head_end(r->head, need);
				if (!end) {
					r->head_len = need;
					return 0;
				}
				rc = parse_head(r, r->head, end);
				p += end - r->head_len;
				r->head_len = 0;
			} else {
				end = head_end(h, hn);
				if (!end) {
					if (hn > HEAD_MAX) {
						*err = "Too large response headers";
						return -1;
					}
					r->head = malloc(hn > 512 ? hn : 512);
					if (!r->head) {
						*err = "Out of memory";
						return -1;
					}
					r->head_cap = hn > 512 ? hn : 512;
					memcpy(r->head, h, hn);
					r->head_len = hn;
					return 0;
				}
				rc = parse_head(r, h, end);
				p += end;
			}
			if (rc < 0) {
				*err = "Received HTTP/0.9 when not allowed";
				return -1;
			}
			break; /* 1xx: the next head follows in D_HEAD */
		}
		case D_BODY_LEN:
			return take_remaining(r, &p, e) ? 1 : 0;
		case D_BODY_EOF:
			body_add(r, p, (size_t)(e - p));
			return 0;
		case D_CHUNK_SIZE: {
			int64_t size = 0;
			size_t i;

			if (!chunk_line(r, &p, e))
				return 0;
			for (i = 0; i < r->line_len; i++) {
				char ch = r->line[i];
				int d;

				if (ch >= '0' && ch <= '9')
					d = ch - '0';
				else if (ch >= 'a' && ch <= 'f')
					d = ch - 'a' + 10;
				else if (ch >= 'A' && ch <= 'F')
					d = ch - 'A' + 10;
				else
					break;
				if (size > INT64_MAX / 16) {
					*err = "invalid chunk size";
					return -1;
				}
				size = size * 16 + d;
			}
			if (!i) {
				*err = "Illegal or missing hexadecimal sequence in chunked-encoding";
				return -1;
			}
			r->line_len = 0;
			r->remaining = size;
			r->state = size ? D_CHUNK_DATA : D_TRAILER;
			break;
		}
		case D_CHUNK_DATA:
			if (take_remaining(r, &p, e)) {
				r->state = D_CHUNK_CRLF;
				r->line_len = 0;
			}
			break;
		case D_CHUNK_CRLF:
			if (!chunk_line(r, &p, e))
				return 0;
			r->line_len = 0;
			r->state = D_CHUNK_SIZE;
			break;
		case D_TRAILER:
			if (!chunk_line(r, &p, e))
				return 0;
			if (r->line_len == 0 ||
			    (r->line_len == 1 && r->line[0] == '\r'))
				return 1;
			r->line_len = 0;
			break;
		}
	}
	return 0;
}

static void direct_read(struct direct_run *r)
{
	char buf[16384];
	const char *err = NULL;
	ssize_t n;
	int rc;

	for (;;) {
		n = recv(r->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			direct_fail(r, "Recv failure: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			/* EOF: the end of an until-close body, else short */
			if (r->state == D_BODY_EOF) {
				direct_done(r);
			} else if (r->state == D_HEAD && !r->head_len) {
				direct_fail(r, "Empty reply from server");
			} else if (r->state == D_BODY_LEN) {
				direct_fail(r, "transfer closed with %lld bytes "
					       "remaining to read",
					    (long long)r->remaining);
			} else if (r->state == D_HEAD) {
				direct_fail(r, "Weird server reply");
			} else {
				direct_fail(r, "transfer closed with outstanding "
					       "read data remaining");
			}
			return;
		}
		rc = direct_feed(r, buf, (size_t)n, &err);
		if (rc < 0) {
			direct_fail(r, "%s", err);
			return;
		}
		if (rc > 0) {
			direct_done(r);
			return;
		}
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

static void direct_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct direct_run *r = container_of(w, struct direct_run, io);
	int rc;

	(void)revents;
	if (r->state == D_CONNECTING) {
		if (!r->connected) {
			int so_error = 0;
			socklen_t len = sizeof(so_error);

			if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &so_error,
				       &len) < 0)
				so_error = errno;
			if (so_error) {
				connect_failed(r, so_error);
				return;
			}
			r->connected = true;
		}
		rc = direct_send(r);
		if (rc < 0) {
			direct_fail(r, "Send failure: %s", strerror(-rc));
			return;
		}
		if (!rc)
			return;
		r->state = D_HEAD;
		ev_io_stop(loop, &r->io);
		ev_io_set(&r->io, r->fd, EV_READ);
		ev_io_start(loop, &r->io);
		return;
	}
	direct_read(r);
}

static void direct_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct direct_run *r = container_of(w, struct direct_run, timer);
	long ms = ms_since(r);

	(void)loop;
	(void)revents;
	if (r->state == D_CONNECTING && !r->connected)
		direct_fail(r, "Connection timed out after %ld milliseconds",
			    ms);
	else if (r->content_length >= 0 && r->state == D_BODY_LEN)
		direct_fail(r, "Operation timed out after %ld milliseconds "
			       "with %zu out of %lld bytes received",
			    ms, r->total, (long long)r->content_length);
	else
		direct_fail(r, "Operation timed out after %ld milliseconds "
			       "with %zu bytes received", ms, r->total);
}

/*
 * Start a run on the direct engine. Returns -EAGAIN when the check is
 * not for it (the caller uses libcurl), else 0: the run is in flight or
 * has already finished (a failed connect).
 */
int hr__http_direct_start(struct hr_check *c)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct ev_loop *loop = hr__check_loop(c);
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct direct_run *r;
	const char *path;
	char host[96];
	size_t rlen;
	int rc;

	if (!direct_eligible(s, &ss, &sslen, host, sizeof(host), &path))
		return -EAGAIN;
	rlen = strlen(path) + strlen(host) + 128;
	r = malloc(sizeof(*r) + rlen);
	if (!r)
		return -EAGAIN; /* libcurl reports the shortage */
	memset(r, 0, sizeof(*r));
	r->engine = HR__HTTP_ENGINE_DIRECT;
	r->c = c;
	r->content_length = -1;
	r->started = ev_now(loop);
	/* byte for byte what libcurl sends for this check */
	r->req_len = (size_t)snprintf(r->req, rlen,
				      "GET %s%s HTTP/1.1\r\nHost: %s\r\n"
				      "User-Agent: healthreg/" HR_VERSION "\r\n"
				      "Accept: text/plain, text/*, */*\r\n\r\n",
				      *path == '/' ? "" : "/", path, host);
	if (r->req_len >= rlen) {
		free(r);
		return -EAGAIN;
	}
	r->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (r->fd < 0) {
		free(r);
		return -EAGAIN;
	}
	ev_init(&r->io, direct_io_cb);
	ev_timer_init(&r->timer, direct_timeout_cb,
		      (double)s->timeout_ms / 1000.0, 0.);
	*hr__check_run_slot(c) = r;
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
			direct_fail(r, "Send failure: %s", strerror(-rc));
		return 0;
	}
	if (rc > 0) {
		r->connected = true;
		r->state = D_HEAD;
		ev_io_set(&r->io, r->fd, EV_READ);
	} else {
		r->state = D_CONNECTING;
		ev_io_set(&r->io, r->fd, EV_WRITE);
	}
	ev_io_start(loop, &r->io);
	ev_timer_start(loop, &r->timer);
	return 0;
}

void hr__http_direct_cancel(struct hr_check *c)
{
	struct direct_run *r = *hr__check_run_slot(c);

	*hr__check_run_slot(c) = NULL;
	direct_free(r);
}
