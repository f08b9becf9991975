/*
 * test_regcore.c - the shared registry layer (lib/regcore.c) on its own:
 * backoff with jitter (one convention, attempts counted from 1), the
 * register_when / deregister_after grace period, done() on a fresh loop
 * iteration (and destroy from inside done), the service copy, the
 * token-bearing header lists, and a request against a loopback server
 * with a capped capture.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ev.h>

#include "healthreg/http.h"
#include "healthreg/log.h"
#include "loop.h"
#include "healthreg/regcore.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- backoff ------------------------------------------------------------ */

Test(regcore, backoff_doubles_from_attempt_one_and_caps)
{
	/* Consul's numbers: base 0.5 s, cap per TTL. */
	static const struct {
		unsigned attempt;
		int64_t base, cap;
		int64_t lo, hi;
	} t[] = {
		{ 1, 500, 10000, 250, 500 },
		{ 2, 500, 10000, 500, 1000 },
		{ 3, 500, 10000, 1000, 2000 },
		{ 5, 500, 10000, 4000, 8000 },
		{ 6, 500, 10000, 5000, 10000 },
		{ 60, 500, 10000, 5000, 10000 },
		{ 4000000000u, 500, 10000, 5000, 10000 },
		{ 1, 30000, 30000, 15000, 30000 },
		{ 1, 0, 1, 1, 1 },
		{ 0, 500, 10000, 250, 500 }, /* 0 counts as the first */
	};
	static const double rnds[] = { 0, 0.001, 0.5, 0.9999, -1, 7 };
	size_t i, k;

	for (i = 0; i < N(t); i++) {
		for (k = 0; k < N(rnds); k++) {
			int64_t d = hr_reg_backoff_ms(t[i].attempt, t[i].base,
						      t[i].cap, rnds[k]);

			cr_assert(d >= t[i].lo && d <= t[i].hi,
				  "case %zu rnd %g: %lld", i, rnds[k],
				  (long long)d);
		}
	}
}

Test(regcore, backoff_etcd_numbers)
{
	/* etcd's: base 100 ms, cap 5 s; its first retry is attempt 1 (it
	 * used to count from 0 with the same delays). */
	unsigned a;
	int64_t prev_max = 0;

	cr_assert_eq(hr_reg_backoff_ms(1, 100, 5000, 0.0), 50);
	cr_assert_eq(hr_reg_backoff_ms(1, 100, 5000, 0.999), 99);
	cr_assert_eq(hr_reg_backoff_ms(2, 100, 5000, 0.0), 100);
	for (a = 1; a <= 40; a++) {
		int64_t lo = hr_reg_backoff_ms(a, 100, 5000, 0.0);
		int64_t hi = hr_reg_backoff_ms(a, 100, 5000, 0.9999);

		cr_assert_leq(lo, hi);
		cr_assert_geq(hi, prev_max);
		cr_assert_leq(hi, 5000);
		cr_assert_geq(lo, 50);
		prev_max = hi;
	}
	cr_assert_geq(hr_reg_backoff_ms(40, 100, 5000, 0.0), 2500);
	/* Out-of-range randomness is clamped, not trusted. */
	cr_assert_eq(hr_reg_backoff_ms(1, 100, 5000, -3.0), 50);
	cr_assert_leq(hr_reg_backoff_ms(1, 100, 5000, 7.0), 100);
}

/* ---- a core on a loop, without requests --------------------------------- */

struct probe {
	struct hr_regcore core;
	int kicks, graces, deadlines, replies, dones;
	bool destroy_in_done;
	bool freed;
	struct hr_reg_reply last;
	char body[256];
};

static struct ev_loop *loop;

static bool p_reply(struct hr_regcore *c, const struct hr_reg_reply *r)
{
	struct probe *p = hr_container_of(c, struct probe, core);

	p->replies++;
	p->last = *r;
	snprintf(p->body, sizeof(p->body), "%s", r->body);
	/* No send from reply(). */
	cr_assert_eq(hr_regcore_send(c, &(struct hr_reg_req){
				     .method = "PUT", .url = "http://x/" }),
		     -EBUSY);
	return r->status == 200;
}

static void p_kick(struct hr_regcore *c)
{
	hr_container_of(c, struct probe, core)->kicks++;
}

static void p_grace(struct hr_regcore *c)
{
	struct probe *p = hr_container_of(c, struct probe, core);

	cr_assert_not(hr_regcore_wanted(c));
	p->graces++;
}

static void p_deadline(struct hr_regcore *c)
{
	hr_container_of(c, struct probe, core)->deadlines++;
}

static const struct hr_regcore_ops p_ops = {
	.reply = p_reply, .kick = p_kick, .grace_over = p_grace,
	.deadline = p_deadline,
};

static void p_done(void *payload)
{
	struct probe *p = payload;

	p->dones++;
	if (p->destroy_in_done) {
		hr_regcore_dispose(&p->core);
		p->freed = true;
	}
}

static char *tags[] = { "a", "b", NULL };
static struct hr_header meta[] = { { "k", "v" } };

static void probe_init(struct probe *p, struct hr_registry_stats *stats,
		       struct hr_http *http)
{
	struct hr_service_spec svc = {
		.name = "web", .id = "web-1", .address = "10.0.0.1",
		.port = 80, .tags = tags, .n_tags = 2, .meta = meta,
		.n_meta = 1,
	};
	struct hr_registry_env env = { loop, http, &svc, 0, stats, NULL };

	memset(p, 0, sizeof(*p));
	cr_assert_eq(hr_regcore_init(&p->core, &p_ops, &env, 8), 0);
}

static void run_for(double s)
{
	hr_test_run_for(loop, s);
}

static void loop_setup(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);
}

static void loop_teardown(void)
{
	ev_loop_destroy(loop);
}

TestSuite(regcore_loop, .init = loop_setup, .fini = loop_teardown,
	  .timeout = 20);

Test(regcore_loop, service_is_copied)
{
	struct probe p;

	probe_init(&p, NULL, NULL); /* svc was on probe_init's stack */
	cr_assert_str_eq(p.core.service.name, "web");
	cr_assert_str_eq(p.core.service.id, "web-1");
	cr_assert_str_eq(p.core.service.address, "10.0.0.1");
	cr_assert_eq(p.core.service.port, 80);
	cr_assert_eq(p.core.service.n_tags, 2);
	cr_assert_str_eq(p.core.service.tags[1], "b");
	cr_assert_null(p.core.service.tags[2]);
	cr_assert_str_eq(p.core.service.meta[0].value, "v");
	cr_assert_neq(p.core.service.tags, tags);
	hr_regcore_dispose(&p.core);
	hr_regcore_dispose(&p.core); /* idempotent */
}

/* Not wanted, and no grace period running. */
static void assert_left(const struct probe *p)
{
	cr_assert_not(hr_regcore_wanted(&p->core));
	cr_assert_not(hr_regcore_in_grace(&p->core));
}

Test(regcore_loop, grace_period)
{
	const unsigned pw = 1u << HR_STATUS_PASSING | 1u << HR_STATUS_WARNING;
	struct probe p;

	probe_init(&p, NULL, NULL);
	hr_regcore_grace_setup(&p.core, pw, 200);
	cr_assert_not(hr_regcore_wanted(&p.core)); /* no status yet */
	/* Starting outside register_when: nothing is wanted, no grace. */
	cr_assert_not(hr_regcore_status(&p.core, HR_STATUS_CRITICAL, false));
	assert_left(&p);
	cr_assert(hr_regcore_status(&p.core, HR_STATUS_PASSING, false));
	cr_assert(hr_regcore_wanted(&p.core));
	/* Leaving: still wanted for deregister_after. */
	hr_regcore_status(&p.core, HR_STATUS_CRITICAL, false);
	cr_assert(hr_regcore_wanted(&p.core));
	cr_assert(hr_regcore_in_grace(&p.core));
	run_for(0.1);
	/* Another status outside does not restart the period. */
	hr_regcore_status(&p.core, HR_STATUS_UNKNOWN, false);
	run_for(0.15);
	cr_assert_eq(p.graces, 1);
	cr_assert_eq(p.kicks, 1);
	cr_assert_not(hr_regcore_wanted(&p.core));
	/* Back in before the end: the period is cancelled. */
	hr_regcore_status(&p.core, HR_STATUS_WARNING, false);
	hr_regcore_status(&p.core, HR_STATUS_CRITICAL, false);
	hr_regcore_status(&p.core, HR_STATUS_PASSING, false);
	run_for(0.3);
	cr_assert_eq(p.graces, 1);
	cr_assert(hr_regcore_wanted(&p.core));
	/* now: leave at once. */
	hr_regcore_status(&p.core, HR_STATUS_CRITICAL, true);
	assert_left(&p);
	/* Without deregister_after: leave at once, too. */
	hr_regcore_grace_setup(&p.core, 1u << HR_STATUS_PASSING, 0);
	hr_regcore_status(&p.core, HR_STATUS_PASSING, false);
	hr_regcore_status(&p.core, HR_STATUS_WARNING, false);
	assert_left(&p);
	hr_regcore_dispose(&p.core);
}

Test(regcore_loop, done_comes_on_a_fresh_iteration_once)
{
	struct probe p;

	probe_init(&p, NULL, NULL);
	cr_assert_eq(hr_regcore_shutdown(&p.core, p_done, &p, 0), 0);
	cr_assert_eq(hr_regcore_shutdown(&p.core, p_done, &p, 0), -EALREADY);
	cr_assert(hr_regcore_shutting_down(&p.core));
	hr_regcore_finish(&p.core);
	hr_regcore_finish(&p.core);
	cr_assert_eq(p.dones, 0, "done() from inside finish");
	cr_assert(hr_regcore_finished(&p.core));
	cr_assert_not(hr_regcore_idle(&p.core));
	cr_assert_eq(hr_regcore_send(&p.core, &(struct hr_reg_req){
				     .method = "PUT", .url = "http://x/" }),
		     -ECANCELED);
	ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(p.dones, 1);
	run_for(0.05);
	cr_assert_eq(p.dones, 1);
	hr_regcore_dispose(&p.core);
}

Test(regcore_loop, deadline_finishes_and_done_may_destroy)
{
	struct probe *p = malloc(sizeof(*p));

	probe_init(p, NULL, NULL);
	p->destroy_in_done = true;
	hr_regcore_grace_setup(&p->core, 1u << HR_STATUS_PASSING, 10000);
	hr_regcore_status(&p->core, HR_STATUS_PASSING, false);
	hr_regcore_status(&p->core, HR_STATUS_CRITICAL, false);
	hr_regcore_retry_in(&p->core, 10000);
	cr_assert_not(hr_regcore_idle(&p->core));
	hr_regcore_shutdown(&p->core, p_done, p, 100);
	/* Shutdown stops the retry and grace timers. */
	cr_assert_not(hr_regcore_in_grace(&p->core));
	cr_assert(hr_regcore_idle(&p->core));
	run_for(0.3);
	cr_assert_eq(p->deadlines, 1);
	cr_assert_eq(p->dones, 1);
	cr_assert(p->freed);
	cr_assert_eq(p->kicks, 0);
	free(p); /* dispose ran in done(); nothing of the core is used after */
}

Test(regcore_loop, retry_timer_kicks)
{
	struct probe p;

	probe_init(&p, NULL, NULL);
	hr_regcore_backoff(&p.core, 1, 40, 40);
	cr_assert_not(hr_regcore_idle(&p.core));
	run_for(0.1);
	cr_assert_eq(p.kicks, 1);
	cr_assert(hr_regcore_idle(&p.core));
	hr_regcore_retry_in(&p.core, 30);
	hr_regcore_retry_stop(&p.core);
	run_for(0.1);
	cr_assert_eq(p.kicks, 1);
	hr_regcore_dispose(&p.core);
}

/* ---- a request against a loopback server --------------------------------- */

static int lfd, cfd = -1;
static char seen[4096];
static size_t n_seen;
static ev_io conn_io;

static void conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n"
				   "Connection: close\r\n\r\n"
				   "0123456789abcdefghij";
	ssize_t n = read(cfd, seen + n_seen, sizeof(seen) - 1 - n_seen);

	(void)revents;
	if (n > 0) {
		n_seen += (size_t)n;
		seen[n_seen] = '\0';
		if (!strstr(seen, "\r\n\r\n{\"a\":1}"))
			return;
		n = write(cfd, resp, sizeof(resp) - 1);
	}
	ev_io_stop(l, w);
	close(cfd);
	cfd = -1;
}

static void serve_cb(struct ev_loop *l, ev_io *w, int revents)
{
	(void)w;
	(void)revents;
	if (cfd >= 0 || (cfd = accept(lfd, NULL, NULL)) < 0)
		return;
	ev_io_init(&conn_io, conn_cb, cfd, EV_READ);
	ev_io_start(l, &conn_io);
}

Test(regcore_loop, request_reply_capture_stats)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct hr_registry_stats stats = { 0 };
	struct curl_slist *h = NULL;
	struct hr_http *http;
	struct hr_err err = { "" };
	char url[64];
	ev_io io;
	struct probe p;

	cr_assert_eq(hr_http_new(&http, loop, &err), 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	ev_io_init(&io, serve_cb, lfd, EV_READ);
	ev_io_start(loop, &io);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/x",
		 ntohs(a.sin_port));
	cr_assert_eq(hr_reg_header_add(&h, "X-Token", "s3cret"), 0);
	probe_init(&p, &stats, http);
	cr_assert_eq(hr_regcore_send(&p.core, &(struct hr_reg_req){
				     .method = "PUT", .url = url,
				     .body = "{\"a\":1}", .headers = h,
				     .secret_body = true, .timeout_ms = 2000 }),
		     0);
	cr_assert(hr_regcore_busy(&p.core));
	cr_assert_eq(hr_regcore_send(&p.core, &(struct hr_reg_req){
				     .method = "PUT", .url = url }),
		     -EBUSY);
	cr_assert(hr_test_run_until(loop, &p.replies, 5));
	cr_assert(strstr(seen, "PUT /v1/x HTTP/1.1\r\n"), "%s", seen);
	cr_assert(strstr(seen, "X-Token: s3cret\r\n"), "%s", seen);
	cr_assert_eq(p.last.rc, CURLE_OK);
	cr_assert_eq(p.last.status, 200);
	/* The capture keeps 8 bytes and says so. */
	cr_assert_str_eq(p.body, "01234567");
	cr_assert_eq(p.last.len, 8);
	cr_assert(p.last.truncated);
	cr_assert_eq(p.kicks, 1, "kick() follows reply()");
	cr_assert_eq(stats.writes, 1);
	cr_assert_eq(stats.errors, 0);
	cr_assert_not(hr_regcore_busy(&p.core));
	hr_regcore_dispose(&p.core);
	hr_reg_headers_free(h);
	ev_io_stop(loop, &io);
	close(lfd);
	hr_http_free(http);
}

/* The log lines a down registry gives: counted by event. */
static int n_unreachable, n_still, n_reachable;
static char reachable_line[512];

static void count_sink(int level, const char *event, const char *const *kv,
		       void *payload)
{
	(void)payload;
	if (!strcmp(event, "registry_unreachable"))
		n_unreachable++;
	else if (!strcmp(event, "registry_still_unreachable"))
		n_still++;
	else if (!strcmp(event, "registry_reachable")) {
		n_reachable++;
		hr_log_format_line(reachable_line, sizeof(reachable_line),
				   HR_LOG_JSON, level, event, kv);
	}
}

static void wait_replies(const struct probe *p, int n)
{
	double end = ev_time() + 5;

	while (p->replies < n && ev_time() < end)
		run_for(0.01);
	cr_assert_geq(p->replies, n, "a reply within 5 s");
}

Test(regcore_loop, a_down_registry_logs_its_state_changes_only)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct hr_registry_stats stats = { 0 };
	struct hr_http *http;
	struct hr_err err = { "" };
	char down[64], up[64];
	int i, want;
	ev_io io;
	struct probe p;

	cr_assert_eq(hr_http_new(&http, loop, &err), 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	ev_io_init(&io, serve_cb, lfd, EV_READ);
	ev_io_start(loop, &io);
	snprintf(up, sizeof(up), "http://127.0.0.1:%d/v1/x", ntohs(a.sin_port));
	snprintf(down, sizeof(down), "http://127.0.0.1:%d/v1/x",
		 hr_test_closed_port());
	stats.name = "fake";
	probe_init(&p, &stats, http);
	p.core.remind_every_s = 0.35;
	hr_log_set_sink(count_sink, NULL);
	/* 10 attempts over about 1 s: one line when it goes down, a
	 * reminder every 0.35 s, not one line per attempt. */
	for (i = 0; i < 10; i++) {
		want = p.replies + 1;
		cr_assert_eq(hr_regcore_send(&p.core, &(struct hr_reg_req){
					     .method = "PUT", .url = down,
					     .timeout_ms = 2000 }), 0);
		wait_replies(&p, want);
		run_for(0.1);
	}
	cr_expect_eq(stats.failures, 10);
	cr_expect(stats.unreachable, "connection refused: no answer");
	cr_expect_gt(stats.failing_since, 0);
	cr_expect_neq(stats.last_error[0], '\0');
	cr_expect(strstr(stats.last_error, "refused") ||
		  strstr(stats.last_error, "connect"), "%s", stats.last_error);
	cr_expect_eq(n_unreachable, 1);
	cr_expect(n_still >= 1 && n_still <= 3, "%d reminders", n_still);
	cr_expect_eq(n_reachable, 0);
	want = p.replies + 1;
	cr_assert_eq(hr_regcore_send(&p.core, &(struct hr_reg_req){
				     .method = "PUT", .url = up,
				     .body = "{\"a\":1}", .timeout_ms = 2000 }),
		     0);
	wait_replies(&p, want);
	hr_log_set_sink(NULL, NULL);
	cr_expect_eq(stats.failures, 0);
	cr_expect_not(stats.unreachable);
	cr_expect_eq(n_reachable, 1);
	cr_expect(strstr(reachable_line,
			 "\"backend\":\"fake\",\"failed_attempts\":10,"
			 "\"down_seconds\":"), "%s", reachable_line);
	hr_regcore_dispose(&p.core);
	ev_io_stop(loop, &io);
	close(lfd);
	hr_http_free(http);
}

Test(regcore, header_add_refuses_line_breaks)
{
	struct curl_slist *h = NULL;
	char big[9000];

	cr_assert_eq(hr_reg_header_add(&h, "A", "x\r\nEvil: 1"), -EINVAL);
	cr_assert_null(h);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(hr_reg_header_add(&h, "A", big), -EINVAL);
	cr_assert_eq(hr_reg_header_add(&h, "A", "1"), 0);
	cr_assert_eq(hr_reg_header_add(&h, "B", "2"), 0);
	cr_assert_str_eq(h->data, "A: 1");
	cr_assert_str_eq(h->next->data, "B: 2");
	hr_reg_headers_free(h);
	hr_reg_headers_free(NULL);
}
