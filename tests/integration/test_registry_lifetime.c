/*
 * test_registry_lifetime.c - create() copies what it keeps: each backend
 * is created from a parsed struct hr_config, the config is freed, and the
 * backend then writes (the service fields go into every register / put),
 * shuts down and is destroyed. Under HR_SANITIZE a pointer kept into the
 * freed config is a heap-use-after-free. A loopback fake answers both
 * Consul's and etcd's API on the test's own libev loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ev.h>

#include "consul/consul.h"
#include "etcd/etcd.h"
#include "etcd/etcd_payload.h"
#include "healthreg/config.h"
#include "healthreg/http.h"
#include "loop.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

#define MAX_REQS 256

struct conn {
	ev_io io;
	int fd;
	char buf[65536];
	size_t len;
};

static struct ev_loop *loop;
static struct hr_http *http;
static int lfd, port;
static ev_io accept_io;
static char *paths[MAX_REQS], *bodies[MAX_REQS];
static size_t n_reqs;
static int done_calls;

/* Etcd's gateway answers by path; Consul's agent answers 200 "". */
static const char *answer_for(const char *path)
{
	if (strstr(path, "/v3/lease/grant"))
		return "{\"ID\":\"7587\",\"TTL\":\"10\"}";
	if (strstr(path, "/v3/lease/keepalive"))
		return "{\"result\":{\"ID\":\"7587\",\"TTL\":\"10\"}}";
	if (strstr(path, "/v3/kv/txn"))
		return "{\"succeeded\":true}";
	if (strstr(path, "/v3/"))
		return "{}";
	return "";
}

static void answer(struct conn *c, size_t hdr, size_t clen)
{
	char method[16], path[1024], head[256];
	const char *body;
	ssize_t w;

	sscanf(c->buf, "%15s %1023s", method, path);
	if (n_reqs < MAX_REQS) {
		paths[n_reqs] = strdup(path);
		bodies[n_reqs] = strndup(c->buf + hdr, clen);
		n_reqs++;
	}
	body = answer_for(path);
	snprintf(head, sizeof(head),
		 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n", strlen(body));
	w = write(c->fd, head, strlen(head));
	w = write(c->fd, body, strlen(body));
	(void)w;
}

static void conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = (struct conn *)w;
	ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	char *end, *cl;

	(void)revents;
	if (n > 0) {
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		end = strstr(c->buf, "\r\n\r\n");
		if (!end)
			return;
		cl = strcasestr(c->buf, "Content-Length:");
		if (c->len < (size_t)(end - c->buf) + 4 +
				     (cl && cl < end ? strtoul(cl + 15, NULL, 10)
						     : 0))
			return;
		answer(c, (size_t)(end - c->buf) + 4,
		       cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
	}
	ev_io_stop(l, &c->io);
	close(c->fd);
	free(c);
}

static void accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	int fd = accept(lfd, NULL, NULL);
	struct conn *c;

	(void)w;
	(void)revents;
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	c->fd = fd;
	ev_io_init(&c->io, conn_cb, fd, EV_READ);
	ev_io_start(l, &c->io);
}

static void setup(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct hr_err err = { "" };

	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_eq(hr_http_new(&http, loop, &err), 0, "%s", err.msg);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 64), 0);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	port = ntohs(a.sin_port);
	ev_io_init(&accept_io, accept_cb, lfd, EV_READ);
	ev_io_start(loop, &accept_io);
	hr_log_setup(HR_LOG_WARN, HR_LOG_LOGFMT, stderr);
	unsetenv("CONSUL_HTTP_TOKEN");
	unsetenv("CONSUL_HTTP_ADDR");
	unsetenv("CONSUL_HTTP_TOKEN_FILE");
	unsetenv("ETCD_USERNAME");
	unsetenv("ETCD_PASSWORD");
}

static void teardown(void)
{
	size_t i;

	for (i = 0; i < n_reqs; i++) {
		free(paths[i]);
		free(bodies[i]);
	}
	ev_io_stop(loop, &accept_io);
	close(lfd);
	hr_http_free(http);
	ev_loop_destroy(loop);
}

TestSuite(registry_lifetime, .init = setup, .fini = teardown, .timeout = 30);

static void run_for(double s)
{
	hr_test_run_for(loop, s);
}

static bool run_until(const char *path_part, double timeout)
{
	double end = ev_time() + timeout;
	size_t i;

	for (;;) {
		for (i = 0; i < n_reqs; i++)
			if (strstr(paths[i], path_part))
				return true;
		if (ev_time() > end)
			return false;
		run_for(0.01);
	}
}

static const char *body_of(const char *path_part)
{
	size_t i;

	for (i = 0; i < n_reqs; i++)
		if (strstr(paths[i], path_part))
			return bodies[i];
	return "";
}

/* A config with a registry section for ops, parsed like the agent does;
 * the backend is created from it and the config freed at once. */
static struct hr_registry *create_then_free_config(
	const struct hr_registry_ops *ops, const char *section)
{
	struct hr_config_backend be = { ops->name, ops->validate,
					 ops->validate_service };
	struct hr_registry_env env = { 0 };
	struct hr_registry *r = NULL;
	struct hr_config *cfg = NULL;
	struct hr_err err = { "" };
	struct hr_diag d;
	char json[2048];
	size_t i;
	int rc;

	snprintf(json, sizeof(json),
		 "{\"service\": {\"name\": \"web\", \"id\": \"web-1\","
		 " \"address\": \"127.0.0.1\", \"port\": 8080,"
		 " \"tags\": [\"v1\", \"blue\"], \"meta\": {\"team\": \"core\"},"
		 " \"checks\": [{\"name\": \"a\", \"tcp\": \"127.0.0.1:80\"}]},"
		 " \"registry\": {\"%s\": %s}}", ops->name, section);
	hr_diag_init(&d);
	rc = hr_config_parse(&cfg, json, strlen(json), &be, 1, &d);
	for (i = 0; rc && i < d.n; i++)
		cr_log_error("%s", d.v[i].text);
	cr_assert_eq(rc, 0);
	hr_diag_dispose(&d);
	env.loop = loop;
	env.http = http;
	env.service = &cfg->services[0].service;
	env.shutdown_timeout_ms = 2000;
	cr_assert_eq(ops->create(&r, cJSON_GetObjectItemCaseSensitive(
					     cfg->services[0].registry, ops->name),
				 &env, &err),
		     0, "%s", err.msg);
	/* What a reload does to the old config: nothing may point into it. */
	hr_config_free(cfg);
	return r;
}

static void done_cb(void *payload)
{
	(void)payload;
	done_calls++;
}

static void shutdown_and_destroy(const struct hr_registry_ops *ops,
				 struct hr_registry *r)
{
	ops->shutdown(r, done_cb, NULL);
	cr_assert(hr_test_run_until(loop, &done_calls, 5));
	cr_assert_eq(done_calls, 1);
	ops->destroy(r);
}

/* Create ops from section (a format taking the fake's port), free the
 * config, apply passing and wait for a request to wait_path. */
static struct hr_registry *start(const struct hr_registry_ops *ops,
				 const char *section_fmt,
				 const char *wait_path)
{
	struct hr_registry *r;
	char section[256];

	snprintf(section, sizeof(section), section_fmt, port);
	r = create_then_free_config(ops, section);
	ops->apply(r, HR_STATUS_PASSING, "1 passing: a");
	cr_assert(run_until(wait_path, 5), "no %s", wait_path);
	return r;
}

/* The body of the first request to path, as JSON (caller deletes). */
static cJSON *json_body(const char *path)
{
	cJSON *j = cJSON_Parse(body_of(path));

	cr_assert_not_null(j, "%s: %s", path, body_of(path));
	return j;
}

Test(registry_lifetime, consul_keeps_no_pointer_into_the_config)
{
	struct hr_registry *r;
	cJSON *j;

	r = start(&hr_registry_consul,
		  "{\"address\": \"http://127.0.0.1:%d\", \"check_ttl\": \"3s\","
		  " \"register_when\": [\"passing\"]}",
		  "/v1/agent/check/update/");
	j = json_body("/v1/agent/service/register");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "Name")->valuestring, "web");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "ID")->valuestring, "web-1");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "Tags")), 2);
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Meta"),
					     "team")->valuestring, "core");
	cJSON_Delete(j);
	/* The grace period and the critical update use the copy too. */
	hr_registry_consul.apply(r, HR_STATUS_WARNING, "1 warning: a");
	cr_assert(run_until("/v1/agent/service/deregister/web-1", 5));
	hr_registry_consul.apply(r, HR_STATUS_PASSING, "1 passing: a");
	run_for(0.2);
	shutdown_and_destroy(&hr_registry_consul, r);
}

Test(registry_lifetime, etcd_keeps_no_pointer_into_the_config)
{
	struct hr_registry *r;
	char *value;
	cJSON *put;

	r = start(&hr_registry_etcd,
		  "{\"endpoints\": [\"http://127.0.0.1:%d\"],"
		  " \"lease_ttl\": \"3s\", \"value_format\": \"document\"}",
		  "/v3/kv/put");
	put = json_body("/v3/kv/put");
	value = hr_etcd_b64_decode(
		cJSON_GetObjectItem(put, "value")->valuestring, NULL);
	cr_assert_not_null(strstr(value, "\"Addr\":\"127.0.0.1:8080\""),
			   "%s", value);
	cr_assert_not_null(strstr(value, "\"id\":\"web-1\""), "%s", value);
	cr_assert_not_null(strstr(value, "\"tags\":[\"v1\",\"blue\"]"), "%s",
			   value);
	free(value);
	value = hr_etcd_b64_decode(
		cJSON_GetObjectItem(put, "key")->valuestring, NULL);
	cr_assert_str_eq(value, "services/web/127.0.0.1:8080");
	free(value);
	cJSON_Delete(put);
	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "1 critical: a");
	cr_assert(run_until("/v3/kv/txn", 5));
	shutdown_and_destroy(&hr_registry_etcd, r);
	cr_assert(run_until("/v3/lease/revoke", 0));
}
