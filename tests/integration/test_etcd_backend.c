/*
 * test_etcd_backend.c - the etcd backend against REAL etcd servers.
 *
 * Each test drives hr_registry_etcd directly on its own ev loop with a real
 * hr_http, while tests/support/etcd_harness.py (run as a controller child,
 * "serve" mode) owns the etcd processes and a /v3/watch stream. Commands to
 * the harness are answered while the loop keeps running, so the backend is
 * never starved. Event times from the harness are CLOCK_MONOTONIC, like
 * now() here; deadlines are the issue's, with its margins.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ev.h>

#include "etcd/etcd.h"
#include "etcd/etcd_lease.h"
#include "healthreg/http.h"
#include "healthreg/log.h"

#define PREFIX "services/"
#define KEY "services/echo/127.0.0.1:9001"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Measurements for the report: stderr, not cr_log_warn (which fails the run). */
static void measure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void measure(const char *fmt, ...)
{
	va_list ap;

	fputs("[MEASURE] ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- strdup failures ------------------------------------------------ */

/*
 * This binary's strdup() stands in for libc's for every caller (the
 * backend, the lease, libcurl's curl_slist_append()): it fails once for
 * the pointer FAIL_PTR or for a string equal to FAIL_STR when one is set,
 * and counts that in FAILED.
 */
static const char *FAIL_PTR;
static const char *FAIL_STR;
static int FAILED;

char *strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if ((FAIL_PTR && s == FAIL_PTR) || (FAIL_STR && !strcmp(s, FAIL_STR))) {
		FAIL_PTR = NULL;
		FAIL_STR = NULL;
		FAILED++;
		return NULL;
	}
	d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* ---- the harness controller ------------------------------------------ */

struct harness {
	pid_t pid;
	int to, from;
	char buf[1 << 20];
	size_t len;
	ev_io io;
	bool eof;
	char endpoints[4][64];
	int n_endpoints;
};

static struct harness H;
static struct ev_loop *L;
static struct hr_http *HTTP;

static void harness_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	ssize_t n;

	(void)loop;
	(void)w;
	(void)revents;
	if (H.len + 1 >= sizeof(H.buf))
		cr_assert_fail("harness reply too large");
	n = read(H.from, H.buf + H.len, sizeof(H.buf) - 1 - H.len);
	if (n > 0)
		H.len += (size_t)n;
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		H.eof = true;
	H.buf[H.len] = '\0';
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	*(bool *)w->data = true;
	ev_break(loop, EVBREAK_ONE);
}

/* Run the loop until one reply line is in; the line, parsed. */
static cJSON *harness_line(double timeout)
{
	bool expired = false;
	ev_timer guard;
	char *nl;
	cJSON *j;

	ev_timer_init(&guard, guard_cb, timeout, 0.);
	guard.data = &expired;
	ev_timer_start(L, &guard);
	while (!(nl = memchr(H.buf, '\n', H.len)) && !H.eof && !expired)
		ev_run(L, EVRUN_ONCE);
	ev_timer_stop(L, &guard);
	cr_assert_not_null(nl, "harness: no reply (eof=%d expired=%d) %.*s",
			   H.eof, expired, (int)H.len, H.buf);
	*nl = '\0';
	j = cJSON_Parse(H.buf);
	cr_assert_not_null(j, "harness: bad reply %s", H.buf);
	H.len -= (size_t)(nl + 1 - H.buf);
	memmove(H.buf, nl + 1, H.len);
	H.buf[H.len] = '\0';
	if (cJSON_GetObjectItem(j, "error"))
		cr_assert_fail("harness: %s",
			 cJSON_GetObjectItem(j, "error")->valuestring);
	return j;
}

static cJSON *harness_cmd(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static cJSON *harness_cmd(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n++] = '\n';
	cr_assert_eq(write(H.to, line, n), (ssize_t)n);
	return harness_line(60);
}

static void harness_start_args(int members, const char *extra)
{
	const char *src = getenv("HR_SOURCE_DIR");
	int in[2], out[2];
	char script[1024], nmem[8];
	cJSON *j, *e;

	cr_assert_not_null(src, "HR_SOURCE_DIR is not set");
	snprintf(script, sizeof(script), "%s/tests/support/etcd_harness.py",
		 src);
	snprintf(nmem, sizeof(nmem), "%d", members);
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	H.pid = fork();
	cr_assert_geq(H.pid, 0);
	if (H.pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		if (extra)
			execlp("python3", "python3", script, "serve",
			       "--members", nmem, extra, (char *)NULL);
		else
			execlp("python3", "python3", script, "serve",
			       "--members", nmem, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	H.to = in[1];
	H.from = out[0];
	fcntl(H.from, F_SETFL, fcntl(H.from, F_GETFL) | O_NONBLOCK);
	ev_io_init(&H.io, harness_read_cb, H.from, EV_READ);
	ev_io_start(L, &H.io);
	j = harness_line(60);
	H.n_endpoints = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "endpoints"))
		snprintf(H.endpoints[H.n_endpoints++], sizeof(H.endpoints[0]),
			 "%s", e->valuestring);
	cJSON_Delete(j);
	cJSON_Delete(harness_cmd("watch %s", PREFIX));
}

static void harness_start(int members)
{
	harness_start_args(members, NULL);
}

/* Log lines go to stderr; event names are also counted for assertions. */
static char LOGGED[256][48];
static int N_LOGGED;

static void log_sink(int level, const char *event, const char *const *kv,
		     void *payload)
{
	char line[2048];

	(void)payload;
	hr_log_format_line(line, sizeof(line), HR_LOG_LOGFMT, level, event,
			   kv);
	fputs(line, stderr);
	if (N_LOGGED < 256)
		snprintf(LOGGED[N_LOGGED++], sizeof(LOGGED[0]), "%s", event);
}

static int logged(const char *event)
{
	int i, n = 0;

	for (i = 0; i < N_LOGGED; i++)
		n += strcmp(LOGGED[i], event) == 0;
	return n;
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	hr_log_setup(HR_LOG_DEBUG, HR_LOG_LOGFMT, stderr);
	hr_log_set_sink(log_sink, NULL);
	L = ev_loop_new(EVFLAG_AUTO);
	cr_assert_eq(hr_http_new(&HTTP, L, NULL), 0);
}

static void teardown(void)
{
	int st;

	if (H.pid > 0) {
		/* EOF on stdin makes the harness stop every etcd it started. */
		close(H.to);
		waitpid(H.pid, &st, 0);
		H.pid = 0;
	}
	hr_http_free(HTTP);
	ev_loop_destroy(L);
}

TestSuite(etcd_backend, .init = setup, .fini = teardown, .timeout = 120);

/* ---- loop helpers ---------------------------------------------------- */

static void run_for(double seconds)
{
	bool expired = false;
	ev_timer t;

	ev_timer_init(&t, guard_cb, seconds, 0.);
	t.data = &expired;
	ev_timer_start(L, &t);
	while (!expired)
		ev_run(L, EVRUN_ONCE);
	ev_timer_stop(L, &t);
}

struct ev_view {
	char type[8];
	char key[96];
	char value[1024];
	char lease[32];
	double t;
	long revision;
};

static int events(struct ev_view *out, int max)
{
	cJSON *j = harness_cmd("events"), *e;
	int n = 0;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events")) {
		if (n >= max)
			break;
		snprintf(out[n].type, sizeof(out[n].type), "%s",
			 cJSON_GetObjectItem(e, "type")->valuestring);
		snprintf(out[n].key, sizeof(out[n].key), "%s",
			 cJSON_GetObjectItem(e, "key")->valuestring);
		snprintf(out[n].value, sizeof(out[n].value), "%s",
			 cJSON_GetObjectItem(e, "value")->valuestring);
		snprintf(out[n].lease, sizeof(out[n].lease), "%s",
			 cJSON_GetObjectItem(e, "lease")->valuestring);
		out[n].t = cJSON_GetObjectItem(e, "t")->valuedouble;
		out[n].revision =
			(long)cJSON_GetObjectItem(e, "revision")->valuedouble;
		n++;
	}
	cJSON_Delete(j);
	return n;
}

#define EV_MAX 1024
static struct ev_view EV[EV_MAX];

/*
 * Wait (running the loop) until event number index exists; return the
 * number of events seen. Fails after timeout seconds.
 */
static int wait_events(int index, double timeout)
{
	double deadline = now() + timeout;
	int n;

	for (;;) {
		n = events(EV, EV_MAX);
		if (n > index)
			return n;
		if (now() > deadline)
			break;
		run_for(0.02);
	}
	cr_assert_fail("no event #%d within %.1fs (have %d)", index, timeout, n);
	return n;
}

/* The status inside a resolver-format value; checks the format too. */
static const char *value_status(const char *value)
{
	static char status[16];
	cJSON *j = cJSON_Parse(value), *md;

	cr_assert_not_null(j, "value is not JSON: %s", value);
	cr_assert_eq(cJSON_GetObjectItem(j, "Op")->valueint, 0);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "Addr")->valuestring,
			 "127.0.0.1:9001");
	md = cJSON_GetObjectItem(j, "Metadata");
	cr_assert(cJSON_IsObject(md));
	cr_assert_str_eq(cJSON_GetObjectItem(md, "id")->valuestring, "echo-1");
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(md, "tags")));
	snprintf(status, sizeof(status), "%s",
		 cJSON_GetObjectItem(md, "status")->valuestring);
	cJSON_Delete(j);
	return status;
}

/* ---- the backend ----------------------------------------------------- */

static char *tags[] = { "v1", NULL };
static struct hr_header meta[] = { { "zone", "a" } };
static struct hr_service_spec SVC = {
	.name = "echo", .id = "echo-1", .address = "127.0.0.1", .port = 9001,
	.tags = tags, .n_tags = 1, .meta = meta, .n_meta = 1,
};

static struct hr_registry *make_svc(const struct hr_service_spec *svc,
				    struct hr_registry_stats *stats,
				    const char *extra, int64_t shutdown_ms)
{
	struct hr_registry_env env = { L, HTTP, svc, shutdown_ms, stats,
				       NULL };
	struct hr_registry *r = NULL;
	struct hr_diag d;
	struct hr_err err = { "" };
	char json[2048], eps[512] = "";
	cJSON *conf;
	int i;

	for (i = 0; i < H.n_endpoints; i++) {
		size_t n = strlen(eps);

		snprintf(eps + n, sizeof(eps) - n, "%s\"%s\"", i ? "," : "",
			 H.endpoints[i]);
	}
	/* The status is checked in the value: the document format, unless
	 * the test chose one. */
	snprintf(json, sizeof(json), "{\"endpoints\":[%s]%s%s%s}", eps,
		 extra && strstr(extra, "value_format") ? "" :
		 ",\"value_format\":\"document\"",
		 extra ? "," : "", extra ? extra : "");
	conf = cJSON_Parse(json);
	cr_assert_not_null(conf, "%s", json);
	hr_diag_init(&d);
	hr_registry_etcd.validate(conf, "registry.etcd", &d);
	cr_assert_eq(d.errors, 0, "%s: %s", json, d.n ? d.v[0].text : "");
	hr_diag_dispose(&d);
	cr_assert_eq(hr_registry_etcd.create(&r, conf, &env, &err), 0, "%s",
		     err.msg);
	cJSON_Delete(conf);
	return r;
}

static struct hr_registry *make(const char *extra, int64_t shutdown_ms)
{
	return make_svc(&SVC, NULL, extra, shutdown_ms);
}

static void done_cb(void *payload)
{
	*(double *)payload = now();
}

/* Shut down, wait for done; returns the time done was called. */
static double shutdown_and_wait(struct hr_registry *r, double *t0)
{
	double t_done = 0;
	double deadline;

	*t0 = now();
	hr_registry_etcd.shutdown(r, done_cb, &t_done);
	deadline = now() + 10;
	while (!t_done && now() < deadline)
		run_for(0.01);
	cr_assert(t_done > 0, "shutdown never finished");
	hr_registry_etcd.destroy(r);
	return t_done;
}

/* ---- tests ----------------------------------------------------------- */

/*
 * PUT, status rewrite, DELETE on critical, PUT on recovery, and revoke on
 * shutdown, all seen by a real watcher.
 */
Test(etcd_backend, register_deregister_reregister_and_revoke)
{
	struct hr_registry *r;
	double t0, t_done;
	int n;

	harness_start(1);
	r = make("\"lease_ttl\":\"3s\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "1 passing");
	n = wait_events(0, 5);
	cr_assert_str_eq(EV[0].type, "PUT");
	cr_assert_str_eq(value_status(EV[0].value), "passing");
	cr_assert_str_neq(EV[0].lease, "0");

	hr_registry_etcd.apply(r, HR_STATUS_WARNING, "1 warning: db");
	n = wait_events(1, 5);
	cr_assert_str_eq(EV[1].type, "PUT");
	cr_assert_str_eq(value_status(EV[1].value), "warning");

	t0 = now();
	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "1 critical: db");
	n = wait_events(2, 5);
	cr_assert_str_eq(EV[2].type, "DELETE");
	measure("apply(critical) -> DELETE seen by watcher: %.1f ms",
		    (EV[2].t - t0) * 1000);
	cr_assert_lt(EV[2].t - t0, 2.0);

	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "1 passing");
	n = wait_events(3, 5);
	cr_assert_str_eq(EV[3].type, "PUT");
	cr_assert_str_eq(value_status(EV[3].value), "passing");

	/* Keepalives only for a while: no further events. */
	run_for(2.5);
	cr_assert_eq(events(EV, 512), 4);

	t_done = shutdown_and_wait(r, &t0);
	n = wait_events(4, 3);
	cr_assert_str_eq(EV[4].type, "DELETE");
	measure("shutdown -> DELETE seen: %.1f ms, done(): %.1f ms",
		    (EV[4].t - t0) * 1000, (t_done - t0) * 1000);
	/* Revoked, not expired: well inside the 3 s TTL. */
	cr_assert_lt(EV[4].t - t0, 1.0);
	cr_assert_eq(n, 5);
}

/*
 * The default (grpc) value is {"Op":0,"Addr":...} for every registrable
 * status: passing -> warning -> passing writes nothing after the first
 * PUT (no event, so no gRPC client reconnects); critical still deletes.
 */
Test(etcd_backend, grpc_value_not_rewritten_on_warning)
{
	struct hr_registry *r;
	double t0;
	int n;

	harness_start(1);
	r = make("\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "1 passing");
	n = wait_events(0, 5);
	cr_assert_str_eq(EV[0].type, "PUT");
	cr_assert_str_eq(EV[0].value, "{\"Op\":0,\"Addr\":\"127.0.0.1:9001\"}");

	hr_registry_etcd.apply(r, HR_STATUS_WARNING, "1 warning: db");
	run_for(0.5);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "1 passing");
	run_for(0.5);
	hr_registry_etcd.apply(r, HR_STATUS_WARNING, "1 warning: db");
	run_for(0.5);
	cr_assert_eq(events(EV, 512), 1, "a status change rewrote the value");

	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "1 critical: db");
	n = wait_events(1, 5);
	cr_assert_str_eq(EV[1].type, "DELETE");
	hr_registry_etcd.apply(r, HR_STATUS_WARNING, "1 warning: db");
	n = wait_events(2, 5);
	cr_assert_str_eq(EV[2].type, "PUT");
	cr_assert_str_eq(EV[2].value, EV[0].value);
	shutdown_and_wait(r, &t0);
	n = wait_events(3, 3);
	cr_assert_eq(n, 4);
}

/* Over a steady period only keepalives go out: no event at all. */
Test(etcd_backend, no_redundant_writes_when_steady, .timeout = 90)
{
	struct hr_registry *r;
	cJSON *kv1, *kv2;
	int i;

	harness_start(1);
	r = make("\"lease_ttl\":\"3s\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "1 passing");
	wait_events(0, 5);
	kv1 = harness_cmd("get %s", KEY);
	/* 30 s, with the agent re-applying the same status (new summaries). */
	for (i = 0; i < 30; i++) {
		char out[32];

		snprintf(out, sizeof(out), "passing, run %d", i);
		hr_registry_etcd.apply(r, HR_STATUS_PASSING, out);
		run_for(1.0);
	}
	cr_assert_eq(events(EV, 512), 1, "writes while nothing changed");
	kv2 = harness_cmd("get %s", KEY);
	cr_assert_str_eq(
		cJSON_GetObjectItem(cJSON_GetObjectItem(kv1, "kv"),
				    "mod_revision")->valuestring,
		cJSON_GetObjectItem(cJSON_GetObjectItem(kv2, "kv"),
				    "mod_revision")->valuestring);
	cJSON_Delete(kv1);
	cJSON_Delete(kv2);
	hr_registry_etcd.destroy(r);
}

/* deregister_after: a short critical spell does not touch the key. */
Test(etcd_backend, deregister_after_grace)
{
	struct hr_registry *r;
	double t0;

	harness_start(1);
	r = make("\"lease_ttl\":\"3s\",\"deregister_after\":\"2s\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	wait_events(0, 5);
	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "down");
	run_for(1.0);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	run_for(2.0);
	cr_assert_eq(events(EV, 512), 1, "a short critical spell wrote");

	t0 = now();
	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "down");
	/* Repeated criticals do not restart the grace period. */
	run_for(1.0);
	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "still down");
	wait_events(1, 5);
	cr_assert_str_eq(EV[1].type, "DELETE");
	cr_assert_geq(EV[1].t - t0, 2.0);
	cr_assert_lt(EV[1].t - t0, 3.0);
	hr_registry_etcd.destroy(r);
}

/*
 * The process dies without revoking: the lease expires the key. The
 * process is the healthreg binary (HR_BIN) with this backend and a TCP
 * check on etcd's own port, so the aggregate is passing.
 */
Test(etcd_backend, lease_expiry_after_sigkill)
{
	const char *bin = getenv("HR_BIN");
	char dir[] = "/tmp/hr-etcd-kill-XXXXXX", path[128], *port;
	double t_kill;
	pid_t child;
	FILE *f;
	int st;

	cr_assert_not_null(bin, "HR_BIN is not set");
	harness_start(1);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/agent.json", dir);
	port = strrchr(H.endpoints[0], ':') + 1;
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "{\"service\":{\"name\":\"echo\",\"id\":\"echo-1\","
		   "\"address\":\"127.0.0.1\",\"port\":9001,"
		   "\"checks\":[{\"name\":\"etcd\",\"tcp\":\"127.0.0.1:%s\","
		   "\"interval\":\"500ms\",\"timeout\":\"400ms\"}]},"
		   "\"registry\":{\"etcd\":{\"endpoints\":[\"%s\"],"
		   "\"lease_ttl\":\"3s\",\"value_format\":\"document\"}}}",
		   port, H.endpoints[0]);
	fclose(f);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		execl(bin, bin, "run", "-c", path, (char *)NULL);
		_exit(127);
	}
	wait_events(0, 10);
	cr_assert_str_eq(value_status(EV[0].value), "passing");
	run_for(1.5); /* a keepalive or two */
	t_kill = now();
	kill(child, SIGKILL);
	waitpid(child, &st, 0);
	unlink(path);
	rmdir(dir);
	wait_events(1, 3 + 1 + 1);
	cr_assert_str_eq(EV[1].type, "DELETE");
	measure("SIGKILL -> DELETE by lease expiry: %.2f s",
		    EV[1].t - t_kill);
	cr_assert_leq(EV[1].t - t_kill, 3.0 + 1.0);
}

/* etcd comes back with no data: a new lease and the key within 2 s. */
Test(etcd_backend, reregister_after_wiped_restart)
{
	struct hr_registry *r;
	cJSON *j;
	double healthy;
	int n, i;

	harness_start(1);
	r = make("\"lease_ttl\":\"3s\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	wait_events(0, 5);
	j = harness_cmd("restart 0 wipe");
	healthy = cJSON_GetObjectItem(j, "healthy_at")->valuedouble;
	cJSON_Delete(j);
	n = wait_events(1, 4);
	for (i = 1; i < n && strcmp(EV[i].type, "PUT") != 0; i++)
		;
	cr_assert_lt(i, n);
	measure("etcd healthy -> PUT again: %.2f s", EV[i].t - healthy);
	cr_assert_leq(EV[i].t - healthy, 2.0);
	cr_assert_str_eq(value_status(EV[i].value), "passing");
	/* And it stays: the new lease is kept alive past its TTL. */
	run_for(4.0);
	j = harness_cmd("get %s", KEY);
	cr_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "kv")));
	cJSON_Delete(j);
	hr_registry_etcd.destroy(r);
}

/*
 * 3 members, the endpoint in use (the leader) SIGKILLed: the key is never
 * deleted and status updates continue through the other members.
 */
Test(etcd_backend, cluster_failover_keeps_key, .timeout = 120)
{
	struct hr_registry *r;
	cJSON *j;
	char tmp[64];
	int leader, n, i;

	harness_start(3);
	j = harness_cmd("leader");
	leader = cJSON_GetObjectItem(j, "leader")->valueint;
	cJSON_Delete(j);
	/* Put the leader first, so that is the one we use and kill. */
	if (leader > 0) {
		memcpy(tmp, H.endpoints[0], sizeof(tmp));
		memcpy(H.endpoints[0], H.endpoints[leader], sizeof(tmp));
		memcpy(H.endpoints[leader], tmp, sizeof(tmp));
	}
	r = make("\"lease_ttl\":\"3s\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	wait_events(0, 5);
	cJSON_Delete(harness_cmd("kill %d", leader));
	hr_registry_etcd.apply(r, HR_STATUS_WARNING, "degraded");
	n = wait_events(1, 15);
	cr_assert_str_eq(EV[1].type, "PUT");
	cr_assert_str_eq(value_status(EV[1].value), "warning");
	/* Past two TTLs on the survivors: keepalives must be flowing. */
	run_for(6.5);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	n = wait_events(2, 10);
	cr_assert_str_eq(value_status(EV[2].value), "passing");
	/* The killed member comes back; nothing changes. */
	cJSON_Delete(harness_cmd("start %d", leader));
	run_for(2.0);
	n = events(EV, 512);
	for (i = 0; i < n; i++)
		cr_assert_str_eq(EV[i].type, "PUT", "event %d deleted the key",
				 i);
	cr_assert_eq(n, 3);
	hr_registry_etcd.destroy(r);
}

/*
 * Auth with a user restricted to the prefix. Tokens expire after 2 s
 * without an auth-checked call (keepalives are not checked), so the next
 * write after an idle spell gets 401 and the backend re-authenticates.
 */
Test(etcd_backend, auth_and_token_invalidation)
{
	struct hr_registry *r;
	char dir[] = "/tmp/hr-etcd-pw-XXXXXX", pw[128], conf[512];
	double t0;
	FILE *f;

	harness_start_args(1, "--auth-token-ttl=2");
	cJSON_Delete(harness_cmd("auth agent s3cret-pw %s", PREFIX));
	cr_assert_not_null(mkdtemp(dir));
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	f = fopen(pw, "w");
	cr_assert_not_null(f);
	fputs("s3cret-pw\n", f);
	fclose(f);
	cr_assert_eq(chmod(pw, 0600), 0); /* secret files: no group/other */
	snprintf(conf, sizeof(conf),
		 "\"lease_ttl\":\"3s\",\"username\":\"agent\","
		 "\"password_file\":\"%s\"", pw);
	r = make(conf, 5000);
	unlink(pw);
	rmdir(dir);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	wait_events(0, 5);
	cr_assert_str_eq(value_status(EV[0].value), "passing");
	cr_assert_eq(logged("etcd_authenticated"), 1);

	run_for(3.5); /* the token expires; keepalives carry on */
	hr_registry_etcd.apply(r, HR_STATUS_WARNING, "degraded");
	wait_events(1, 5);
	cr_assert_str_eq(EV[1].type, "PUT");
	cr_assert_str_eq(value_status(EV[1].value), "warning");
	cr_assert_geq(logged("etcd_token_invalid"), 1);
	cr_assert_eq(logged("etcd_authenticated"), 2);
	cr_assert_eq(events(EV, 512), 2);

	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "down");
	wait_events(2, 5);
	cr_assert_str_eq(EV[2].type, "DELETE");
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	wait_events(3, 5);
	cr_assert_str_eq(EV[3].type, "PUT");
	/* expire the token again: revoke needs one too. etcd drops a simple
	 * token between its TTL and a second later (its keeper ticks once
	 * a second): 2.5 s raced with that, 3.5 s does not. */
	run_for(3.5);
	shutdown_and_wait(r, &t0);
	wait_events(4, 3);
	cr_assert_str_eq(EV[4].type, "DELETE");
	cr_assert_eq(logged("etcd_authenticated"), 3);
}

/*
 * A key left by a previous run under another lease is taken over; and a
 * key someone else holds is never deleted by our delete-if-lease txn.
 */
Test(etcd_backend, stale_key_replaced_and_foreign_key_kept)
{
	struct hr_registry *r;
	cJSON *j;
	char old_lease[32], our_lease[32];

	harness_start(1);
	j = harness_cmd("putlease %s {\"Op\":0,\"Addr\":\"stale\"} 60", KEY);
	snprintf(old_lease, sizeof(old_lease), "%s",
		 cJSON_GetObjectItem(j, "lease")->valuestring);
	cJSON_Delete(j);
	r = make("\"lease_ttl\":\"3s\"", 5000);
	hr_registry_etcd.apply(r, HR_STATUS_PASSING, "ok");
	wait_events(1, 5);
	cr_assert_str_eq(EV[1].type, "PUT");
	cr_assert_str_eq(value_status(EV[1].value), "passing");
	cr_assert_str_neq(EV[1].lease, old_lease);
	snprintf(our_lease, sizeof(our_lease), "%s", EV[1].lease);

	/* Another instance takes the key over. */
	cJSON_Delete(harness_cmd("putlease %s {\"Op\":0,\"Addr\":\"other\"} 60",
				 KEY));
	wait_events(2, 5);
	hr_registry_etcd.apply(r, HR_STATUS_CRITICAL, "down");
	run_for(1.5);
	cr_assert_eq(events(EV, 512), 3, "the foreign key was touched");
	j = harness_cmd("get %s", KEY);
	cr_assert_str_neq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "kv"),
					      "lease")->valuestring,
			  our_lease);
	cJSON_Delete(j);
	hr_registry_etcd.destroy(r);
}

/* ---- one lease per agent (etcd_lease.c) ------------------------------ */

#define NMAX 200

TestSuite(etcd_lease, .init = setup, .fini = teardown, .timeout = 120);

/* N backends of N services ("svc<i>", port 9100 + i) on one loop. */
static struct hr_service_spec FLEET[NMAX];
static char FLEET_NAME[NMAX][16];
static struct hr_registry *FR[NMAX];
static struct hr_registry_stats FSTATS[NMAX];

/* "": service svc<i> for backend i; else every backend of this one. */
static char FLEET_ONE[16];

static void fleet_key(int i, char *buf, size_t len)
{
	if (FLEET_ONE[0])
		snprintf(buf, len, PREFIX "%s/127.0.0.1:%d", FLEET_ONE,
			 9100 + i);
	else
		snprintf(buf, len, PREFIX "svc%d/127.0.0.1:%d", i, 9100 + i);
}

static void fleet_make(int from, int to, const char *extra)
{
	int i;

	for (i = from; i < to; i++) {
		if (FLEET_ONE[0])
			snprintf(FLEET_NAME[i], sizeof(FLEET_NAME[i]), "%s",
				 FLEET_ONE);
		else
			snprintf(FLEET_NAME[i], sizeof(FLEET_NAME[i]), "svc%d",
				 i);
		FLEET[i] = (struct hr_service_spec){
			.name = FLEET_NAME[i], .id = FLEET_NAME[i],
			.address = "127.0.0.1", .port = 9100 + i,
		};
		memset(&FSTATS[i], 0, sizeof(FSTATS[i]));
		FSTATS[i].name = "etcd";
		FR[i] = make_svc(&FLEET[i], &FSTATS[i], extra, 5000);
	}
}

static void fleet_apply(int from, int to, enum hr_status st)
{
	int i;

	for (i = from; i < to; i++)
		hr_registry_etcd.apply(FR[i], st, "x");
}

/* The lease IDs etcd holds, into ids (strings); their number. */
static int leases(char ids[][32], int max)
{
	cJSON *j = harness_cmd("leases"), *e;
	int n = 0;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "leases")) {
		if (n < max)
			snprintf(ids[n], sizeof(ids[0]), "%s", e->valuestring);
		n++;
	}
	cJSON_Delete(j);
	return n;
}

/* The keys attached to lease id, as one cJSON array (caller deletes the
 * returned object); *ttl its TTL (-1: gone). */
static cJSON *lease_keys(const char *id, int *ttl, int *n)
{
	cJSON *j = harness_cmd("leasekeys %s", id);

	*ttl = cJSON_GetObjectItem(j, "ttl")->valueint;
	*n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "keys"));
	return j;
}

static bool has_key(const cJSON *j, const char *key)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "keys"))
		if (strcmp(e->valuestring, key) == 0)
			return true;
	return false;
}

static double etcd_metric(const char *name_label)
{
	cJSON *j = harness_cmd("metric %s", name_label);
	double v = cJSON_GetObjectItem(j, "value")->valuedouble;

	cJSON_Delete(j);
	return v;
}

static double etcd_keepalives(void)
{
	return etcd_metric("grpc_server_msg_received_total "
			   "grpc_method=\"LeaseKeepAlive\"");
}

/* Writes etcd's store applied: puts, deletes and txns. */
static double etcd_writes(void)
{
	return etcd_metric("etcd_mvcc_put_total") +
	       etcd_metric("etcd_mvcc_delete_total") +
	       etcd_metric("etcd_mvcc_txn_total");
}

/* Run the loop until the watch has at least n events. */
static int wait_n_events(int n, double timeout)
{
	return wait_events(n - 1, timeout);
}

/* Events [from, n) of type on key (NULL: any key). */
static int count_from(int from, int n, const char *type, const char *key)
{
	int i, c = 0;

	for (i = from; i < n; i++)
		c += !strcmp(EV[i].type, type) &&
		     (!key || !strcmp(EV[i].key, key));
	return c;
}

static int count_events(int n, const char *type, const char *key)
{
	return count_from(0, n, type, key);
}

/*
 * N backends on one loop, one etcd: exactly one lease, every key on it,
 * keepalives that do not grow with N, and no write while nothing changes.
 */
static void one_lease_for(int n)
{
	char ids[4][32], key[96];
	double k0, k1, w0, w1;
	cJSON *j;
	int i, ttl, nk;

	harness_start(1);
	fleet_make(0, n, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_apply(0, n, HR_STATUS_PASSING);
	wait_n_events(n, 30);
	cr_assert_eq(count_events(n, "PUT", NULL), n);
	cr_assert_eq(leases(ids, 4), 1, "%d backends, %d leases", n,
		     leases(ids, 4));
	cr_assert_eq(hr_etcd_lease_open_count(), 1);
	j = lease_keys(ids[0], &ttl, &nk);
	cr_assert_eq(nk, n, "%d keys on the lease", nk);
	for (i = 0; i < n; i++) {
		fleet_key(i, key, sizeof(key));
		cr_assert(has_key(j, key), "%s not on lease %s", key, ids[0]);
	}
	cJSON_Delete(j);
	/* Idle: keepalives only, one stream (every TTL/3 = 1 s). */
	k0 = etcd_keepalives();
	w0 = etcd_writes();
	run_for(4.5);
	k1 = etcd_keepalives();
	w1 = etcd_writes();
	measure("%d backends: %.0f keepalives and %.0f writes reached etcd "
		"in 4.5 s", n, k1 - k0, w1 - w0);
	cr_assert_eq(w1 - w0, 0, "etcd applied writes while nothing changed");
	cr_assert_geq(k1 - k0, 3);
	cr_assert_leq(k1 - k0, 6, "keepalives grow with the backends");
	cr_assert_eq(events(EV, 512), n, "writes while nothing changed");
	for (i = 0; i < n; i++) {
		cr_assert_eq(FSTATS[i].state, HR_REGISTRY_REGISTERED);
		cr_assert_eq(FSTATS[i].failures, 0);
		cr_assert_geq(FSTATS[i].writes, 1 + 3,
			      "the keepalives count for every backend");
		hr_registry_etcd.destroy(FR[i]);
	}
	cr_assert_eq(hr_etcd_lease_open_count(), 0);
}

Test(etcd_lease, one_lease_for_3_backends, .timeout = 90)
{
	one_lease_for(3);
}

Test(etcd_lease, one_lease_for_200_backends, .timeout = 120)
{
	one_lease_for(NMAX);
}

/* One backend's critical deletes only its key; one shut down (a service
 * removed by a reload) deletes only its key; the lease and the others'
 * keys stay, kept alive past the TTL; the last one revokes the lease. */
Test(etcd_lease, each_backend_deletes_only_its_key, .timeout = 90)
{
	char ids[4][32], k0[96], k1[96], k2[96];
	double t0;
	cJSON *j;
	int n, ttl, nk;

	harness_start(1);
	fleet_make(0, 3, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_key(0, k0, sizeof(k0));
	fleet_key(1, k1, sizeof(k1));
	fleet_key(2, k2, sizeof(k2));
	fleet_apply(0, 3, HR_STATUS_PASSING);
	wait_n_events(3, 10);
	cr_assert_eq(leases(ids, 4), 1);

	hr_registry_etcd.apply(FR[1], HR_STATUS_CRITICAL, "down");
	n = wait_n_events(4, 5);
	cr_assert_str_eq(EV[3].type, "DELETE");
	cr_assert_str_eq(EV[3].key, k1);
	run_for(0.5);
	cr_assert_eq(events(EV, 512), 4);
	j = lease_keys(ids[0], &ttl, &nk);
	cr_assert_eq(nk, 2);
	cr_assert(has_key(j, k0) && has_key(j, k2));
	cJSON_Delete(j);
	hr_registry_etcd.apply(FR[1], HR_STATUS_PASSING, "ok");
	wait_n_events(5, 5);
	cr_assert_str_eq(EV[4].key, k1);

	/* Backend 0 goes (its service was removed): its key only. */
	shutdown_and_wait(FR[0], &t0);
	n = wait_n_events(6, 5);
	cr_assert_str_eq(EV[5].type, "DELETE");
	cr_assert_str_eq(EV[5].key, k0);
	/* Past the TTL: the keepalive goes on for the others. */
	run_for(4.0);
	n = events(EV, 512);
	cr_assert_eq(n, 6, "the others' keys were touched");
	cr_assert_eq(leases(ids, 4), 1);
	j = lease_keys(ids[0], &ttl, &nk);
	cr_assert_eq(nk, 2);
	cr_assert(has_key(j, k1) && has_key(j, k2));
	cr_assert_gt(ttl, 0);
	cJSON_Delete(j);

	/* Destroyed without a shutdown (a reload that replaced it, the
	 * agent's own timeout): the lease others keep alive would keep its
	 * key forever, so the lease deletes it; the last one revokes. */
	hr_registry_etcd.destroy(FR[1]);
	n = wait_n_events(7, 5);
	cr_assert_str_eq(EV[6].type, "DELETE");
	cr_assert_str_eq(EV[6].key, k1);
	run_for(1.0);
	cr_assert_eq(events(EV, 512), 7);
	cr_assert_eq(leases(ids, 4), 1);
	shutdown_and_wait(FR[2], &t0);
	n = wait_n_events(8, 5);
	cr_assert_eq(n, 8);
	cr_assert_str_eq(EV[7].type, "DELETE");
	cr_assert_str_eq(EV[7].key, k2);
	cr_assert_eq(leases(ids, 4), 0, "the last backend revokes the lease");
	cr_assert_eq(hr_etcd_lease_open_count(), 0);
}

/* Every backend shut down at once (the agent's SIGTERM): one revoke, no
 * delete of its own. */
Test(etcd_lease, shutdown_of_all_is_one_revoke, .timeout = 60)
{
	char ids[4][32];
	double t_done[3] = { 0, 0, 0 }, deadline;
	int i, n;

	harness_start(1);
	fleet_make(0, 3, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_apply(0, 3, HR_STATUS_PASSING);
	wait_n_events(3, 10);
	N_LOGGED = 0;
	for (i = 0; i < 3; i++)
		hr_registry_etcd.shutdown(FR[i], done_cb, &t_done[i]);
	deadline = now() + 10;
	while ((!t_done[0] || !t_done[1] || !t_done[2]) && now() < deadline)
		run_for(0.01);
	cr_assert(t_done[0] && t_done[1] && t_done[2]);
	n = wait_n_events(6, 5);
	cr_assert_eq(count_events(n, "DELETE", NULL), 3);
	cr_assert_eq(logged("etcd_lease_revoked"), 1);
	cr_assert_eq(leases(ids, 4), 0);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(FSTATS[i].state, HR_REGISTRY_DEREGISTERED);
		hr_registry_etcd.destroy(FR[i]);
	}
}

/* The lease revoked from outside: every key comes back under one new
 * lease, granted once (not once per backend), the re-puts in
 * ceil(200 / 128) = 2 txns (etcd's --max-txn-ops) rather than 200 puts. */
Test(etcd_lease, revoked_outside_regranted_once, .timeout = 120)
{
	char ids[4][32], old[32], key[96];
	struct hr_etcd_lease_counts c0, c1;
	double first = 0, last = 0;
	long revs[NMAX];
	cJSON *j;
	int n, i, m, ttl, nk, k, puts, nrev = 0;

	harness_start(1);
	n = NMAX;
	fleet_make(0, n, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_apply(0, n, HR_STATUS_PASSING);
	wait_n_events(n, 20);
	cr_assert_eq(leases(ids, 4), 1);
	snprintf(old, sizeof(old), "%s", ids[0]);
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c0);
	cJSON_Delete(harness_cmd("revoke %s", old));
	/* n DELETEs (the revoke), then n PUTs under the new lease. */
	k = wait_n_events(3 * n, 20);
	puts = count_events(k, "PUT", NULL);
	cr_assert_eq(puts, 2 * n, "%d puts", puts);
	for (i = 2 * n; i < 3 * n; i++) {
		cr_assert_str_eq(EV[i].type, "PUT");
		if (i == 2 * n)
			first = EV[i].t;
		last = EV[i].t;
		for (m = 0; m < nrev && revs[m] != EV[i].revision; m++)
			;
		if (m == nrev)
			revs[nrev++] = EV[i].revision;
	}
	measure("%d re-puts after the revoke in %d txns (revisions), "
		"%.0f ms", n, nrev, (last - first) * 1000);
	cr_assert_eq(nrev, (n + 127) / 128, "%d revisions", nrev);
	cr_assert_eq(leases(ids, 4), 1);
	cr_assert_str_neq(ids[0], old);
	j = lease_keys(ids[0], &ttl, &nk);
	cr_assert_eq(nk, n);
	for (i = 0; i < n; i++) {
		fleet_key(i, key, sizeof(key));
		cr_assert(has_key(j, key), "%s is not back", key);
	}
	cJSON_Delete(j);
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c1);
	cr_assert_eq(c1.grants - c0.grants, 1, "%llu grants",
		     (unsigned long long)(c1.grants - c0.grants));
	cr_assert_eq(c1.put_txns - c0.put_txns, 2);
	for (i = 0; i < n; i++)
		cr_assert_eq(FSTATS[i].state, HR_REGISTRY_REGISTERED);
	for (i = 0; i < n; i++)
		hr_registry_etcd.destroy(FR[i]);
}

/* Backends that reach etcd differently do not share a lease. */
Test(etcd_lease, different_settings_different_leases, .timeout = 60)
{
	char ids[4][32];

	harness_start(1);
	fleet_make(0, 2, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_make(2, 3, "\"lease_ttl\":\"4s\",\"value_format\":\"grpc\"");
	fleet_make(3, 4, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\","
			 "\"request_timeout\":\"1s\"");
	/* Another prefix and format: the same lease as 0 and 1. */
	fleet_make(4, 5, "\"lease_ttl\":\"3s\",\"value_format\":\"document\","
			 "\"prefix\":\"other/\"");
	fleet_apply(0, 5, HR_STATUS_PASSING);
	wait_n_events(4, 10); /* the watch sees services/ only */
	run_for(0.5);
	cr_assert_eq(leases(ids, 4), 3);
	cr_assert_eq(hr_etcd_lease_open_count(), 3);
	cr_assert_eq(hr_etcd_lease_of(FR[0]), hr_etcd_lease_of(FR[1]));
	cr_assert_eq(hr_etcd_lease_of(FR[0]), hr_etcd_lease_of(FR[4]));
	cr_assert_neq(hr_etcd_lease_of(FR[0]), hr_etcd_lease_of(FR[2]));
	cr_assert_neq(hr_etcd_lease_of(FR[0]), hr_etcd_lease_of(FR[3]));

	/* Credentials: another password is another lease (auth is off in
	 * this etcd: these never get one, which does not matter here). */
	{
		char dir[] = "/tmp/hr-etcd-pw-XXXXXX", p1[128], p2[128];
		char c1[512], c2[512];
		FILE *f;

		cr_assert_not_null(mkdtemp(dir));
		snprintf(p1, sizeof(p1), "%s/p1", dir);
		snprintf(p2, sizeof(p2), "%s/p2", dir);
		f = fopen(p1, "w");
		fputs("one\n", f);
		fclose(f);
		f = fopen(p2, "w");
		fputs("two\n", f);
		fclose(f);
		cr_assert_eq(chmod(p1, 0600), 0);
		cr_assert_eq(chmod(p2, 0600), 0);
		snprintf(c1, sizeof(c1), "\"lease_ttl\":\"3s\",\"username\":"
			 "\"u\",\"password_file\":\"%s\"", p1);
		snprintf(c2, sizeof(c2), "\"lease_ttl\":\"3s\",\"username\":"
			 "\"u\",\"password_file\":\"%s\"", p2);
		fleet_make(5, 6, c1);
		fleet_make(6, 7, c2);
		fleet_make(7, 8, c1);
		unlink(p1);
		unlink(p2);
		rmdir(dir);
	}
	cr_assert_eq(hr_etcd_lease_open_count(), 5);
	cr_assert_eq(hr_etcd_lease_of(FR[5]), hr_etcd_lease_of(FR[7]));
	cr_assert_neq(hr_etcd_lease_of(FR[5]), hr_etcd_lease_of(FR[6]));
	cr_assert_neq(hr_etcd_lease_of(FR[5]), hr_etcd_lease_of(FR[0]));
	for (int i = 0; i < 8; i++)
		hr_registry_etcd.destroy(FR[i]);
	cr_assert_eq(hr_etcd_lease_open_count(), 0);
}

/* etcd down: every backend on the lease shows the failing keepalive in
 * its own state; all recover together. */
Test(etcd_lease, keepalive_failure_in_every_backend, .timeout = 90)
{
	cJSON *j;
	int i;

	harness_start(1);
	fleet_make(0, 3, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_apply(0, 3, HR_STATUS_PASSING);
	wait_n_events(3, 10);
	cJSON_Delete(harness_cmd("kill 0"));
	run_for(2.5);
	for (i = 0; i < 3; i++) {
		cr_assert_geq(FSTATS[i].failures, 1, "backend %d", i);
		cr_assert(FSTATS[i].unreachable);
		cr_assert_neq(FSTATS[i].last_error[0], '\0');
	}
	j = harness_cmd("start 0");
	cJSON_Delete(j);
	run_for(2.5);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(FSTATS[i].failures, 0, "backend %d", i);
		cr_assert_eq(FSTATS[i].state, HR_REGISTRY_REGISTERED);
		hr_registry_etcd.destroy(FR[i]);
	}
}

/*
 * A reload's new backend for the same instance (the same key) on the
 * same lease: the old one going, destroyed or shut down, hands the key
 * over instead of deleting it (its delete-if-lease txn would hold); the
 * new one writes nothing while the value is the same, and deletes it when
 * it turns critical.
 */
Test(etcd_lease, same_key_handed_over_on_reload, .timeout = 60)
{
	struct hr_registry *a, *b, *c;
	char k0[96];
	double t0;
	cJSON *j;

	harness_start(1);
	fleet_make(0, 1, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_key(0, k0, sizeof(k0));
	a = FR[0];
	hr_registry_etcd.apply(a, HR_STATUS_PASSING, "ok");
	wait_n_events(1, 5);
	/* destroyed (a reload of the same identity) */
	b = make_svc(&FLEET[0], NULL,
		     "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"", 5000);
	hr_registry_etcd.destroy(a);
	hr_registry_etcd.apply(b, HR_STATUS_PASSING, "ok");
	run_for(1.0);
	cr_assert_eq(events(EV, 512), 1, "the key was rewritten or deleted");
	/* shut down (a reload that retires it) */
	c = make_svc(&FLEET[0], NULL,
		     "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"", 5000);
	shutdown_and_wait(b, &t0);
	hr_registry_etcd.apply(c, HR_STATUS_PASSING, "ok");
	run_for(1.0);
	cr_assert_eq(events(EV, 512), 1, "the key was rewritten or deleted");
	j = harness_cmd("get %s", k0);
	cr_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "kv")));
	cJSON_Delete(j);
	/* ... and it is the new backend's to delete */
	hr_registry_etcd.apply(c, HR_STATUS_CRITICAL, "down");
	wait_n_events(2, 5);
	cr_assert_str_eq(EV[1].type, "DELETE");
	cr_assert_str_eq(EV[1].key, k0);
	hr_registry_etcd.destroy(c);
}

/* Run the loop until etcd holds exactly one lease with n keys; its ID. */
static void wait_one_lease_with(int n, double timeout, char *id, size_t len)
{
	double deadline = now() + timeout;
	char ids[4][32];
	int ttl, nk = -1, nl = -1;

	while (now() < deadline) {
		nl = leases(ids, 4);
		if (nl == 1) {
			cJSON_Delete(lease_keys(ids[0], &ttl, &nk));
			if (nk == n) {
				snprintf(id, len, "%s", ids[0]);
				return;
			}
		}
		run_for(0.1);
	}
	cr_assert_fail("not one lease with %d keys: %d leases, %d keys", n, nl,
		       nk);
}

/* etcd restarted with its data wiped: the lease is found lost once (the
 * keepalive), granted once, and every key is back under it. */
Test(etcd_lease, wiped_restart_one_new_lease, .timeout = 90)
{
	struct hr_etcd_lease_counts c;
	char id[32], id2[32];
	cJSON *j;
	int i, n = 20;

	harness_start(1);
	fleet_make(0, n, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\"");
	fleet_apply(0, n, HR_STATUS_PASSING);
	wait_one_lease_with(n, 10, id, sizeof(id));
	j = harness_cmd("restart 0 wipe");
	cJSON_Delete(j);
	wait_one_lease_with(n, 10, id2, sizeof(id2));
	cr_assert_str_neq(id, id2);
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c);
	cr_assert_eq(c.grants, 2, "%llu grants", (unsigned long long)c.grants);
	cr_assert_eq(c.members, (size_t)n);
	/* It stays: the new lease is kept alive past its TTL. */
	run_for(4.0);
	wait_one_lease_with(n, 1, id, sizeof(id));
	cr_assert_str_eq(id, id2);
	for (i = 0; i < n; i++) {
		cr_assert_eq(FSTATS[i].state, HR_REGISTRY_REGISTERED);
		hr_registry_etcd.destroy(FR[i]);
	}
}

/* Auth: one authenticate for every backend on the lease; when the token
 * expires, the backends that meet the 401 together cause one new
 * authenticate. */
Test(etcd_lease, one_token_for_every_backend, .timeout = 90)
{
	char dir[] = "/tmp/hr-etcd-pw-XXXXXX", pw[128], conf[512];
	FILE *f;
	int i;

	harness_start_args(1, "--auth-token-ttl=2");
	cJSON_Delete(harness_cmd("auth agent s3cret-pw %s", PREFIX));
	cr_assert_not_null(mkdtemp(dir));
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	f = fopen(pw, "w");
	cr_assert_not_null(f);
	fputs("s3cret-pw\n", f);
	fclose(f);
	cr_assert_eq(chmod(pw, 0600), 0);
	snprintf(conf, sizeof(conf),
		 "\"lease_ttl\":\"3s\",\"username\":\"agent\","
		 "\"password_file\":\"%s\"", pw);
	fleet_make(0, 3, conf);
	unlink(pw);
	rmdir(dir);
	fleet_apply(0, 3, HR_STATUS_PASSING);
	wait_n_events(3, 5);
	cr_assert_eq(logged("etcd_authenticated"), 1);
	run_for(3.5); /* the token expires; keepalives carry on */
	fleet_apply(0, 3, HR_STATUS_WARNING); /* document: 3 puts */
	wait_n_events(6, 5);
	cr_assert_eq(count_from(3, 6, "PUT", NULL), 3);
	cr_assert_geq(logged("etcd_token_invalid"), 1);
	cr_assert_eq(logged("etcd_authenticated"), 2);
	for (i = 0; i < 3; i++)
		hr_registry_etcd.destroy(FR[i]);
}

/* The fleet floor with every instance of the service on one lease (one
 * agent): all critical at once, min_healthy 1 -> exactly one stays; a
 * leaver's recovery lets the kept one go after the next (shared)
 * keepalive's re-read. */
Test(etcd_lease, floor_on_one_lease, .timeout = 90)
{
	char key[96], kept[96] = "";
	int n, i, dels;

	harness_start(1);
	snprintf(FLEET_ONE, sizeof(FLEET_ONE), "echo");
	fleet_make(0, 3, "\"lease_ttl\":\"3s\",\"value_format\":\"grpc\","
			 "\"min_healthy\":1");
	fleet_apply(0, 3, HR_STATUS_PASSING);
	wait_n_events(3, 5);
	fleet_apply(0, 3, HR_STATUS_CRITICAL);
	wait_n_events(5, 5);
	run_for(1.5); /* a keepalive and its re-read: still one stays */
	n = events(EV, EV_MAX);
	dels = count_from(3, n, "DELETE", NULL);
	cr_assert_eq(dels, 2, "%d deletes", dels);
	for (i = 0; i < 3; i++) {
		fleet_key(i, key, sizeof(key));
		if (!count_from(3, n, "DELETE", key)) {
			snprintf(kept, sizeof(kept), "%s", key);
			cr_assert(FSTATS[i].floor_kept);
		}
	}
	cr_assert_neq(kept[0], '\0');
	/* A leaver recovers: the kept one may now go. */
	for (i = 0; i < 3; i++) {
		fleet_key(i, key, sizeof(key));
		if (strcmp(key, kept)) {
			hr_registry_etcd.apply(FR[i], HR_STATUS_PASSING, "ok");
			break;
		}
	}
	n = wait_n_events(7, 5);
	cr_assert_eq(count_from(5, n, "PUT", NULL), 1);
	cr_assert_eq(count_from(5, n, "DELETE", kept), 1);
	for (i = 0; i < 3; i++) {
		cr_assert(!FSTATS[i].floor_kept);
		hr_registry_etcd.destroy(FR[i]);
	}
}

/* etcd with auth on (user "agent", READWRITE on services/) and tokens that
 * expire after 2 s; the backends' settings with lease_ttl into conf,
 * through a password file that is gone once fleet_make() has read it
 * (call auth_conf_done() then). */
static char AUTH_DIR[64], AUTH_PW[128];

static void auth_conf(const char *lease_ttl, char *conf, size_t len)
{
	FILE *f;

	harness_start_args(1, "--auth-token-ttl=2");
	cJSON_Delete(harness_cmd("auth agent s3cret-pw %s", PREFIX));
	snprintf(AUTH_DIR, sizeof(AUTH_DIR), "/tmp/hr-etcd-pw-XXXXXX");
	cr_assert_not_null(mkdtemp(AUTH_DIR));
	snprintf(AUTH_PW, sizeof(AUTH_PW), "%s/pw", AUTH_DIR);
	f = fopen(AUTH_PW, "w");
	cr_assert_not_null(f);
	fputs("s3cret-pw\n", f);
	fclose(f);
	cr_assert_eq(chmod(AUTH_PW, 0600), 0);
	snprintf(conf, len,
		 "\"lease_ttl\":\"%s\",\"username\":\"agent\","
		 "\"password_file\":\"%s\"", lease_ttl, AUTH_PW);
}

static void auth_conf_done(void)
{
	unlink(AUTH_PW);
	rmdir(AUTH_DIR);
}

/*
 * A backend told 401 while the lease's own request waits in the lane
 * (8 transfers to one place at once) with the same, refused token: the
 * lease drops that request before the header list it borrows, and sends
 * it again after the new authentication. Here the request is the delete
 * of a destroyed backend's key, queued (urgent) behind 8 puts that all
 * meet the expired token. Under ASan, the list freed under the waiting
 * request was read by libcurl as soon as the lane started it.
 */
Test(etcd_lease, token_refused_while_lease_request_waits, .timeout = 90)
{
	char conf[512], ids[4][32], key[96], gone[96];
	struct hr_etcd_lease_counts c0, c1;
	cJSON *j;
	int i, k, ttl, nk, n = 10;

	/* TTL 60 s: the first keepalive is due 20 s in, after the test. */
	auth_conf("60s", conf, sizeof(conf));
	fleet_make(0, n, conf);
	auth_conf_done();
	fleet_apply(0, n, HR_STATUS_PASSING);
	wait_n_events(n, 10);
	cr_assert_eq(logged("etcd_authenticated"), 1);
	cr_assert_eq(leases(ids, 4), 1);
	run_for(3.5); /* the token expires */
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c0);
	cr_assert_eq(c0.keepalives, 0);
	/* n - 1 puts with the expired token (8 run, 1 waits), then the
	 * lease's delete of the last one's key, first in the queue. */
	fleet_apply(0, n - 1, HR_STATUS_WARNING);
	fleet_key(n - 1, gone, sizeof(gone));
	hr_registry_etcd.destroy(FR[n - 1]);
	FR[n - 1] = NULL;
	wait_n_events(n + n, 10);
	run_for(0.5);
	k = events(EV, EV_MAX);
	cr_assert_eq(k, n + n, "%d events", k);
	cr_assert_eq(count_from(n, k, "PUT", NULL), n - 1);
	cr_assert_eq(count_from(n, k, "DELETE", gone), 1);
	cr_assert_geq(logged("etcd_token_invalid"), 1);
	cr_assert_eq(logged("etcd_authenticated"), 2);
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c1);
	cr_assert_eq(c1.auths - c0.auths, 1);
	/* Every other key stays, with its new value, under the one lease. */
	cr_assert_eq(leases(ids, 4), 1);
	j = lease_keys(ids[0], &ttl, &nk);
	cr_assert_eq(nk, n - 1, "%d keys on the lease", nk);
	for (i = 0; i < n - 1; i++) {
		fleet_key(i, key, sizeof(key));
		cr_assert(has_key(j, key), "%s is gone", key);
		cr_assert_eq(FSTATS[i].state, HR_REGISTRY_REGISTERED);
	}
	cJSON_Delete(j);
	for (i = 0; i < n - 1; i++)
		hr_registry_etcd.destroy(FR[i]);
}

/* Run the loop until the lease has sent more than txns re-put txns (the
 * answer not yet read: nothing else runs after the send). */
static void run_until_txn_sent(const struct hr_etcd_lease *l, uint64_t txns,
			       double timeout)
{
	double deadline = now() + timeout;
	struct hr_etcd_lease_counts c;
	ev_timer tick;
	bool dummy = false;

	ev_timer_init(&tick, guard_cb, 0.01, 0.01);
	tick.data = &dummy;
	ev_timer_start(L, &tick);
	for (;;) {
		hr_etcd_lease_counts(l, &c);
		if (c.put_txns > txns)
			break;
		cr_assert(now() < deadline, "no re-put txn within %.0fs",
			  timeout);
		ev_run(L, EVRUN_ONCE);
	}
	ev_timer_stop(L, &tick);
}

/* Run the loop until the lease has answered a keepalive after k. */
static void run_until_keepalive(const struct hr_etcd_lease *l, uint64_t k,
				double timeout)
{
	double deadline = now() + timeout;
	struct hr_etcd_lease_counts c;

	for (;;) {
		hr_etcd_lease_counts(l, &c);
		if (c.keepalives > k)
			break;
		cr_assert(now() < deadline, "no keepalive within %.0fs",
			  timeout);
		run_for(0.005);
	}
	run_for(0.05); /* its answer; the next one is TTL/3 = 1 s away */
}

/*
 * After a loss the lease puts backend A's key back in a txn; while the
 * txn is in flight a reload replaces A with B (the same instance, the
 * same key), which puts the key itself (with its own value). When the
 * txn is answered, the key belongs to B: the lease must not delete it as
 * a gone backend's (its delete-if-lease would hold: the lease is the
 * same), or B believes a key registered that etcd no longer has.
 * b_first: B is created before A goes (a reload), else after (a third
 * backend, C, keeps the lease meanwhile).
 */
static void reput_of_gone_backend(bool b_first)
{
	const char *conf = "\"lease_ttl\":\"3s\"";
	struct hr_registry *a, *b, *c;
	struct hr_etcd_lease_counts c0;
	const struct hr_etcd_lease *l;
	char ids[4][32], old[32];
	cJSON *j, *kv;
	int n, i, last = -1;

	harness_start(1);
	a = make(conf, 5000);
	fleet_make(0, 1, conf);
	c = FR[0];
	hr_registry_etcd.apply(a, HR_STATUS_PASSING, "ok");
	hr_registry_etcd.apply(c, HR_STATUS_PASSING, "ok");
	wait_n_events(2, 5);
	l = hr_etcd_lease_of(a);
	cr_assert_eq(l, hr_etcd_lease_of(c));
	cr_assert_eq(leases(ids, 4), 1);
	snprintf(old, sizeof(old), "%s", ids[0]);
	/* The revoke between two keepalives: the next one finds it lost. */
	hr_etcd_lease_counts(l, &c0);
	run_until_keepalive(l, c0.keepalives, 5);
	hr_etcd_lease_counts(l, &c0);
	cJSON_Delete(harness_cmd("revoke %s", old));
	run_until_txn_sent(l, c0.put_txns, 5);
	/* The txn (A's key and C's) is on its way: the reload now. */
	if (b_first) {
		b = make(conf, 5000);
		hr_registry_etcd.destroy(a);
	} else {
		hr_registry_etcd.destroy(a);
		b = make(conf, 5000);
	}
	cr_assert_eq(hr_etcd_lease_of(b), l);
	hr_registry_etcd.apply(b, HR_STATUS_WARNING, "degraded");
	run_for(1.5);
	n = events(EV, EV_MAX);
	for (i = 0; i < n; i++)
		if (!strcmp(EV[i].key, KEY))
			last = i;
	cr_assert_geq(last, 0);
	cr_assert_str_eq(EV[last].type, "PUT", "the key was deleted "
			 "(event %d of %d)", last, n);
	cr_assert_eq(leases(ids, 4), 1);
	j = harness_cmd("get %s", KEY);
	kv = cJSON_GetObjectItem(j, "kv");
	cr_assert(cJSON_IsObject(kv), "%s is gone", KEY);
	cr_assert_str_eq(value_status(cJSON_GetObjectItem(kv, "value")
				      ->valuestring), "warning");
	cr_assert_str_eq(cJSON_GetObjectItem(kv, "lease")->valuestring,
			 ids[0]);
	cJSON_Delete(j);
	/* ... and it is B's: its critical deletes it. */
	hr_registry_etcd.apply(b, HR_STATUS_CRITICAL, "down");
	n = wait_n_events(n + 1, 5);
	cr_assert_str_eq(EV[n - 1].type, "DELETE");
	cr_assert_str_eq(EV[n - 1].key, KEY);
	hr_registry_etcd.destroy(b);
	hr_registry_etcd.destroy(c);
}

Test(etcd_lease, reput_of_replaced_backend_kept, .timeout = 60)
{
	reput_of_gone_backend(true);
}

Test(etcd_lease, reput_of_destroyed_backend_adopted, .timeout = 60)
{
	reput_of_gone_backend(false);
}

/*
 * A destroyed backend's key, deleted by the lease (others stay on it),
 * is deleted only as that backend wrote it: a later put under the same
 * lease (another backend of the agent, here the harness with our lease
 * ID) changed it, and the delete's compare of its mod_revision fails. A
 * delete-if-lease alone would hold, the lease being the same.
 */
Test(etcd_lease, removed_backend_delete_spares_newer_put, .timeout = 60)
{
	const char *conf = "\"lease_ttl\":\"3s\"";
	struct hr_etcd_lease_counts c0, c1;
	struct hr_registry *a;
	char ids[4][32];
	cJSON *j, *kv;

	harness_start(1);
	a = make(conf, 5000);
	fleet_make(0, 1, conf);
	hr_registry_etcd.apply(a, HR_STATUS_PASSING, "ok");
	hr_registry_etcd.apply(FR[0], HR_STATUS_PASSING, "ok");
	wait_n_events(2, 5);
	cr_assert_eq(leases(ids, 4), 1);
	cJSON_Delete(harness_cmd("putunder %s newer %s", KEY, ids[0]));
	wait_n_events(3, 5);
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c0);
	hr_registry_etcd.destroy(a);
	run_for(0.5);
	hr_etcd_lease_counts(hr_etcd_lease_of(FR[0]), &c1);
	cr_assert_eq(c1.deletes - c0.deletes, 1, "no delete was tried");
	j = harness_cmd("get %s", KEY);
	kv = cJSON_GetObjectItem(j, "kv");
	cr_assert(cJSON_IsObject(kv), "the newer put was deleted");
	cr_assert_str_eq(cJSON_GetObjectItem(kv, "value")->valuestring,
			 "newer");
	cJSON_Delete(j);
	cr_assert_eq(events(EV, EV_MAX), 3);
	hr_registry_etcd.destroy(FR[0]);
}

/* The lease's token could not be copied for a backend's request: the
 * backend backs off and copies it again; it never sends without it (its
 * 401 would make the lease drop a valid token and authenticate again). */
Test(etcd_lease, token_copy_failure_keeps_lease_token, .timeout = 60)
{
	struct hr_etcd_lease_counts c;
	const struct hr_etcd_lease *l;
	double deadline;
	char conf[512];
	unsigned gen;

	auth_conf("3s", conf, sizeof(conf));
	fleet_make(0, 1, conf);
	auth_conf_done();
	l = hr_etcd_lease_of(FR[0]);
	deadline = now() + 5;
	while (!hr_etcd_lease_ready(l) && now() < deadline)
		run_for(0.01);
	cr_assert(hr_etcd_lease_ready(l));
	FAILED = 0;
	FAIL_PTR = hr_etcd_lease_token(l, &gen);
	cr_assert_not_null(FAIL_PTR);
	fleet_apply(0, 1, HR_STATUS_PASSING);
	wait_n_events(1, 5);
	cr_assert_eq(FAILED, 1, "the token was not copied for the put");
	FAIL_PTR = NULL;
	cr_assert_eq(logged("etcd_token_invalid"), 0);
	hr_etcd_lease_counts(l, &c);
	cr_assert_eq(c.auths, 1, "%llu authentications",
		     (unsigned long long)c.auths);
	cr_assert_eq(FSTATS[0].state, HR_REGISTRY_REGISTERED);
	hr_registry_etcd.destroy(FR[0]);
}

/* The Content-Type header list cannot be built: create() fails with
 * -ENOMEM and leaves no lease behind. */
Test(etcd_backend, create_fails_without_header_list, .timeout = 30)
{
	struct hr_registry_env env = { L, HTTP, &SVC, 5000, NULL, NULL };
	struct hr_registry *r = (struct hr_registry *)&env;
	struct hr_err err = { "" };
	char json[256];
	cJSON *conf;
	int rc;

	harness_start(1);
	snprintf(json, sizeof(json), "{\"endpoints\":[\"%s\"]}",
		 H.endpoints[0]);
	conf = cJSON_Parse(json);
	cr_assert_not_null(conf);
	FAILED = 0;
	FAIL_STR = "Content-Type: application/json";
	rc = hr_registry_etcd.create(&r, conf, &env, &err);
	FAIL_STR = NULL;
	cJSON_Delete(conf);
	cr_assert_eq(FAILED, 1);
	cr_assert_eq(rc, -ENOMEM, "create returned %d", rc);
	cr_assert_null(r);
	cr_assert_str_eq(err.msg, "out of memory");
	cr_assert_eq(hr_etcd_lease_open_count(), 0);
}
