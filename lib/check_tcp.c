/*
 * check_tcp.c - the tcp check kind: a non-blocking connect.
 *
 *   start(): split "host:port"
 *     numeric address -> connect_begin()        (no resolver, no allocation
 *                                                but the run itself)
 *     host name       -> name_begin(): libcurl resolves it on its resolver
 *       thread (a CONNECT_ONLY transfer on the shared multi handle whose
 *       opensocket callback keeps the first address and declines to open
 *       a socket) -> name_done() -> connect_begin()
 *   connect_begin(): socket, connect -> EINPROGRESS
 *     -> io_cb (writable: SO_ERROR) | timeout_cb
 *   tcp_done(): release the run, then report; the only way a started run
 *     ends.
 *
 * Like HAProxy's connect-only check, the socket asks for delayed ACKs
 * (TCP_QUICKACK off) before connecting: the SYN-ACK completes the connect
 * and the RST at close goes out before any ACK, so a check costs three
 * segments instead of four and the target never has to accept() and
 * tear down a connection. The result is the same: the port answered.
 *
 * Why libcurl's resolver (docs/checks.md): it is already linked and already
 * resolves every http check's name, through getaddrinfo() and so through
 * nsswitch like the rest of the system; c-ares would be a second resolver
 * with its own idea of /etc/hosts and DNS, and getaddrinfo_a() would need
 * our own thread-to-loop notification and lifetime rules. The timeout covers
 * resolving and connecting; an abandoned lookup is left to finish on
 * libcurl's thread (CURLOPT_QUICK_EXIT, set by hr_http_start()), the loop
 * never waits for it.
 *
 * Ownership: struct tcp_run is one run's state. start() allocates it and
 * puts it in the check's run slot; it is freed by tcp_release(), called by
 * tcp_done() before hr__check_finish() and by cancel. While a name
 * resolves the run also owns a struct tcp_name and, through it, an easy
 * handle borrowed from the shared pool; tcp_release() cancels that
 * transfer (no callback follows) and returns the handle. cancel() stops
 * every watcher, closes the socket with an RST and reports nothing.
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

#include <curl/curl.h>

#if LIBCURL_VERSION_NUM < 0x075700
#error "the tcp kind needs libcurl >= 7.87.0 (CURLOPT_QUICK_EXIT in hr_http_start)"
#endif

#include "check.h"
#include "healthreg/http.h"
#include "internal.h"

/* A host name being resolved; owned by its run. */
struct tcp_name {
	CURL *easy;                 /* the lookup's transfer, NULL once done */
	struct sockaddr_storage ss; /* the first address libcurl offered */
	socklen_t sslen;            /* 0 until then */
	char host[256];
	char url[300];              /* http://host:port, for libcurl */
};

struct tcp_run {
	struct hr_check *c;
	ev_io io;
	ev_timer timer;  /* the run's deadline, resolving included */
	int fd;
	struct tcp_name *name; /* NULL for numeric addresses */
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

/* Up to five decimal digits, 0..65535: the port, or -1. */
static long parse_port(const char *port)
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
	return (long)p;
}

/*
 * Numeric "a.b.c.d:port" or "[v6]:port" without getaddrinfo (the common
 * case, run every interval). Returns 0, or -1 to take the slower path
 * (host names, scoped or unusual forms), which gives the same answers.
 */
static int numeric_addr(const char *host, const char *port,
			struct sockaddr_storage *ss, socklen_t *len)
{
	long p = parse_port(port);

	if (p < 0)
		return -1;
	return hr__sockaddr_numeric(AF_UNSPEC, host, (unsigned)p, ss, len);
}

void hr__close_rst(int fd)
{
	struct linger lg = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Stops everything the run holds and frees it; the slot is cleared. */
static void tcp_release(struct tcp_run *r)
{
	struct hr_check *c = r->c;
	struct ev_loop *loop = hr__check_loop(c);

	ev_io_stop(loop, &r->io);
	ev_timer_stop(loop, &r->timer);
	if (r->fd >= 0)
		hr__close_rst(r->fd);
	if (r->name) {
		if (r->name->easy) {
			struct hr_http *h = hr__check_http_glue(c);

			hr_http_cancel(h, r->name->easy);
			hr_http_easy_put(h, r->name->easy);
		}
		free(r->name);
	}
	*hr__check_run_slot(c) = NULL;
	free(r);
}

/* Ends the run with out (n bytes); nothing touches r or c afterwards. */
static void tcp_report(struct tcp_run *r, enum hr_status st, const char *out,
		       int n)
{
	struct hr_check *c = r->c;

	if (n < 0)
		n = (int)strlen(out);
	tcp_release(r);
	hr__check_finish(c, st, out, (size_t)n, (size_t)n);
}

static void tcp_done(struct tcp_run *r, int so_error)
{
	const struct hr_check_spec *s = hr__check_spec(r->c);
	char out[512];
	int n;

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
		n = -1;
	tcp_report(r, so_error ? HR_STATUS_CRITICAL : HR_STATUS_PASSING, out, n);
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

/*
 * Connect r to sa. 0: the run goes on, or has already ended (connect
 * answered at once). Negative errno with err set: no socket could be
 * made; r is untouched and still the caller's to end.
 */
static int connect_begin(struct tcp_run *r, const struct sockaddr *sa,
			 socklen_t len, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(r->c);
	struct ev_loop *loop = hr__check_loop(r->c);
	int zero = 0;

	r->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       IPPROTO_TCP);
	if (r->fd < 0)
		return hr_err_set(err, -errno, "dial tcp %s: socket: %s",
				  s->target, strerror(errno));
	setsockopt(r->fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
	if (connect(r->fd, sa, len) == 0) {
		tcp_done(r, 0);
		return 0;
	}
	if (errno != EINPROGRESS) {
		tcp_done(r, errno);
		return 0;
	}
	ev_io_set(&r->io, r->fd, EV_WRITE);
	ev_io_start(loop, &r->io);
	if (!ev_is_active(&r->timer))
		ev_timer_start(loop, &r->timer);
	return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: keep the first address, open nothing. */
static curl_socket_t name_opensocket(void *p, curlsocktype purpose,
				     struct curl_sockaddr *a)
{
	struct tcp_name *n = p;

	if (purpose == CURLSOCKTYPE_IPCXN && !n->sslen &&
	    a->addrlen <= sizeof(n->ss)) {
		memcpy(&n->ss, &a->addr, a->addrlen);
		n->sslen = (socklen_t)a->addrlen;
	}
	return CURL_SOCKET_BAD; /* we connect ourselves: connect_begin() */
}

/* The lookup's transfer has ended (declined at its first socket). */
static void name_done(CURL *easy, CURLcode rc, void *payload)
{
	struct tcp_run *r = payload;
	struct tcp_name *n = r->name;
	const struct hr_check_spec *s = hr__check_spec(r->c);
	struct hr_err err = { "" };
	char out[512];
	int len;

	hr_http_easy_put(hr__check_http_glue(r->c), easy);
	n->easy = NULL;
	if (n->sslen) {
		if (connect_begin(r, (struct sockaddr *)&n->ss, n->sslen,
				  &err) < 0)
			tcp_report(r, HR_STATUS_CRITICAL, err.msg, -1);
		return;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		tcp_done(r, ETIMEDOUT);
		return;
	}
	len = snprintf(out, sizeof(out), "dial tcp %s: lookup %s: %s",
		       s->target, n->host, curl_easy_strerror(rc));
	if (len < 0 || (size_t)len >= sizeof(out))
		len = -1;
	tcp_report(r, HR_STATUS_CRITICAL, out, len);
}

/* Letters, digits, '-', '.' and '_': nothing a URL would read otherwise. */
static bool plain_name(const char *host)
{
	const char *p;

	for (p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '_'))
			return false;
	return p != host;
}

static void name_setopts(CURL *e, struct tcp_name *n)
{
	curl_easy_setopt(e, CURLOPT_URL, n->url);
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, name_opensocket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, n);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	/* Resolved at each run, as the system resolver would. */
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	/* hr_http_start() sets CURLOPT_QUICK_EXIT: a lookup abandoned by
	 * timeout or cancel is not waited for. */
}

/*
 * Resolve host off the loop, then connect. 0: the run goes on; negative
 * errno with err set: r is untouched and still the caller's.
 */
static int name_begin(struct tcp_run *r, const char *host, const char *port,
		      struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(r->c);
	struct hr_http *h = hr__check_http_glue(r->c);
	struct tcp_name *n;
	char *end;
	long p = strtol(port, &end, 10);
	int rc;

	/* What getaddrinfo(AI_NUMERICSERV) would have refused. */
	if (*end || end == port || p < 0 || p > 65535 || !plain_name(host))
		return hr_err_set(err, -EINVAL, "dial tcp %s: lookup %s: %s",
				  s->target, host, gai_strerror(EAI_NONAME));
	n = calloc(1, sizeof(*n));
	if (n)
		n->easy = hr_http_easy_get(h);
	if (!n || !n->easy) {
		free(n);
		return hr_err_set(err, -ENOMEM, "out of memory");
	}
	snprintf(n->host, sizeof(n->host), "%s", host);
	snprintf(n->url, sizeof(n->url), "http://%s:%ld/", host, p);
	name_setopts(n->easy, n);
	rc = hr_http_start(h, n->easy, name_done, r);
	if (rc < 0) {
		hr_http_easy_put(h, n->easy);
		free(n);
		return hr_err_set(err, rc, "dial tcp %s: lookup %s: %s",
				  s->target, host, strerror(-rc));
	}
	r->name = n;
	ev_timer_start(hr__check_loop(r->c), &r->timer);
	return 0;
}

/*
 * Scoped or unusual numeric forms ("fe80::1%eth0", "127.1") through
 * getaddrinfo(AI_NUMERICHOST), which never blocks. EAI_NONAME: host is a
 * name. Otherwise as connect_begin().
 */
static int numeric_slow(struct tcp_run *r, const char *host, const char *port,
			struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(r->c);
	struct addrinfo hints, *ai = NULL;
	int gai, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	gai = getaddrinfo(host, port, &hints, &ai);
	if (gai == EAI_NONAME)
		return name_begin(r, host, port, err);
	if (gai)
		return hr_err_set(err, -EHOSTUNREACH,
				  "dial tcp %s: lookup %s: %s", s->target,
				  host, gai_strerror(gai));
	rc = connect_begin(r, ai->ai_addr, ai->ai_addrlen, err);
	freeaddrinfo(ai);
	return rc;
}

static int tcp_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct tcp_run *r;
	char host[256], port[16];
	int rc;

	if (split_hostport(s->target, host, sizeof(host), port, sizeof(port)))
		return hr_err_set(err, -EINVAL, "dial tcp %s: bad address",
				  s->target);
	r = calloc(1, sizeof(*r));
	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->c = c;
	r->fd = -1;
	ev_init(&r->io, io_cb);
	ev_timer_init(&r->timer, timeout_cb, (double)s->timeout_ms / 1000.0, 0.);
	*hr__check_run_slot(c) = r;
	if (numeric_addr(host, port, &ss, &sslen) == 0)
		rc = connect_begin(r, (struct sockaddr *)&ss, sslen, err);
	else
		rc = numeric_slow(r, host, port, err);
	if (rc < 0)
		tcp_release(r);
	return rc;
}

static void tcp_cancel(struct hr_check *c)
{
	struct tcp_run *r = *hr__check_run_slot(c);

	if (r)
		tcp_release(r);
}

const struct hr__check_kind hr__check_tcp = {
	.start = tcp_start,
	.cancel = tcp_cancel,
};
