/*
 * The aggregator on a private libev loop (as an embedding program uses
 * it): ttl checks, the result cache behind hr_agg_evaluate(), the
 * in-flight bound, run-time add/remove, scheduling, failure isolation.
 * Targets are loopback sockets and processes made by the test.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include "healthreg/aggregator.h"
#include "healthreg/util.h"
#include "loop.h"

/*
 * The tests below that need a run to fail inside start() spawn
 * "/nonexistent/...". Whether posix_spawnp() reports ENOENT itself or the
 * child exits 127 later depends on the implementation (glibc's clone
 * with CLONE_VFORK reports it; under valgrind, which cannot run that
 * clone, the failure comes from the child). This executable's
 * posix_spawnp() takes libc's place and fails such paths synchronously,
 * so the tests mean the same everywhere; every other program is spawned
 * by libc's.
 */
int posix_spawnp(pid_t *pid, const char *file,
		 const posix_spawn_file_actions_t *fa,
		 const posix_spawnattr_t *attr, char *const argv[],
		 char *const envp[])
{
	typedef int spawn_fn(pid_t *, const char *,
			     const posix_spawn_file_actions_t *,
			     const posix_spawnattr_t *, char *const[],
			     char *const[]);
	static spawn_fn *real;

	if (strncmp(file, "/nonexistent/", 13) == 0)
		return ENOENT;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "posix_spawnp");
	return real ? real(pid, file, fa, attr, argv, envp) : ENOSYS;
}

static struct ev_loop *loop;

/* Run the loop for at most secs (or until something breaks it). */
static void run_for(double secs)
{
	hr_test_run_for(loop, secs);
}

static void setup(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
}

static void teardown(void)
{
	ev_loop_destroy(loop);
}

TestSuite(aggregator, .init = setup, .fini = teardown, .timeout = 30);

/* A listening socket: connects succeed (the backlog accepts them). */
static int listener(int *port)
{
	int fd = hr_test_listener(port);

	cr_assert_geq(fd, 0);
	return fd;
}

static int closed_port(void)
{
	int port = hr_test_closed_port();

	cr_assert_gt(port, 0);
	return port;
}

static struct hr_check_spec base(const char *name)
{
	struct hr_check_spec s;

	memset(&s, 0, sizeof(s));
	s.name = (char *)name;
	s.interval_ms = 10000;
	s.timeout_ms = 1000;
	s.cache_ttl_ms = 10000;
	s.failure_ttl_ms = 10000;
	s.group = -1;
	return s;
}

static struct hr_check_spec tcp(const char *name, int port, char *buf)
{
	struct hr_check_spec s = base(name);

	sprintf(buf, "127.0.0.1:%d", port);
	s.kind = HR_CHECK_TCP;
	s.target = buf;
	return s;
}

static struct hr_check_spec exec_(const char *name, char **argv)
{
	struct hr_check_spec s = base(name);

	s.kind = HR_CHECK_EXEC;
	s.args = argv;
	return s;
}

static struct hr_agg *new_agg(int max_concurrent)
{
	struct hr_agg_opts o = { .enable_exec_checks = true,
				 .max_concurrent = max_concurrent,
				 .seed = 42 };
	struct hr_agg *agg = NULL;
	struct hr_err err;

	cr_assert_eq(hr_agg_new(&agg, loop, NULL, &o, &err), 0);
	return agg;
}

struct evres {
	int calls;
	enum hr_status status;
	char output[256];
};

static void eval_cb(struct hr_agg *agg, enum hr_status st, const char *out,
		    void *payload)
{
	struct evres *r = payload;

	r->calls++;
	r->status = st;
	snprintf(r->output, sizeof(r->output), "%s", out);
	ev_break(hr_agg_loop(agg), EVBREAK_ALL);
}

static uint64_t runs_of(struct hr_agg *agg, const char *name)
{
	struct hr_check_info i;

	cr_assert_eq(hr_agg_check_get(agg, name, &i), 0);
	return i.runs_passing + i.runs_warning + i.runs_critical;
}

Test(aggregator, ttl_check_expires_and_recovers)
{
	struct hr_agg *agg = new_agg(0);
	struct hr_check_spec s = base("hb");
	struct hr_check_info i;

	s.kind = HR_CHECK_TTL;
	s.ttl_ms = 200;
	cr_assert_eq(hr_agg_add_check(agg, &s, NULL), 0);
	hr_agg_start(agg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL, "unknown counts as critical");
	cr_assert_eq(hr_agg_ttl_update(agg, "hb", HR_STATUS_PASSING, "all good"), 0);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	run_for(0.1);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING, "refreshed within its TTL");
	run_for(0.3);
	hr_agg_check_get(agg, "hb", &i);
	cr_expect_eq(i.status, HR_STATUS_CRITICAL);
	cr_expect_str_eq(i.output, "TTL expired (last output before timeout follows): all good");
	cr_assert_eq(hr_agg_ttl_update(agg, "hb", HR_STATUS_WARNING, NULL), 0);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_WARNING);
	cr_expect_eq(hr_agg_ttl_update(agg, "nope", HR_STATUS_PASSING, NULL), -ENOENT);
	hr_agg_free(agg);
}

Test(aggregator, ttl_expired_without_output)
{
	struct hr_agg *agg = new_agg(0);
	struct hr_check_spec s = base("hb");
	struct hr_check_info i;

	s.kind = HR_CHECK_TTL;
	s.ttl_ms = 100;
	hr_agg_add_check(agg, &s, NULL);
	hr_agg_start(agg);
	run_for(0.3);
	hr_agg_check_get(agg, "hb", &i);
	cr_expect_eq(i.status, HR_STATUS_CRITICAL);
	cr_expect_str_eq(i.output, "TTL expired");
	hr_agg_free(agg);
}

Test(aggregator, evaluate_reuses_fresh_results)
{
	struct hr_agg *agg = new_agg(0);
	char b1[32], b2[32];
	int port, fd = listener(&port);
	struct hr_check_spec up = tcp("up", port, b1);
	struct hr_check_spec down = tcp("down", closed_port(), b2);
	struct evres r = { 0 };

	down.failure_ttl_ms = 0; /* failures are never reused */
	hr_agg_add_check(agg, &up, NULL);
	hr_agg_add_check(agg, &down, NULL);
	cr_assert_eq(hr_agg_evaluate(agg, eval_cb, &r), 0);
	if (!r.calls)
		run_for(5);
	cr_assert_eq(r.calls, 1);
	cr_expect_eq(r.status, HR_STATUS_CRITICAL);
	cr_expect_str_eq(r.output, "1 passing, 1 critical: down");
	cr_expect_eq(runs_of(agg, "up"), 1);
	cr_expect_eq(runs_of(agg, "down"), 1);
	hr_agg_evaluate(agg, eval_cb, &r);
	if (r.calls < 2)
		run_for(5);
	cr_assert_eq(r.calls, 2);
	cr_expect_eq(runs_of(agg, "up"), 1, "a fresh success is reused");
	cr_expect_eq(runs_of(agg, "down"), 2, "failure_ttl 0: the failure is re-run");
	hr_agg_free(agg);
	close(fd);
}

Test(aggregator, evaluate_with_everything_fresh_calls_back_at_once)
{
	struct hr_agg *agg = new_agg(0);
	struct hr_check_spec s = base("hb");
	struct evres r = { 0 };

	s.kind = HR_CHECK_TTL;
	s.ttl_ms = 10000;
	hr_agg_add_check(agg, &s, NULL);
	hr_agg_ttl_update(agg, "hb", HR_STATUS_PASSING, "ok");
	cr_assert_eq(hr_agg_evaluate(agg, eval_cb, &r), 0);
	cr_expect_eq(r.calls, 1);
	cr_expect_eq(r.status, HR_STATUS_PASSING);
	hr_agg_free(agg);
}

static int max_running;

static void sample_running(struct ev_loop *l, ev_prepare *w, int revents)
{
	struct hr_agg *agg = w->data;
	struct hr_check_info i;
	size_t k;
	int n = 0;

	(void)l;
	(void)revents;
	for (k = 0; k < hr_agg_n_checks(agg); k++) {
		hr_agg_check_at(agg, k, &i);
		n += i.running;
	}
	if (n > max_running)
		max_running = n;
}

Test(aggregator, evaluate_bounds_checks_in_flight)
{
	struct hr_agg *agg = new_agg(3);
	char *argv[] = { "sleep", "0.1", NULL };
	char names[12][8];
	struct evres r = { 0 };
	ev_prepare prep;
	size_t k;

	for (k = 0; k < 12; k++) {
		struct hr_check_spec s;

		snprintf(names[k], sizeof(names[k]), "s%zu", k);
		s = exec_(names[k], argv);
		cr_assert_eq(hr_agg_add_check(agg, &s, NULL), 0);
	}
	ev_prepare_init(&prep, sample_running);
	prep.data = agg;
	ev_prepare_start(loop, &prep);
	max_running = 0;
	hr_agg_evaluate(agg, eval_cb, &r);
	run_for(20);
	ev_prepare_stop(loop, &prep);
	cr_assert_eq(r.calls, 1);
	cr_expect_eq(r.status, HR_STATUS_PASSING);
	cr_expect_eq(max_running, 3, "at most max_concurrent in flight, and that many");
	for (k = 0; k < 12; k++)
		cr_expect_eq(runs_of(agg, names[k]), 1);
	hr_agg_free(agg);
}

Test(aggregator, names_are_unique_and_errors_are_specific)
{
	struct hr_agg *agg = NULL;
	struct hr_agg_opts o = { 0 };
	char *argv[] = { "true", NULL };
	struct hr_check_spec s = base("a"), e = exec_("x", argv);
	struct hr_err err;

	s.kind = HR_CHECK_TTL;
	s.ttl_ms = 1000;
	cr_assert_eq(hr_agg_new(&agg, loop, NULL, &o, &err), 0);
	cr_expect_eq(hr_agg_add_check(agg, &s, &err), 0);
	cr_expect_eq(hr_agg_add_check(agg, &s, &err), -EEXIST);
	cr_expect_str_eq(err.msg, "check \"a\" already exists");
	cr_expect_eq(hr_agg_add_check(agg, &e, &err), -EPERM);
	cr_expect_eq(hr_agg_remove_check(agg, "zzz"), -ENOENT);
	cr_expect_eq(hr_agg_remove_check(agg, "a"), 0);
	cr_expect_eq(hr_agg_n_checks(agg), 0);
	hr_agg_free(agg);
}

Test(aggregator, exec_on_a_private_loop_uses_pidfd)
{
	struct hr_agg *agg = new_agg(0);
	char *argv[] = { "sh", "-c", "echo degraded; exit 1", NULL };
	struct hr_check_spec s = exec_("x", argv);
	struct evres r = { 0 };
	struct hr_check_info i;

	hr_agg_add_check(agg, &s, NULL);
	hr_agg_evaluate(agg, eval_cb, &r);
	run_for(10);
	cr_assert_eq(r.calls, 1);
	hr_agg_check_get(agg, "x", &i);
	cr_expect_eq(i.status, HR_STATUS_WARNING);
	cr_expect_str_eq(i.output, "degraded\n");
	hr_agg_free(agg);
}

Test(aggregator, a_hanging_check_does_not_delay_others)
{
	struct hr_agg *agg = new_agg(0);
	char *hang[] = { "sleep", "30", NULL };
	char b[32];
	int port, fd = listener(&port);
	struct hr_check_spec slow = exec_("slow", hang);
	struct hr_check_spec fast = tcp("fast", port, b);
	struct hr_check_info i;

	slow.timeout_ms = 2000;
	fast.interval_ms = 100;
	fast.timeout_ms = 100;
	hr_agg_add_check(agg, &slow, NULL);
	hr_agg_add_check(agg, &fast, NULL);
	hr_agg_start(agg);
	run_for(1.5);
	hr_agg_check_get(agg, "fast", &i);
	cr_expect_eq(i.status, HR_STATUS_PASSING);
	cr_expect_geq(i.runs_passing, 3, "fast kept its schedule: %llu runs",
		      (unsigned long long)i.runs_passing);
	hr_agg_check_get(agg, "slow", &i);
	cr_expect(i.running);
	run_for(1.5);
	hr_agg_check_get(agg, "slow", &i);
	cr_expect_eq(i.status, HR_STATUS_CRITICAL);
	cr_expect_str_eq(i.output, "Timed out (2000ms) running check");
	hr_agg_free(agg);
	close(fd);
}

Test(aggregator, add_and_remove_while_running)
{
	struct hr_agg *agg = new_agg(0);
	char *hang[] = { "sleep", "30", NULL };
	char b[32];
	int port, fd = listener(&port);
	struct hr_check_spec slow = exec_("slow", hang);
	struct hr_check_spec late = tcp("late", port, b);
	struct hr_check_info i;

	slow.timeout_ms = 5000; /* still running at 1.1 s, wherever its first run fell */
	hr_agg_add_check(agg, &slow, NULL);
	hr_agg_start(agg);
	run_for(1.1);
	hr_agg_check_get(agg, "slow", &i);
	cr_assert(i.running);
	cr_expect_eq(hr_agg_remove_check(agg, "slow"), 0, "removing a running check");
	cr_expect_eq(hr_agg_add_check(agg, &late, NULL), 0);
	run_for(1.1);
	cr_expect_eq(runs_of(agg, "late"), 1, "a check added after start runs within 1 s");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	hr_agg_free(agg);
	close(fd);
}

Test(aggregator, first_runs_spread_within_a_second)
{
	struct hr_agg *agg = new_agg(0);
	char bufs[50][32], names[50][8];
	int port, fd = listener(&port);
	size_t k;

	for (k = 0; k < 50; k++) {
		struct hr_check_spec s;

		snprintf(names[k], sizeof(names[k]), "t%zu", k);
		s = tcp(names[k], port, bufs[k]);
		hr_agg_add_check(agg, &s, NULL);
	}
	hr_agg_start(agg);
	run_for(1.3);
	for (k = 0; k < 50; k++)
		cr_expect_eq(runs_of(agg, names[k]), 1, "%s", names[k]);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	hr_agg_free(agg);
	close(fd);
}

struct counts {
	int check_status, aggregate, results;
};

static void count_events(struct hr_agg *agg, const struct hr_agg_event *ev,
			 void *payload)
{
	struct counts *c = payload;

	(void)agg;
	if (ev->type == HR_EVENT_CHECK_STATUS)
		c->check_status++;
	else if (ev->type == HR_EVENT_AGGREGATE)
		c->aggregate++;
	else
		c->results++;
}

Test(aggregator, listeners_hear_changes_not_repeats)
{
	struct hr_agg *agg = new_agg(0);
	char b[32];
	int port, fd = listener(&port);
	struct hr_check_spec s = tcp("t", port, b);
	struct counts c = { 0 };
	int id;

	s.interval_ms = 100;
	s.timeout_ms = 100;
	hr_agg_add_check(agg, &s, NULL);
	id = hr_agg_listen(agg, count_events, &c);
	cr_assert_gt(id, 0);
	hr_agg_start(agg);
	run_for(1.5);
	cr_expect_geq(c.results, 4);
	cr_expect_eq(c.check_status, 1, "unknown -> passing only");
	cr_expect_eq(c.aggregate, 1);
	hr_agg_unlisten(agg, id);
	hr_agg_free(agg);
	close(fd);
}

Test(aggregator, interval_down_while_failing)
{
	struct hr_agg *agg = new_agg(0);
	char b[32];
	struct hr_check_spec s = tcp("t", closed_port(), b);

	s.interval_ms = 5000;
	s.timeout_ms = 100;
	s.interval_down_ms = 100;
	hr_agg_add_check(agg, &s, NULL);
	hr_agg_start(agg);
	run_for(1.6);
	cr_expect_geq(runs_of(agg, "t"), 4, "failing: re-run every interval_down");
	hr_agg_free(agg);
}

Test(aggregator, evaluate_survives_runs_that_fail_synchronously)
{
	/* posix_spawn fails inside start(): the run finishes before
	 * run_start() returns, while the evaluation is still queueing. */
	struct hr_agg *agg = new_agg(0);
	char *argv[] = { "/nonexistent/program", NULL };
	struct hr_check_spec a = exec_("a", argv), b = exec_("b", argv);
	struct evres r = { 0 };
	struct hr_check_info i;

	hr_agg_add_check(agg, &a, NULL);
	hr_agg_add_check(agg, &b, NULL);
	cr_assert_eq(hr_agg_evaluate(agg, eval_cb, &r), 0);
	cr_expect_eq(r.calls, 1, "called back before evaluate returned");
	cr_expect_eq(r.status, HR_STATUS_CRITICAL);
	hr_agg_check_get(agg, "b", &i);
	cr_expect(strstr(i.output, "No such file or directory") != NULL, "%s", i.output);
	hr_agg_free(agg);
}

/* ---- removal from inside callbacks --------------------------------------
 * A listener (or an evaluation's callback) may remove the check being
 * reported, another check or every check; the aggregator must not touch
 * a removed check afterwards (run these under -DHR_SANITIZE=ON).
 */

enum victim { OWN, OTHER, EVERY };

static const char *const victim_name[] = { "own", "other", "every" };
static const char *const event_name[] = { "result", "status", "aggregate" };

struct remover {
	enum hr_agg_event_type on;
	enum victim victim;
	const char *own;   /* the check whose event triggers (AGGREGATE: whose change) */
	const char *other;
	int fired;
	int events;        /* events heard in total */
};

static void remove_all(struct hr_agg *agg)
{
	struct hr_check_info i;

	while (hr_agg_n_checks(agg)) {
		cr_assert_eq(hr_agg_check_at(agg, 0, &i), 0);
		cr_assert_eq(hr_agg_remove_check(agg, i.name), 0);
	}
}

static void remove_on(struct hr_agg *agg, const struct hr_agg_event *ev,
		      void *payload)
{
	struct remover *r = payload;

	r->events++;
	/* read the event before anything changes */
	if (ev->check)
		cr_assert_not_null(ev->output);
	if (ev->type != r->on || r->fired)
		return;
	if (ev->check && strcmp(ev->check, r->own))
		return;
	r->fired++;
	if (r->victim == OWN)
		cr_expect_eq(hr_agg_remove_check(agg, r->own), 0);
	else if (r->victim == OTHER)
		cr_expect_eq(hr_agg_remove_check(agg, r->other), 0);
	else
		remove_all(agg);
	/* the rest of this event and the events after it still read well */
	if (ev->check)
		cr_assert_not_null(ev->check);
}

static void expect_removed(struct hr_agg *agg, const struct remover *r)
{
	struct hr_check_info i;

	cr_expect_eq(r->fired, 1, "%s on %s: fired %d", victim_name[r->victim],
		     event_name[r->on], r->fired);
	if (r->victim == EVERY)
		cr_expect_eq(hr_agg_n_checks(agg), 0);
	else
		cr_expect_eq(hr_agg_check_get(agg, r->victim == OWN ? r->own
								     : r->other,
					      &i),
			     -ENOENT);
}

static struct hr_check_spec ttl_spec(const char *name, int ttl_ms)
{
	struct hr_check_spec s = base(name);

	s.kind = HR_CHECK_TTL;
	s.ttl_ms = ttl_ms;
	return s;
}

/* Every trigger (the event type) with every victim. */
static void every_case(void (*one)(enum hr_agg_event_type on, enum victim v))
{
	for (int on = HR_EVENT_CHECK_RESULT; on <= HR_EVENT_AGGREGATE; on++)
		for (int v = OWN; v <= EVERY; v++)
			one((enum hr_agg_event_type)on, (enum victim)v);
}

/* An aggregator with checks a and b (and c when given), and r listening. */
static struct hr_agg *with_checks(struct remover *r, enum hr_agg_event_type on,
				  enum victim v, const struct hr_check_spec *a,
				  const struct hr_check_spec *b,
				  const struct hr_check_spec *c)
{
	struct hr_agg *agg = new_agg(0);

	memset(r, 0, sizeof(*r));
	r->on = on;
	r->victim = v;
	r->own = "a";
	r->other = "b";
	cr_assert_eq(hr_agg_add_check(agg, a, NULL), 0);
	cr_assert_eq(hr_agg_add_check(agg, b, NULL), 0);
	if (c)
		cr_assert_eq(hr_agg_add_check(agg, c, NULL), 0);
	cr_assert_gt(hr_agg_listen(agg, remove_on, r), 0);
	return agg;
}

static void ttl_update_case(enum hr_agg_event_type on, enum victim v)
{
	struct hr_check_spec a = ttl_spec("a", 10000), b = ttl_spec("b", 10000);
	struct remover r;
	struct hr_agg *agg = with_checks(&r, on, v, &a, &b, NULL);

	hr_agg_start(agg);
	cr_expect_eq(hr_agg_ttl_update(agg, "a", HR_STATUS_PASSING, "ok"), 0);
	expect_removed(agg, &r);
	run_for(0.05);
	hr_agg_free(agg);
}

Test(aggregator, listener_removes_checks_during_ttl_update)
{
	every_case(ttl_update_case);
}

/* Started, on the loop for secs: something removes checks meanwhile. */
static void scheduled_case(enum hr_agg_event_type on, enum victim v,
			   const struct hr_check_spec *a,
			   const struct hr_check_spec *b, double secs)
{
	struct remover r;
	struct hr_agg *agg = with_checks(&r, on, v, a, b, NULL);

	hr_agg_start(agg);
	run_for(secs);
	expect_removed(agg, &r);
	hr_agg_free(agg);
}

static void ttl_expiry_case(enum hr_agg_event_type on, enum victim v)
{
	struct hr_check_spec a = ttl_spec("a", 50), b = ttl_spec("b", 10000);

	/* passing first, so that the expiry changes status and aggregate */
	a.has_initial_status = b.has_initial_status = true;
	a.initial_status = b.initial_status = HR_STATUS_PASSING;
	scheduled_case(on, v, &a, &b, 0.3);
}

Test(aggregator, listener_removes_checks_when_a_ttl_expires)
{
	every_case(ttl_expiry_case);
}

static int up_port;

static void run_case(enum hr_agg_event_type on, enum victim v)
{
	char b1[32], b2[32];
	struct hr_check_spec a = tcp("a", up_port, b1), b = tcp("b", up_port, b2);

	a.interval_ms = b.interval_ms = 100;
	scheduled_case(on, v, &a, &b, 0.5);
}

Test(aggregator, listener_removes_checks_when_a_run_finishes)
{
	int fd = listener(&up_port);

	every_case(run_case);
	close(fd);
}

static void exec_case(enum hr_agg_event_type on, enum victim v)
{
	char *argv[] = { "true", NULL };
	struct hr_check_spec a = exec_("a", argv), b = exec_("b", argv);

	a.interval_ms = b.interval_ms = 100;
	scheduled_case(on, v, &a, &b, 0.5);
}

Test(aggregator, listener_removes_checks_when_a_process_exits)
{
	every_case(exec_case);
}

/* One evaluation of a, b (and c): called back exactly once. */
static void evaluate_case(enum hr_agg_event_type on, enum victim v,
			  const struct hr_check_spec *a,
			  const struct hr_check_spec *b,
			  const struct hr_check_spec *c)
{
	struct remover r;
	struct hr_agg *agg = with_checks(&r, on, v, a, b, c);
	struct evres res = { 0 };

	cr_assert_eq(hr_agg_evaluate(agg, eval_cb, &res), 0);
	if (!res.calls)
		run_for(2);
	cr_expect_eq(res.calls, 1, "%s on %s: %d callbacks", victim_name[v],
		     event_name[on], res.calls);
	expect_removed(agg, &r);
	hr_agg_free(agg);
}

static void sync_eval_case(enum hr_agg_event_type on, enum victim v)
{
	/* the runs fail inside start(): they finish while the evaluation
	 * is still starting runs */
	char *argv[] = { "/nonexistent/program", NULL };
	struct hr_check_spec a = exec_("a", argv), b = exec_("b", argv),
			     c = exec_("c", argv);

	evaluate_case(on, v, &a, &b, &c);
}

Test(aggregator, listener_removes_checks_while_evaluating)
{
	every_case(sync_eval_case);
}

/* An HTTP server on the loop: answers every connection at once with a
 * 200 (the request is left unread) and half-closes it. */
struct http_srv {
	ev_io w;
	int fds[512];
	size_t n;
};

static void http_accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				    "Connection: close\r\n\r\nok";
	struct http_srv *srv = hr_container_of(w, struct http_srv, w);
	int fd = accept(w->fd, NULL, NULL);

	(void)l;
	(void)revents;
	if (fd < 0)
		return;
	cr_assert_eq(write(fd, reply, sizeof(reply) - 1),
		     (ssize_t)sizeof(reply) - 1);
	shutdown(fd, SHUT_WR);
	if (srv->n < HR_ARRAY_SIZE(srv->fds))
		srv->fds[srv->n++] = fd;
	else
		close(fd);
}

static int http_port;
static struct http_srv http_srv;

static void http_start(void)
{
	int fd = listener(&http_port);

	http_srv.n = 0;
	ev_io_init(&http_srv.w, http_accept_cb, fd, EV_READ);
	ev_io_start(loop, &http_srv.w);
}

static void http_stop(void)
{
	size_t i;

	ev_io_stop(loop, &http_srv.w);
	close(http_srv.w.fd);
	for (i = 0; i < http_srv.n; i++)
		close(http_srv.fds[i]);
}

static struct hr_check_spec http_(const char *name, char *buf, bool curl)
{
	static struct hr_header h = { "X-Engine", "libcurl" };
	struct hr_check_spec s = base(name);

	sprintf(buf, "http://127.0.0.1:%d/health", http_port);
	s.kind = HR_CHECK_HTTP;
	s.target = buf;
	s.interval_ms = 100;
	if (curl) { /* a custom header: the libcurl engine */
		s.headers = &h;
		s.n_headers = 1;
	}
	return s;
}

Test(aggregator, the_http_fake_answers_both_engines)
{
	char b1[64], b2[64];
	struct hr_check_spec a, b;
	struct hr_agg *agg = new_agg(0);
	struct hr_check_info i;

	http_start();
	a = http_("direct", b1, false);
	b = http_("curl", b2, true);
	hr_agg_add_check(agg, &a, NULL);
	hr_agg_add_check(agg, &b, NULL);
	hr_agg_start(agg);
	run_for(0.5);
	hr_agg_check_get(agg, "direct", &i);
	cr_expect_eq(i.status, HR_STATUS_PASSING, "%s", i.output);
	hr_agg_check_get(agg, "curl", &i);
	cr_expect_eq(i.status, HR_STATUS_PASSING, "%s", i.output);
	hr_agg_free(agg);
	http_stop();
}

static bool http_on_curl;

static void http_case(enum hr_agg_event_type on, enum victim v)
{
	char b1[64], b2[64];
	struct hr_check_spec a = http_("a", b1, http_on_curl),
			     b = http_("b", b2, http_on_curl);

	scheduled_case(on, v, &a, &b, 0.5);
}

static void http_removals(bool curl)
{
	http_on_curl = curl;
	http_start();
	every_case(http_case);
	http_stop();
}

Test(aggregator, listener_removes_http_checks_on_libcurl)
{
	http_removals(true);
}

/* The direct engine releases its run state before it reports (http_run.h). */
Test(aggregator, listener_removes_http_checks_on_the_direct_engine)
{
	http_removals(false);
}

static void async_eval_case(enum hr_agg_event_type on, enum victim v)
{
	/* the evaluation waits for both runs; the first to finish removes
	 * itself, the other or every check */
	char b1[32], b2[32];
	struct hr_check_spec a = tcp("a", up_port, b1), b = tcp("b", up_port, b2);

	evaluate_case(on, v, &a, &b, NULL);
}

Test(aggregator, listener_removes_checks_an_evaluation_waits_for)
{
	int fd = listener(&up_port);

	every_case(async_eval_case);
	close(fd);
}

static void eval_remove_all(struct hr_agg *agg, enum hr_status st,
			    const char *out, void *payload)
{
	struct evres *r = payload;

	(void)st;
	(void)out;
	r->calls++;
	remove_all(agg);
}

Test(aggregator, evaluation_callback_removes_every_check)
{
	struct hr_agg *agg = new_agg(0);
	char *argv[] = { "/nonexistent/program", NULL };
	struct hr_check_spec a = exec_("a", argv), b = exec_("b", argv);
	struct evres r = { 0 }, r2 = { 0 };

	hr_agg_add_check(agg, &a, NULL);
	hr_agg_add_check(agg, &b, NULL);
	/* two evaluations wait for the same runs; the first callback
	 * removes the checks the second one waits for */
	hr_agg_evaluate(agg, eval_remove_all, &r);
	hr_agg_evaluate(agg, eval_remove_all, &r2);
	if (r.calls + r2.calls < 2)
		run_for(2);
	cr_expect_eq(r.calls, 1);
	cr_expect_eq(r2.calls, 1);
	cr_expect_eq(hr_agg_n_checks(agg), 0);
	hr_agg_free(agg);
}

/* ---- listeners that unsubscribe from inside a callback ----------------- */

struct unsub {
	struct hr_agg *agg;
	int *unsubscribe;  /* listener id to drop on the first event, or 0 */
	int heard;
};

static void unsub_cb(struct hr_agg *agg, const struct hr_agg_event *ev,
		     void *payload)
{
	struct unsub *u = payload;

	(void)ev;
	u->heard++;
	if (u->unsubscribe && *u->unsubscribe) {
		hr_agg_unlisten(agg, *u->unsubscribe);
		*u->unsubscribe = 0;
	}
}

Test(aggregator, a_listener_may_unsubscribe_itself_or_another)
{
	struct hr_agg *agg = new_agg(0);
	struct hr_check_spec a = ttl_spec("a", 10000);
	struct unsub u1 = { 0 }, u2 = { 0 }, u3 = { 0 };
	int id1, id2;

	hr_agg_add_check(agg, &a, NULL);
	id1 = hr_agg_listen(agg, unsub_cb, &u1);
	hr_agg_listen(agg, unsub_cb, &u2);
	id2 = hr_agg_listen(agg, unsub_cb, &u3);
	u1.unsubscribe = &id1; /* itself */
	u2.unsubscribe = &id2; /* the next one, before it hears anything */
	/* RESULT, STATUS and AGGREGATE */
	hr_agg_ttl_update(agg, "a", HR_STATUS_PASSING, "ok");
	cr_expect_eq(u1.heard, 1, "u1 heard the event it left on");
	cr_expect_eq(u2.heard, 3, "u2 heard every event: %d", u2.heard);
	cr_expect_eq(u3.heard, 0, "u3 left before the first event");
	hr_agg_ttl_update(agg, "a", HR_STATUS_WARNING, "meh");
	cr_expect_eq(u1.heard, 1);
	cr_expect_eq(u2.heard, 6, "%d", u2.heard);
	cr_expect_eq(u3.heard, 0);
	hr_agg_free(agg);
}
