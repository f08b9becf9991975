/*
 * check_tcp.c - the tcp check kind: a non-blocking connect.
 *
 *   start(): resolve (numeric fast path), socket, connect -> EINPROGRESS
 *     -> io_cb (writable: SO_ERROR) | timeout_cb
 *   finish(): close with an RST (no TIME_WAIT pile-up), report.
 *
 * Like HAProxy's connect-only check, the socket asks for delayed ACKs
 * (TCP_QUICKACK off) before connecting: the SYN-ACK completes the connect
 * and the RST at close goes out before any ACK, so a check costs three
 * segments instead of four and the target never has to accept() and
 * tear down a connection. The result is the same: the port answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

struct tcp_run {
	struct hr_check *c;
	ev_io io;
	ev_timer timer;
	int fd;
};

static int split_hostport(const char *target, char *host, size_t hlen,
			  char *port, size_t plen)
{
	const char *colon;
	size_t n;

	if (target[0] == '[') {
		const char *close = strchr(target, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = (size_t)(close - target - 1);
		colon = close + 1;
		if (n >= hlen)
			return -EINVAL;
		memcpy(host, target + 1, n);
	} else {
		colon = strrchr(target, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - target);
		if (n >= hlen)
			return -EINVAL;
		memcpy(host, target, n);
	}
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

int hr__sockaddr_numeric(int family, const char *host, unsigned port,
			 struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if ((family == AF_UNSPEC || family == AF_INET) &&
	    inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	if ((family == AF_UNSPEC || family == AF_INET6) &&
	    inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	return -1;
}

/*
 * Numeric "a.b.c.d:port" or "[v6]:port" without getaddrinfo (the common
 * case, run every interval). Returns 0, or -1 to take the resolver path
 * (host names, scoped or unusual forms), which gives the same answers.
 */
static int numeric_addr(const char *host, const char *port,
			struct sockaddr_storage *ss, socklen_t *len)
{
	unsigned long p = 0;
	size_t i;

	for (i = 0; port[i]; i++) {
		if (port[i] < '0' || port[i] > '9' || i >= 5)
			return -1;
		p = p * 10 + (unsigned long)(port[i] - '0');
	}
	if (!i || p > 65535)
		return -1;
	return hr__sockaddr_numeric(AF_UNSPEC, host, (unsigned)p, ss, len);
}

void hr__close_rst(int fd)
{
	struct linger lg = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void tcp_close(struct tcp_run *r)
{
	struct ev_loop *loop = hr__check_loop(r->c);

	ev_io_stop(loop, &r->io);
	ev_timer_stop(loop, &r->timer);
	if (r->fd >= 0) {
		hr__close_rst(r->fd);
		r->fd = -1;
	}
}

static void tcp_done(struct tcp_run *r, int so_error)
{
	struct hr_check *c = r->c;
	const struct hr_check_spec *s = hr__check_spec(c);
	char out[512];
	int n;

	tcp_close(r);
	*hr__check_run_slot(c) = NULL;
	free(r);
	if (so_error == 0)
		n = snprintf(out, sizeof(out), "TCP connect %s: Success",
			     s->target);
	else if (so_error == ETIMEDOUT)
		n = snprintf(out, sizeof(out),
			     "dial tcp %s: i/o timeout after %lldms", s->target,
			     (long long)s->timeout_ms);
	else
		n = snprintf(out, sizeof(out), "dial tcp %s: connect: %s",
			     s->target, strerror(so_error));
	if (n < 0 || (size_t)n >= sizeof(out))
		n = (int)strlen(out);
	hr__check_finish(c, so_error ? HR_STATUS_CRITICAL : HR_STATUS_PASSING,
			 out, (size_t)n, (size_t)n);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tcp_run *r = container_of(w, struct tcp_run, io);
	int so_error = 0;
	socklen_t len = sizeof(so_error);

	(void)loop;
	(void)revents;
	if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
		so_error = errno;
	tcp_done(r, so_error);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tcp_run *r = container_of(w, struct tcp_run, timer);

	(void)loop;
	(void)revents;
	tcp_done(r, ETIMEDOUT);
}

static int tcp_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct ev_loop *loop = hr__check_loop(c);
	struct addrinfo hints, *ai = NULL, fast;
	const struct addrinfo *use = &fast;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct tcp_run *r = NULL;
	char host[256], port[16];
	int rc, gai, zero = 0;

	if (split_hostport(s->target, host, sizeof(host), port, sizeof(port)))
		return hr_err_set(err, -EINVAL, "dial tcp %s: bad address",
				  s->target);
	if (numeric_addr(host, port, &ss, &sslen) == 0) {
		memset(&fast, 0, sizeof(fast));
		fast.ai_family = ss.ss_family;
		fast.ai_socktype = SOCK_STREAM;
		fast.ai_protocol = IPPROTO_TCP;
		fast.ai_addr = (struct sockaddr *)&ss;
		fast.ai_addrlen = sslen;
		goto resolved;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	gai = getaddrinfo(host, port, &hints, &ai);
	if (gai == EAI_NONAME) {
		/* A host name: the system resolver (usually /etc/hosts for
		 * local targets). Prefer addresses in configs. */
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		gai = getaddrinfo(host, port, &hints, &ai);
	}
	if (gai)
		return hr_err_set(err, -EHOSTUNREACH, "dial tcp %s: lookup %s: %s",
				  s->target, host, gai_strerror(gai));
	use = ai;
resolved:
	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = hr_err_set(err, -ENOMEM, "out of memory");
		goto cleanup;
	}
	r->c = c;
	r->fd = socket(use->ai_family,
		       use->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       use->ai_protocol);
	if (r->fd < 0) {
		rc = hr_err_set(err, -errno, "dial tcp %s: socket: %s",
				s->target, strerror(errno));
		goto cleanup;
	}
	setsockopt(r->fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
	ev_io_init(&r->io, io_cb, r->fd, EV_WRITE);
	ev_timer_init(&r->timer, timeout_cb, (double)s->timeout_ms / 1000.0, 0.);
	*hr__check_run_slot(c) = r;
	if (connect(r->fd, use->ai_addr, use->ai_addrlen) == 0) {
		if (ai)
			freeaddrinfo(ai);
		tcp_done(r, 0);
		return 0;
	}
	if (errno != EINPROGRESS) {
		int e = errno;

		if (ai)
			freeaddrinfo(ai);
		tcp_done(r, e);
		return 0;
	}
	ev_io_start(loop, &r->io);
	ev_timer_start(loop, &r->timer);
	if (ai)
		freeaddrinfo(ai);
	return 0;
cleanup:
	if (r) {
		if (r->fd >= 0)
			close(r->fd);
		free(r);
	}
	*hr__check_run_slot(c) = NULL;
	if (ai)
		freeaddrinfo(ai);
	return rc;
}

static void tcp_cancel(struct hr_check *c)
{
	struct tcp_run *r = *hr__check_run_slot(c);

	if (!r)
		return;
	tcp_close(r);
	*hr__check_run_slot(c) = NULL;
	free(r);
}

const struct hr__check_kind hr__check_tcp = {
	.start = tcp_start,
	.cancel = tcp_cancel,
};
