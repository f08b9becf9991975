/*
 * test_consul_faults.c - the Consul backend's state machine against a
 * scripted loopback HTTP server on the same libev loop: the exact request
 * sequence for register/update/drop/recover/maintenance/shutdown, and the
 * answers a real agent rarely gives (404/500 lost check, 5xx, garbage,
 * 403), with log capture to prove "logged once" and "token never logged";
 * the fleet floor's requests (the leaver list, the health read, ?cas=).
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

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ev.h>

#include "consul/consul.h"
#include "consul/consul_payload.h"
#include "healthreg/http.h"
#include "loop.h"
#include "healthreg/log.h"

#define TOKEN "tok-5ecret-da7a"
#define TOKEN2 "tok-2-5ecret-da7a"
#define MAX_REQS 512
#define MAX_SCRIPT 64

/* ---- scripted server --------------------------------------------------- */

struct fake_resp {
	int code;          /* 0: write raw instead of an HTTP answer */
	const char *body;
	const char *raw;
};

struct fake_req {
	char method[16];
	char path[1024];
	char *body;
	int has_token;     /* X-Consul-Token: TOKEN was sent */
	int has_token2;    /* X-Consul-Token: TOKEN2 was sent */
};

struct fake {
	struct ev_loop *loop;
	int lfd, port;
	ev_io accept_io;
	struct fake_resp script[MAX_SCRIPT];
	size_t n_script, next;
	struct fake_req reqs[MAX_REQS];
	size_t n_reqs;
};

struct conn {
	ev_io io;
	struct fake *f;
	int fd;
	char buf[65536];
	size_t len;
};

static struct fake F;

static void fake_answer(struct conn *c, size_t hdr_end, size_t clen)
{
	struct fake *f = c->f;
	struct fake_req *q = &f->reqs[f->n_reqs < MAX_REQS ? f->n_reqs : 0];
	struct fake_resp r = { 200, "", NULL };
	char head[256];
	ssize_t w;

	sscanf(c->buf, "%15s %1023s", q->method, q->path);
	q->body = strndup(c->buf + hdr_end, clen);
	c->buf[hdr_end] = '\0';
	q->has_token = strstr(c->buf, "X-Consul-Token: " TOKEN "\r\n") != NULL;
	q->has_token2 = strstr(c->buf, "X-Consul-Token: " TOKEN2 "\r\n") != NULL;
	if (f->n_reqs < MAX_REQS)
		f->n_reqs++;
	if (f->next < f->n_script)
		r = f->script[f->next++];
	if (r.code) {
		snprintf(head, sizeof(head),
			 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n", r.code,
			 strlen(r.body ? r.body : ""));
		w = write(c->fd, head, strlen(head));
		if (r.body && *r.body)
			w = write(c->fd, r.body, strlen(r.body));
	} else {
		w = write(c->fd, r.raw, strlen(r.raw));
	}
	(void)w;
	ev_io_stop(f->loop, &c->io);
	close(c->fd);
	free(c);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = (struct conn *)w;
	ssize_t n;
	char *end;

	(void)loop;
	(void)revents;
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n <= 0) {
		ev_io_stop(c->f->loop, &c->io);
		close(c->fd);
		free(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	end = strstr(c->buf, "\r\n\r\n");
	if (end) {
		size_t hdr = (size_t)(end - c->buf) + 4, clen = 0;
		char *cl = strcasestr(c->buf, "Content-Length:");

		if (cl && cl < end)
			clen = strtoul(cl + 15, NULL, 10);
		if (c->len >= hdr + clen)
			fake_answer(c, hdr, clen);
	}
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = (struct fake *)((char *)w -
					 offsetof(struct fake, accept_io));
	int fd = accept(f->lfd, NULL, NULL);
	struct conn *c;

	(void)revents;
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	c->f = f;
	c->fd = fd;
	ev_io_init(&c->io, conn_cb, fd, EV_READ);
	ev_io_start(loop, &c->io);
}

static void fake_start(struct ev_loop *loop)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	memset(&F, 0, sizeof(F));
	F.loop = loop;
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(F.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(F.lfd, 16), 0);
	getsockname(F.lfd, (struct sockaddr *)&a, &al);
	F.port = ntohs(a.sin_port);
	ev_io_init(&F.accept_io, accept_cb, F.lfd, EV_READ);
	ev_io_start(loop, &F.accept_io);
}

static void script(int code, const char *body)
{
	cr_assert_lt(F.n_script, MAX_SCRIPT);
	F.script[F.n_script].code = code;
	F.script[F.n_script].body = body;
	F.script[F.n_script++].raw = NULL;
}

static void script_raw(const char *raw)
{
	cr_assert_lt(F.n_script, MAX_SCRIPT);
	F.script[F.n_script].code = 0;
	F.script[F.n_script].body = NULL;
	F.script[F.n_script++].raw = raw;
}

/* ---- log capture ------------------------------------------------------- */

#define MAX_LOG 512
static char *logs[MAX_LOG];
static size_t n_logs;

static void sink(int level, const char *event, const char *const *kv,
		 void *payload)
{
	char line[8192];

	(void)payload;
	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, level, event,
			   kv);
	if (n_logs < MAX_LOG)
		logs[n_logs++] = strdup(line);
}

static size_t count_logs(const char *needle)
{
	size_t i, n = 0;

	for (i = 0; i < n_logs; i++)
		n += strstr(logs[i], needle) != NULL;
	return n;
}

/* ---- backend harness --------------------------------------------------- */

static struct ev_loop *loop;
static struct hr_http *http;
static struct hr_registry *reg;
static char *tags[] = { "v1", NULL };
static struct hr_header meta[] = { { "team", "core" } };
static struct hr_service_spec svc = {
	.name = "web", .id = "web-1", .address = "127.0.0.1", .port = 8080,
	.tags = tags, .n_tags = 1, .meta = meta, .n_meta = 1,
};
static int done_calls;

static void setup(void)
{
	struct hr_err err = { "" };

	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_eq(hr_http_new(&http, loop, &err), 0, "%s", err.msg);
	fake_start(loop);
	hr_log_setup(HR_LOG_DEBUG, HR_LOG_LOGFMT, stderr);
	hr_log_set_sink(sink, NULL);
	setenv("CONSUL_HTTP_TOKEN", TOKEN, 1);
	unsetenv("CONSUL_HTTP_ADDR");
	unsetenv("CONSUL_HTTP_TOKEN_FILE");
}

static void teardown(void)
{
	if (reg)
		hr_registry_consul.destroy(reg);
	reg = NULL;
	hr_http_free(http);
	ev_loop_destroy(loop);
}

TestSuite(consul_faults, .init = setup, .fini = teardown, .timeout = 30);

static void create(const char *extra)
{
	struct hr_registry_env env = { loop, http, &svc, 3000, NULL, NULL };
	struct hr_err err = { "" };
	char json[1024];
	cJSON *conf;

	snprintf(json, sizeof(json),
		 "{\"address\":\"http://127.0.0.1:%d\",\"check_ttl\":\"3s\"%s%s}",
		 F.port, extra ? "," : "", extra ? extra : "");
	conf = cJSON_Parse(json);
	cr_assert_not_null(conf, "%s", json);
	cr_assert_eq(hr_registry_consul.create(&reg, conf, &env, &err), 0,
		     "%s", err.msg);
	cJSON_Delete(conf);
}

static void run_for(double s)
{
	hr_test_run_for(loop, s);
}

/* Run until n requests were served (or timeout seconds). */
static bool run_until_reqs(size_t n, double timeout)
{
	double end = ev_time() + timeout;

	while (F.n_reqs < n && ev_time() < end)
		run_for(0.01);
	return F.n_reqs >= n;
}

static bool is_op(size_t i, const char *method_path_prefix)
{
	char mp[1100];

	if (i >= F.n_reqs)
		return false;
	snprintf(mp, sizeof(mp), "%s %s", F.reqs[i].method, F.reqs[i].path);
	return !strncmp(mp, method_path_prefix, strlen(method_path_prefix));
}

#define REG "PUT /v1/agent/service/register"
#define UPD "PUT /v1/agent/check/update/service:web-1:healthreg"
#define DEREG "PUT /v1/agent/service/deregister/web-1"
#define MAINT "PUT /v1/agent/service/maintenance/web-1?enable="

static void expect_ops(const char *const *ops, size_t n)
{
	size_t i;

	cr_assert(run_until_reqs(n, 10), "only %zu of %zu requests",
		  F.n_reqs, n);
	for (i = 0; i < n; i++)
		cr_assert(is_op(i, ops[i]), "request %zu is %s %s, want %s",
			  i, F.reqs[i].method, F.reqs[i].path, ops[i]);
}

static const char *update_field(size_t i, const char *key)
{
	static char out[8192];
	cJSON *j = cJSON_Parse(F.reqs[i].body);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	cr_assert_not_null(j, "request %zu body is not JSON: %s", i,
			   F.reqs[i].body);
	snprintf(out, sizeof(out), "%s",
		 cJSON_IsString(v) ? v->valuestring : "<none>");
	cJSON_Delete(j);
	return out;
}

static void no_token_in_logs(void)
{
	size_t i;

	for (i = 0; i < n_logs; i++)
		cr_assert_null(strstr(logs[i], TOKEN), "token logged: %s",
			       logs[i]);
}

/* ---- tests ------------------------------------------------------------- */

Test(consul_faults, register_then_update_then_refresh)
{
	static const char *const ops[] = { REG, UPD, UPD };
	cJSON *j, *chk;

	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "1 passing: http");
	expect_ops(ops, 2);
	j = cJSON_Parse(F.reqs[0].body);
	chk = cJSON_GetObjectItemCaseSensitive(j, "Check");
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(chk, "TTL")
				 ->valuestring, "3s");
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(chk, "Status")
				 ->valuestring, "passing");
	cJSON_Delete(j);
	cr_assert_str_eq(update_field(1, "Status"), "passing");
	cr_assert_str_eq(update_field(1, "Output"), "1 passing: http");
	cr_assert(F.reqs[0].has_token && F.reqs[1].has_token);
	/* Unchanged status: the next update comes about a third of the TTL
	 * (1 s) later, not before. */
	run_for(0.6);
	cr_assert_eq(F.n_reqs, 2);
	expect_ops(ops, 3);
	cr_assert_str_eq(update_field(2, "Output"), "1 passing: http");
	no_token_in_logs();
}

Test(consul_faults, status_change_is_sent_at_once_and_coalesced)
{
	static const char *const ops[] = { REG, UPD, UPD };

	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "a");
	cr_assert(run_until_reqs(2, 5));
	/* Three changes while nothing is in flight -> one update each; but
	 * changes made while a request is in flight collapse to the last. */
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "b");
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "c");
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "d");
	expect_ops(ops, 3);
	cr_assert_str_eq(update_field(2, "Status"), "warning");
	run_for(0.2);
	cr_assert(run_until_reqs(4, 2));
	cr_assert_str_eq(update_field(3, "Output"), "d");
}

Test(consul_faults, lost_check_404_registers_again)
{
	static const char *const ops[] = { REG, UPD, UPD, REG, UPD };

	script(200, "");
	script(200, "");
	script(404, "Unknown check ID \"service:web-1:healthreg\". Ensure "
		    "that the check ID is passed, not the check name.");
	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "meh");
	expect_ops(ops, 5);
	cr_assert_str_eq(update_field(4, "Status"), "warning");
	cr_assert_eq(count_logs("event=consul_registration_lost"), 1);
}

Test(consul_faults, lost_check_500_old_agent_registers_again)
{
	static const char *const ops[] = { REG, UPD, REG, UPD };

	script(200, "");
	script(500, "CheckID \"service:web-1:healthreg\" does not have "
		    "associated TTL");
	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	expect_ops(ops, 4);
}

Test(consul_faults, errors_and_garbage_are_retried)
{
	static const char *const ops[] = { REG, REG, REG, REG, REG, UPD };

	script(500, "rpc error making call: No cluster leader");
	script(503, "<html>\x01\x02 bad gateway</html>");
	script_raw("\x00\xff\xfe garbage, not HTTP at all\r\n\r\n");
	script_raw("HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\nshort");
	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	expect_ops(ops, 6);
	/* One warning for the outage, one info line when it answers. */
	cr_assert_eq(count_logs("event=consul_unavailable"), 1);
	cr_assert_eq(count_logs("event=consul_reachable"), 1);
	cr_assert_eq(count_logs("event=consul_registered"), 1);
}

Test(consul_faults, unreachable_agent_backs_off)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char extra[64];

	/* A port nobody listens on: bound, never listening. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(s, (struct sockaddr *)&a, &al);
	snprintf(extra, sizeof(extra), "\"deregister_after\":\"0s\"");
	{
		struct hr_registry_env env = { loop, http, &svc, 3000, NULL, NULL };
		struct hr_err err = { "" };
		char json[256];
		cJSON *conf;

		snprintf(json, sizeof(json),
			 "{\"address\":\"http://127.0.0.1:%d\","
			 "\"check_ttl\":\"3s\",%s}", ntohs(a.sin_port), extra);
		conf = cJSON_Parse(json);
		cr_assert_eq(hr_registry_consul.create(&reg, conf, &env,
						       &err), 0);
		cJSON_Delete(conf);
	}
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	run_for(2.5);
	/* Backoff 0.25-0.5 s, 0.5-1 s, then capped at 1 s: a handful of
	 * attempts, one warning, no crash. */
	cr_assert_eq(count_logs("event=consul_unavailable"), 1);
	cr_assert_geq(count_logs("event=consul_retry"), 1);
	cr_assert_leq(count_logs("event=consul_retry"), 8);
	close(s);
}

Test(consul_faults, forbidden_is_logged_once_and_retried_slowly)
{
	static const char *const ops[] = { REG, REG, REG, UPD };
	size_t i;

	for (i = 0; i < 2; i++)
		script(403, "Permission denied: token with AccessorID "
			    "'00000000-0000-0000-0000-000000000002' lacks "
			    "permission 'service:write' on \"web\"");
	create("\"check_ttl\":\"2s\"");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(1, 5));
	run_for(0.8);
	/* Slow: no second attempt within the first second. */
	cr_assert_eq(F.n_reqs, 1);
	expect_ops(ops, 4);
	cr_assert_eq(count_logs("event=consul_forbidden"), 1);
	cr_assert_eq(count_logs("needs=\"service:write on the service\""), 1);
	no_token_in_logs();
}

Test(consul_faults, rejected_register_logged_once)
{
	script(400, "Invalid Service Meta: Key contains invalid characters");
	script(400, "Invalid Service Meta: Key contains invalid characters");
	create("\"check_ttl\":\"2s\"");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 8));
	cr_assert_eq(count_logs("event=consul_rejected"), 1);
	/* ... and the registry's state change (regcore), once too: three
	 * attempts, two lines. */
	cr_assert_eq(count_logs("event=registry_failing"), 1);
	cr_assert_eq(count_logs("Invalid Service Meta"), 2);
}

Test(consul_faults, critical_sets_check_critical_then_deregisters)
{
	static const char *const ops[] = { REG, UPD, UPD, DEREG, REG, UPD };

	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(4, 5));
	cr_assert_str_eq(update_field(2, "Status"), "critical");
	cr_assert_str_eq(update_field(2, "Output"), "1 critical: db");
	/* Deregistered: nothing more while critical. */
	run_for(1.5);
	cr_assert_eq(F.n_reqs, 4);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok again");
	expect_ops(ops, 6);
	cr_assert_str_eq(update_field(5, "Output"), "ok again");
}

Test(consul_faults, deregister_after_grace)
{
	create("\"deregister_after\":\"1500ms\"");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	/* Critical shorter than deregister_after: reported, not removed. */
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "bad");
	cr_assert(run_until_reqs(3, 5));
	cr_assert(is_op(2, UPD));
	cr_assert_str_eq(update_field(2, "Status"), "critical");
	run_for(0.5);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(4, 5));
	run_for(1.5);
	for (size_t i = 0; i < F.n_reqs; i++)
		cr_assert(!is_op(i, DEREG), "deregistered at %zu", i);
	/* Critical longer than deregister_after: removed. */
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "bad");
	run_for(2.5);
	cr_assert(is_op(F.n_reqs - 1, DEREG), "last is %s",
		  F.reqs[F.n_reqs - 1].path);
}

Test(consul_faults, starting_critical_registers_nothing)
{
	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_UNKNOWN, "no results yet");
	run_for(0.5);
	cr_assert_eq(F.n_reqs, 0);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	cr_assert(is_op(0, REG));
}

Test(consul_faults, register_when_passing_only_drops_warning)
{
	static const char *const ops[] = { REG, UPD, UPD, DEREG };

	create("\"register_when\":[\"passing\"]");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "slow");
	expect_ops(ops, 4);
	/* The service goes away critical, whatever the reason. */
	cr_assert_str_eq(update_field(2, "Status"), "critical");
}

static void done_cb(void *payload)
{
	(void)payload;
	done_calls++;
}

Test(consul_faults, shutdown_deregisters_then_done)
{
	static const char *const ops[] = { REG, UPD, DEREG };

	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	hr_registry_consul.shutdown(reg, done_cb, NULL);
	expect_ops(ops, 3);
	run_for(0.1);
	cr_assert_eq(done_calls, 1);
	/* Nothing after shutdown. */
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "x");
	run_for(1.5);
	cr_assert_eq(F.n_reqs, 3);
	cr_assert_eq(done_calls, 1);
}

Test(consul_faults, shutdown_retries_5xx_then_gives_up)
{
	size_t i;

	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	for (i = 0; i < MAX_SCRIPT - 2; i++)
		script(500, "boom");
	hr_registry_consul.shutdown(reg, done_cb, NULL);
	/* env.shutdown_timeout_ms is 3 s. */
	run_for(3.5);
	cr_assert_eq(done_calls, 1);
	cr_assert_geq(F.n_reqs, 4, "deregister was retried");
	cr_assert_eq(count_logs("event=consul_deregister_timeout"), 1);
}

Test(consul_faults, shutdown_with_nothing_registered_is_immediate)
{
	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "down");
	hr_registry_consul.shutdown(reg, done_cb, NULL);
	/* done() comes on a fresh loop iteration, never from inside the
	 * call (registry.h). */
	cr_assert_eq(done_calls, 0);
	ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(done_calls, 1);
	run_for(0.2);
	cr_assert_eq(done_calls, 1);
	cr_assert_eq(F.n_reqs, 0);
}

/* In maintenance, the check is registered critical and the maintenance
 * check lands before any update: the instance is never passing. */
Test(consul_faults, maintenance_survives_reregistration)
{
	static const char *const ops[] = { REG, MAINT "true", UPD, UPD, REG,
					   MAINT "true", UPD, MAINT "false" };

	script(200, "");
	script(200, "");
	script(200, "");
	script(404, "Unknown check ID");
	create(NULL);
	hr_registry_consul.maintenance(reg, true, "deploy v2");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	cr_assert(strstr(F.reqs[0].body, "\"Status\":\"critical\""), "%s",
		  F.reqs[0].body);
	cr_assert(strstr(F.reqs[1].path, "reason=deploy%20v2"));
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, "w");
	cr_assert(run_until_reqs(7, 5));
	hr_registry_consul.maintenance(reg, false, NULL);
	expect_ops(ops, 8);
}

Test(consul_faults, big_output_and_odd_bytes)
{
	char *big = malloc(10001);
	const char *out;

	memset(big, 'x', 10000);
	memcpy(big, "\"q\" \\ \n\t\x01\xff\xc3", 11);
	big[10000] = '\0';
	create(NULL);
	hr_registry_consul.apply(reg, HR_STATUS_WARNING, big);
	cr_assert(run_until_reqs(2, 5));
	out = update_field(1, "Output");
	cr_assert_leq(strlen(out), HR_CONSUL_OUTPUT_MAX);
	cr_assert_eq(strncmp(out, "\"q\" \\ \n\t\x01\xef\xbf\xbd"
			     "\xef\xbf\xbd", 15), 0);
	cr_assert(strstr(out, " ... (captured "), "%s", out + 4000);
	cr_assert(strstr(out, " of 10004 bytes)"), "%s", out + 4000);
	free(big);
}

Test(consul_faults, token_file_is_used_and_not_logged)
{
	char path[] = "/tmp/hr-consul-token-XXXXXX";
	int fd = mkstemp(path);
	char extra[128];

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, TOKEN "\n", strlen(TOKEN) + 1),
		     (ssize_t)strlen(TOKEN) + 1);
	close(fd);
	unsetenv("CONSUL_HTTP_TOKEN");
	snprintf(extra, sizeof(extra), "\"token_file\":\"%s\"", path);
	create(extra);
	unlink(path);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(2, 5));
	cr_assert(F.reqs[0].has_token && F.reqs[1].has_token);
	no_token_in_logs();
}

static void write_token_file(const char *path, const char *token)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, token, strlen(token)), (ssize_t)strlen(token));
	cr_assert_eq(write(fd, "\n", 1), 1);
	close(fd);
}

/* A revoked token (403 ACL not found): the token file is read again, and
 * the new token registers the service again at once (the agent keeps the
 * registering token for its catalog syncs). */
Test(consul_faults, acl_not_found_rereads_the_token_file)
{
	static const char *const ops[] = { REG, UPD, REG, UPD };
	char path[] = "/tmp/hr-consul-token-XXXXXX";
	int fd = mkstemp(path);
	char extra[128];

	cr_assert_geq(fd, 0);
	close(fd);
	write_token_file(path, TOKEN);
	unsetenv("CONSUL_HTTP_TOKEN");
	script(200, "");
	script(403, "ACL not found");
	snprintf(extra, sizeof(extra), "\"token_file\":\"%s\"", path);
	create(extra);
	write_token_file(path, TOKEN2); /* rotated after the start */
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	expect_ops(ops, 4);
	unlink(path);
	cr_assert(F.reqs[0].has_token && F.reqs[1].has_token);
	cr_assert(F.reqs[2].has_token2 && F.reqs[3].has_token2);
	cr_assert_eq(count_logs("event=consul_token_not_found"), 1);
	cr_assert_eq(count_logs("event=consul_forbidden"), 0);
	cr_assert_eq(count_logs("event=consul_token_reloaded"), 1);
	no_token_in_logs();
	for (size_t i = 0; i < n_logs; i++)
		cr_assert_null(strstr(logs[i], TOKEN2), "%s", logs[i]);
}

/* Permission denied with the same token in the file: logged apart from
 * ACL not found, nothing reloaded, retried slowly. */
Test(consul_faults, permission_denied_same_token_retries_slowly)
{
	char path[] = "/tmp/hr-consul-token-XXXXXX";
	int fd = mkstemp(path);
	char extra[128];

	cr_assert_geq(fd, 0);
	close(fd);
	write_token_file(path, TOKEN);
	unsetenv("CONSUL_HTTP_TOKEN");
	script(403, "Permission denied: token with AccessorID 'a' lacks "
		    "permission 'service:write' on \"web\"");
	snprintf(extra, sizeof(extra), "\"token_file\":\"%s\"", path);
	create(extra);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(1, 5));
	run_for(1.0);
	unlink(path);
	/* slow: about a TTL (3 s, at least 2 s) before the next try */
	cr_assert_eq(F.n_reqs, 1);
	cr_assert_eq(count_logs("event=consul_forbidden"), 1);
	cr_assert_eq(count_logs("event=consul_token_not_found"), 0);
	cr_assert_eq(count_logs("event=consul_token_reloaded"), 0);
}

Test(consul_faults, create_errors)
{
	static const char *const bad[] = {
		"{\"check_ttl\":\"5x\"}",
		"{\"token_file\":\"/nonexistent/healthreg/token\"}",
		"{\"address\":\"https://127.0.0.1:1\","
		"\"ca_file\":\"/nonexistent/ca.pem\"}",
	};
	struct hr_registry_env env = { loop, http, &svc, 3000, NULL, NULL };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hr_err err = { "" };
		cJSON *conf = cJSON_Parse(bad[i]);
		struct hr_registry *r = (struct hr_registry *)1;

		cr_assert_lt(hr_registry_consul.create(&r, conf, &env, &err),
			     0, "case %zu", i);
		cr_assert_null(r);
		cr_assert_neq(err.msg[0], '\0');
		cr_log_info("%s", err.msg);
		cJSON_Delete(conf);
	}
	hr_registry_consul.destroy(NULL);
}

Test(consul_faults, validate_reports_paths)
{
	struct hr_diag d;
	cJSON *conf = cJSON_Parse("{\"check_ttl\":\"5x\",\"nope\":1}");

	hr_diag_init(&d);
	hr_registry_consul.validate(conf, "registry.consul", &d);
	cr_assert_eq(d.errors, 2);
	cr_assert_str_eq(hr_registry_consul.name, "consul");
	cr_assert_eq(hr_registry_consul.abi, HR_REGISTRY_ABI);
	hr_diag_dispose(&d);
	cJSON_Delete(conf);
}

/* ---- the fleet floor ----------------------------------------------------- */

#define KV_GET "GET /v1/kv/healthreg/floor/web"
#define KV_CAS "PUT /v1/kv/healthreg/floor/web?cas="
#define FLEET "GET /v1/health/service/web"

/* /v1/health/service/web entries: "web-1:passing,web-2:critical". */
static const char *fleet_body(const char *spec)
{
	static char bufs[8][4096];
	static int k;
	char *b = bufs[k++ % 8], tmp[256], *save = NULL, *t;

	snprintf(tmp, sizeof(tmp), "%s", spec);
	strcpy(b, "[");
	for (t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(t, ':');

		*colon = '\0';
		snprintf(b + strlen(b), 4096 - strlen(b),
			 "%s{\"Node\":{\"Node\":\"n1\"},\"Service\":{\"ID\":"
			 "\"%s\",\"Service\":\"web\"},\"Checks\":[{\"CheckID\":"
			 "\"serfHealth\",\"Status\":\"passing\"},{\"CheckID\":"
			 "\"service:%s:healthreg\",\"Status\":\"%s\"}]}",
			 b[1] ? "," : "", t, t, colon + 1);
	}
	strcat(b, "]");
	return b;
}

/* GET /v1/kv answer at index with the list value (base64 of v). */
static const char *kv_body(unsigned index, const char *b64value)
{
	static char bufs[4][1024];
	static int k;
	char *b = bufs[k++ % 4];

	snprintf(b, 1024, "[{\"LockIndex\":0,\"Key\":\"healthreg/floor/web\","
		 "\"Flags\":0,\"Value\":\"%s\",\"CreateIndex\":3,"
		 "\"ModifyIndex\":%u}]", b64value, index);
	return b;
}

/* base64 of {"leavers":[{"id":"web-3","at":4102444800}]} (2100: never
 * stale), and the same for web-1 */
#define LIST_WEB3 "eyJsZWF2ZXJzIjpbeyJpZCI6IndlYi0zIiwiYXQiOjQxMDI0NDQ4MDB9XX0="
#define LIST_WEB1 "eyJsZWF2ZXJzIjpbeyJpZCI6IndlYi0xIiwiYXQiOjQxMDI0NDQ4MDB9XX0="

/* The whole cycle, request by request: a new backend checks the list
 * once; critical with too few others: kept (warning, the note), decided
 * again a third of the TTL later; enough others: the own ID into the
 * list with ?cas=, then critical and deregistered; recovered: registered,
 * then the own ID out of the list with ?cas=. */
Test(consul_faults, floor_keeps_then_leaves_then_unlists)
{
	static const char *const ops[] = {
		REG, UPD, KV_GET,                 /* start, list checked */
		KV_GET, FLEET, UPD,               /* critical: kept */
		KV_GET, FLEET, KV_CAS, UPD, DEREG, /* next decision: leaves */
		REG, UPD, KV_GET, KV_CAS,          /* recovered: unlisted */
	};

	script(200, "");                        /* register */
	script(200, "");                        /* update */
	script(404, "");                        /* no list yet */
	script(404, "");
	script(200, fleet_body("web-1:passing"));
	script(200, "");                        /* kept update */
	script(404, "");
	script(200, fleet_body("web-1:warning,web-2:passing"));
	script(200, "true");                    /* cas */
	script(200, "");
	script(200, "");
	script(200, "");                        /* register */
	script(200, "");                        /* update */
	script(200, kv_body(9, LIST_WEB1));
	script(200, "true");
	create("\"min_healthy\":1");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	run_for(0.3);
	cr_assert_eq(F.n_reqs, 3, "the list is read once, not again");
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(6, 5));
	cr_assert_str_eq(update_field(5, "Status"), "warning");
	cr_assert_str_eq(update_field(5, "Output"),
			 "kept by fleet floor: 0 of 1 healthy (min_healthy 1); "
			 "1 critical: db");
	cr_assert_eq(count_logs("event=fleet_floor_kept"), 1);
	expect_ops(ops, 11);
	cr_assert_str_eq(F.reqs[8].path, "/v1/kv/healthreg/floor/web?cas=0",
			 "created: cas=0");
	cr_assert(strstr(F.reqs[8].body, "{\"id\":\"web-1\",\"at\":"),
		  "%s", F.reqs[8].body);
	cr_assert_str_eq(update_field(9, "Status"), "critical");
	cr_assert_eq(count_logs("event=fleet_floor_released"), 1);
	cr_assert_eq(count_logs("reason=\"enough others healthy\""), 1);
	run_for(0.5);
	cr_assert_eq(F.n_reqs, 11, "gone: nothing more while critical");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok again");
	expect_ops(ops, 15);
	cr_assert_str_eq(F.reqs[14].path, "/v1/kv/healthreg/floor/web?cas=9");
	cr_assert_str_eq(F.reqs[14].body, "{\"leavers\":[]}");
	run_for(1.5);
	/* only TTL refreshes from here on */
	for (size_t i = 15; i < F.n_reqs; i++)
		cr_assert(is_op(i, UPD), "request %zu: %s %s", i,
			  F.reqs[i].method, F.reqs[i].path);
}

/* A lost cas (someone wrote the list since the read) reads both again and
 * decides on the new list: the listed web-3 no longer counts. */
Test(consul_faults, floor_lost_cas_reads_again)
{
	static const char *const ops[] = {
		REG, UPD, KV_GET,
		KV_GET, FLEET, KV_CAS,            /* cas=0 loses */
		KV_GET, FLEET, UPD,               /* web-3 listed: kept */
	};

	script(200, "");
	script(200, "");
	script(404, "");
	script(404, "");
	script(200, fleet_body("web-1:passing,web-2:passing,web-3:passing"));
	script(200, "false");
	script(200, kv_body(5, LIST_WEB3));
	script(200, fleet_body("web-1:passing,web-2:passing,web-3:passing"));
	create("\"min_healthy\":2");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	expect_ops(ops, 9);
	cr_assert_str_eq(F.reqs[5].path, "/v1/kv/healthreg/floor/web?cas=0");
	cr_assert_eq(count_logs("event=consul_floor_conflict"), 1);
	cr_assert_str_eq(update_field(8, "Status"), "warning");
	cr_assert(!strncmp(update_field(8, "Output"),
			   "kept by fleet floor: 1 of 3 healthy (min_healthy 2)",
			   51), "%s", update_field(8, "Output"));
}

/* The own ID's write is answered with an error (it may have landed: the
 * answer was lost): the instance stays, and once it recovers it still
 * checks the list and takes its ID out, so that the others do not count
 * it as gone until the entry turns stale. */
Test(consul_faults, floor_lost_answer_still_unlists)
{
	static const char *const ops[] = {
		REG, UPD, KV_GET,
		KV_GET, FLEET, KV_CAS,            /* the answer is lost */
		UPD,                              /* kept: warning */
		UPD,                              /* recovered: passing */
		KV_GET, KV_CAS,                   /* the own ID out */
	};
	size_t i;

	script(200, "");
	script(200, "");
	script(404, "");
	script(404, "");
	script(200, fleet_body("web-1:passing,web-2:passing"));
	script(500, "rpc error: timeout");
	script(200, "");
	script(200, "");
	script(200, kv_body(9, LIST_WEB1));
	script(200, "true");
	create("\"min_healthy\":1");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(7, 5));
	cr_assert_str_eq(update_field(6, "Status"), "warning");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok again");
	expect_ops(ops, 8);
	cr_assert_str_eq(update_field(7, "Status"), "passing");
	run_for(1.5); /* a third of check_ttl 3s: the list is checked */
	for (i = 8; i < F.n_reqs && !is_op(i, KV_GET); i++)
		cr_assert(is_op(i, UPD), "request %zu: %s %s", i,
			  F.reqs[i].method, F.reqs[i].path);
	cr_assert(is_op(i, KV_GET), "the list is read after the recovery");
	cr_assert(is_op(i + 1, KV_CAS), "and the own ID taken out");
	cr_assert_str_eq(F.reqs[i + 1].path,
			 "/v1/kv/healthreg/floor/web?cas=9");
	cr_assert_str_eq(F.reqs[i + 1].body, "{\"leavers\":[]}");
}

/* A reload replaces the backend of a kept instance (the old one is
 * destroyed, its registration stays in the agent): the new one takes the
 * registration over and decides again through the floor, instead of
 * leaving it to expire and be reaped. */
Test(consul_faults, floor_kept_instance_handed_over_on_reload)
{
	static const char *const ops[] = {
		REG, UPD, KV_GET,
		KV_GET, FLEET, UPD,               /* the old one: kept */
		KV_GET, FLEET, UPD,               /* the new one: kept again */
	};
	struct hr_registry *old;
	size_t n;

	script(200, "");
	script(200, "");
	script(404, "");
	script(404, "");
	script(200, fleet_body("web-1:passing"));
	script(200, "");
	script(404, "");
	script(200, fleet_body("web-1:warning"));
	script(200, "");
	create("\"min_healthy\":1");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(6, 5));
	cr_assert_str_eq(update_field(5, "Status"), "warning");
	/* The reload: the new backend first, told the aggregate; it has
	 * registered nothing itself, so it sends nothing. */
	old = reg;
	create("\"min_healthy\":1");
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	run_for(0.3);
	n = F.n_reqs;
	cr_assert_eq(n, 6, "nothing before the old one goes");
	hr_registry_consul.destroy(old);
	expect_ops(ops, 9);
	cr_assert_str_eq(update_field(8, "Status"), "warning");
	cr_assert(!strncmp(update_field(8, "Output"),
			   "kept by fleet floor: 0 of 1 healthy (min_healthy 1)",
			   51), "%s", update_field(8, "Output"));
	run_for(0.3);
	for (size_t i = 9; i < F.n_reqs; i++)
		cr_assert(!is_op(i, DEREG), "still kept, not deregistered");
}

/* Servers without a leader: the list cannot be read. The instance stays
 * (warning, the reason), logged once, and its TTL keeps being refreshed
 * by a decision every third of the TTL; no backoff. */
Test(consul_faults, floor_unreadable_stays_and_refreshes)
{
	size_t i, kv = 0, upd = 0;

	script(200, "");
	script(200, "");
	script(404, "");
	for (i = 0; i < 20; i++)
		script(i % 2 ? 200 : 500, i % 2 ? "" : "No cluster leader");
	create("\"min_healthy\":2");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(5, 5));
	cr_assert(is_op(3, KV_GET));
	cr_assert(is_op(4, UPD));
	cr_assert_str_eq(update_field(4, "Status"), "warning");
	cr_assert_str_eq(update_field(4, "Output"),
			 "kept by fleet floor: the fleet cannot be read (HTTP "
			 "500: No cluster leader); 1 critical: db");
	run_for(2.2); /* check_ttl 3s: two more decisions */
	for (i = 3; i < F.n_reqs; i++) {
		kv += is_op(i, KV_GET);
		upd += is_op(i, UPD);
		cr_assert(!is_op(i, DEREG), "never deregistered");
	}
	cr_assert_geq(kv, 3, "%zu reads", kv);
	cr_assert_geq(upd, 3, "%zu refreshes", upd);
	cr_assert_eq(count_logs("event=consul_floor_unavailable"), 1);
	cr_assert_eq(count_logs("event=fleet_floor_kept"), 1);
}

/* Maintenance removes a kept instance at once: no floor read. */
Test(consul_faults, floor_kept_goes_in_maintenance)
{
	size_t n;

	script(200, "");
	script(200, "");
	script(404, "");
	script(404, "");
	script(200, fleet_body("web-1:passing"));
	create("\"min_healthy\":1");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(6, 5));
	cr_assert_str_eq(update_field(5, "Status"), "warning");
	n = F.n_reqs;
	hr_registry_consul.maintenance(reg, true, "drain");
	cr_assert(run_until_reqs(n + 2, 5));
	cr_assert(is_op(n, UPD), "%s %s", F.reqs[n].method, F.reqs[n].path);
	cr_assert_str_eq(update_field(n, "Status"), "critical");
	cr_assert(is_op(n + 1, DEREG));
	cr_assert_eq(count_logs("reason=maintenance"), 1);
}

/* The floor needs the instances told apart: an ID equal to the name is
 * refused when the backend is built, naming the key. */
Test(consul_faults, floor_needs_a_service_id)
{
	struct hr_registry_env env = { loop, http, &svc, 3000, NULL, NULL };
	struct hr_err err = { "" };
	cJSON *conf = cJSON_Parse("{\"min_healthy\":2}");

	svc.id = "web";
	cr_assert_eq(hr_registry_consul.create(&reg, conf, &env, &err),
		     -EINVAL);
	cr_assert_null(reg);
	cr_assert(strstr(err.msg, "registry.consul.min_healthy: the fleet "
				  "floor tells the instances of a service "
				  "apart"), "%s", err.msg);
	svc.id = "web-1";
	cJSON_Delete(conf);
}

/* A kept instance decides again at once when its aggregate changes, not
 * only a third of the TTL later. */
Test(consul_faults, floor_kept_decides_again_on_a_change)
{
	size_t n;

	script(200, "");
	script(200, "");
	script(404, "");
	script(404, "");
	script(200, fleet_body("web-1:passing"));
	script(200, "");
	script(404, "");
	script(200, fleet_body("web-1:warning"));
	create("\"min_healthy\":1,\"check_ttl\":\"30s\"");
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, "ok");
	cr_assert(run_until_reqs(3, 5));
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "1 critical: db");
	cr_assert(run_until_reqs(6, 5));
	run_for(0.3);
	n = F.n_reqs;
	cr_assert_eq(n, 6, "kept: nothing until the next decision (10 s)");
	hr_registry_consul.apply(reg, HR_STATUS_CRITICAL, "2 critical: db, mq");
	cr_assert(run_until_reqs(n + 3, 5));
	cr_assert(is_op(n, KV_GET));
	cr_assert(is_op(n + 1, FLEET));
	cr_assert(is_op(n + 2, UPD));
	cr_assert_str_eq(update_field(n + 2, "Output"),
			 "kept by fleet floor: 0 of 1 healthy (min_healthy 1); "
			 "2 critical: db, mq");
	cr_assert_eq(count_logs("event=fleet_floor_kept"), 1, "one stay");
}
