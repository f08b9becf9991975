/*
 * fuzz_api.c - the local API (plugin/agent/api.c) in process: two real
 * APIs on libmicrohttpd, one with a token and one without, on a private
 * libev loop with an aggregator of ttl checks; each input becomes one
 * request over loopback TCP, and the loop runs until the server has
 * answered and closed. So route(), the token check, the name decoding and
 * every handler run exactly as in the agent.
 *
 * Input: byte 0 picks the method (bits 0-2: GET, PUT, HEAD, POST, DELETE,
 * OPTIONS, PATCH, "get") and who asks (bits 3-4: no token, the token, a
 * wrong one, or the API without a token); then the request target up to
 * the first '\n' (bytes that cannot stand in a request line are
 * percent-encoded, so any decoded path can be reached); the rest is the
 * body.
 *
 * Properties: an answer comes (within 10 s) and is an HTTP/1.1 response;
 * every JSON body is valid UTF-8 and one JSON value; without the token
 * nothing is changed (no 2xx to a non-GET) and no check output or
 * check list is shown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "api.h"
#include "fuzz.h"
#include "state.h"
#include "healthreg/aggregator.h"
#include "healthreg/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define TOKEN "s3cret-fuzz-token"

static const char config[] =
	"{\"service\":{\"name\":\"fuzz\",\"port\":8080,\"checks\":["
	"{\"name\":\"ok\",\"ttl\":\"1h\"},"
	"{\"name\":\"web\",\"ttl\":\"1h\"},"
	"{\"name\":\"a/pass\",\"ttl\":\"1h\"},"
	"{\"name\":\"a\",\"ttl\":\"1h\"},"
	"{\"name\":\"x y\",\"ttl\":\"1h\"},"
	"{\"name\":\"\xc3\xbc\",\"ttl\":\"1h\"}]}}";

static struct {
	struct ev_loop *loop;
	struct hr_config *cfg;
	struct hr_agg *agg;
	struct hr_api *api_token, *api_open;
	bool maint;
	char reason[HR_MAINT_REASON_MAX + 1];
} w;

/* ---- the host: what the agent lends the API ----------------------------- */

static size_t host_n_services(void *ctx)
{
	(void)ctx;
	return 1;
}

static void host_service(void *ctx, size_t i, struct hr_api_service *out)
{
	(void)ctx;
	(void)i;
	memset(out, 0, sizeof(*out));
	out->id = w.cfg->services[0].service.id;
	out->name = w.cfg->services[0].service.name;
	out->agg = w.agg;
}

static bool host_maint_get(void *ctx, const char *service,
			   const char **reason)
{
	(void)ctx;
	(void)service;
	if (reason)
		*reason = w.reason;
	return w.maint;
}

static int host_maint_set(void *ctx, const char *service, bool enable,
			  const char *reason, char *msg, size_t len)
{
	(void)ctx;
	(void)service;
	(void)msg;
	(void)len;
	if (strlen(reason) > HR_MAINT_REASON_MAX)
		return -EMSGSIZE;
	w.maint = enable;
	snprintf(w.reason, sizeof(w.reason), "%s", enable ? reason : "");
	return 0;
}

static int host_reload(void *ctx, char *msg, size_t len)
{
	(void)ctx;
	snprintf(msg, len, "reload: not in the fuzzer");
	return -EINVAL;
}

static char *host_metrics(void *ctx)
{
	(void)ctx;
	return strdup("healthreg_up 1\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct hr_api_host host = {
		.n_services = host_n_services,
		.service = host_service,
		.maint_get = host_maint_get,
		.maint_set = host_maint_set,
		.reload = host_reload,
		.metrics = host_metrics,
		.ctx = NULL,
	};
	struct hr_agg_opts opts = { false, 0, 1 };
	struct hr_err err = { "" };
	struct hr_diag diag;

	(void)argc;
	(void)argv;
	hr_fuzz_quiet();
	w.loop = ev_loop_new(EVFLAG_AUTO);
	hr_diag_init(&diag);
	FUZZ_CHECK(w.loop && !hr_config_parse(&w.cfg, config, strlen(config),
					      NULL, 0, &diag),
		   "the fuzzer's config");
	hr_diag_dispose(&diag);
	FUZZ_CHECK(!hr_agg_new(&w.agg, w.loop, NULL, &opts, &err), err.msg);
	FUZZ_CHECK(!hr_agg_add_config(w.agg, w.cfg, &err), err.msg);
	FUZZ_CHECK(!hr_api_new(&w.api_token, w.loop, "127.0.0.1:0", TOKEN,
			       &host, &err), err.msg);
	FUZZ_CHECK(!hr_api_new(&w.api_open, w.loop, "127.0.0.1:0", NULL,
			       &host, &err), err.msg);
	return 0;
}

/* ---- one request ------------------------------------------------------- */

struct client {
	ev_io io;
	ev_timer timeout;
	char *out;          /* the request */
	size_t out_len, sent;
	char *in;           /* the response */
	size_t in_len;
	bool closed;
};

static void client_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct client *c = (struct client *)io;
	char buf[16384];
	ssize_t n;

	if ((revents & EV_WRITE) && c->sent < c->out_len) {
		n = send(io->fd, c->out + c->sent, c->out_len - c->sent,
			 MSG_NOSIGNAL);
		if (n > 0)
			c->sent += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			c->sent = c->out_len; /* the server closed first */
		if (c->sent == c->out_len) {
			ev_io_stop(loop, io);
			ev_io_set(io, io->fd, EV_READ);
			ev_io_start(loop, io);
		}
	}
	if (!(revents & EV_READ))
		return;
	n = recv(io->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		c->closed = true;
		ev_break(loop, EVBREAK_ONE);
		return;
	}
	c->in = realloc(c->in, c->in_len + (size_t)n + 1);
	FUZZ_CHECK(c->in != NULL, "realloc");
	memcpy(c->in + c->in_len, buf, (size_t)n);
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
}

static void timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	FUZZ_CHECK(0, "the API did not answer and close within 10 s");
}

static int dial(int port)
{
	struct sockaddr_in sa = { 0 };
	struct linger lg = { 1, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	FUZZ_CHECK(fd >= 0, "socket");
	/* Closed with a reset: no TIME_WAIT piling up over a long run. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
			   errno == EINPROGRESS,
		   "connect");
	return fd;
}

/* Send the request, read the whole answer. Returns the response (owned). */
static char *exchange(int port, char *req, size_t len, size_t *resp_len)
{
	struct client c = { .out = req, .out_len = len };

	ev_io_init(&c.io, client_cb, dial(port), EV_WRITE | EV_READ);
	ev_timer_init(&c.timeout, timeout_cb, 10., 0.);
	ev_io_start(w.loop, &c.io);
	ev_timer_start(w.loop, &c.timeout);
	while (!c.closed)
		ev_run(w.loop, 0);
	ev_io_stop(w.loop, &c.io);
	ev_timer_stop(w.loop, &c.timeout);
	close(c.io.fd);
	*resp_len = c.in_len;
	return c.in;
}

/* ---- building the request, judging the answer ---------------------------- */

static const char *const methods[] = {
	"GET", "PUT", "HEAD", "POST", "DELETE", "OPTIONS", "PATCH", "get",
};

/* The request line's target: anything that cannot stand there as is
 * becomes %XX. */
static void put_target(FILE *f, const uint8_t *p, size_t n)
{
	size_t i;

	if (!n || p[0] != '/')
		fputc('/', f);
	for (i = 0; i < n; i++) {
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			fprintf(f, "%%%02X", p[i]);
		else
			fputc(p[i], f);
	}
}

static char *build(unsigned who, const char *method, const uint8_t *data,
		   size_t size, size_t *len)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tlen = nl ? (size_t)(nl - data) : size;
	size_t blen = nl ? size - tlen - 1 : 0;
	char *req = NULL;
	FILE *f = open_memstream(&req, len);

	FUZZ_CHECK(f != NULL, "open_memstream");
	fprintf(f, "%s ", method);
	put_target(f, data, tlen);
	fprintf(f, " HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
	if (who == 1)
		fprintf(f, "Authorization: Bearer " TOKEN "\r\n");
	else if (who == 2)
		fprintf(f, "Authorization: %s\r\n",
			blen & 1 ? "Basic " TOKEN : "Bearer " TOKEN "x");
	fprintf(f, "Content-Length: %zu\r\n\r\n", blen);
	if (blen)
		fwrite(nl + 1, 1, blen, f);
	FUZZ_CHECK(fclose(f) == 0, "fclose");
	return req;
}

static void judge(const char *r, size_t n, bool authorized, bool head,
		  bool get)
{
	const char *body = strstr(r, "\r\n\r\n");
	int code = 0;
	cJSON *doc;

	FUZZ_CHECK(n > 12 && !strncmp(r, "HTTP/1.1 ", 9) &&
			   sscanf(r + 9, "%3d", &code) == 1,
		   "an HTTP/1.1 status line");
	FUZZ_CHECK(body != NULL, "a whole head");
	body += 4;
	if (!authorized && code >= 200 && code <= 299)
		FUZZ_CHECK(get, "a change without the token");
	if (head || !strcasestr(r, "\r\nContent-Type: application/json"))
		return;
	n -= (size_t)(body - r);
	FUZZ_CHECK(memchr(body, '\0', n) == NULL, "no NUL in a JSON body");
	FUZZ_CHECK(hr_fuzz_utf8_valid(body, n), "a JSON body is valid UTF-8");
	doc = cJSON_ParseWithLength(body, n);
	FUZZ_CHECK(doc != NULL, "a JSON body is JSON");
	if (!authorized && code >= 200 && code <= 299) {
		FUZZ_CHECK(!cJSON_GetObjectItemCaseSensitive(doc, "checks") &&
				   !cJSON_GetObjectItemCaseSensitive(doc, "output"),
			   "check outputs shown without the token");
	}
	cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned b = hr_fuzz_take(&data, &size);
	const char *method = methods[b & 7];
	unsigned who = (b >> 3) & 3;
	struct hr_api *api = who == 3 ? w.api_open : w.api_token;
	size_t len, rlen;
	char *req = build(who, method, data, size, &len);
	char *resp = exchange(hr_api_port(api), req, len, &rlen);

	FUZZ_CHECK(resp != NULL, "no answer at all");
	judge(resp, rlen, who == 1 || who == 3, !strcmp(method, "HEAD"),
	      !strcmp(method, "GET") || !strcmp(method, "HEAD"));
	free(resp);
	free(req);
	w.maint = false;
	w.reason[0] = '\0';
	return 0;
}
