/*
 * Checks to host names: the name is resolved off the loop (libcurl's
 * resolver threads, for tcp, http and grpc checks alike), so a slow
 * resolver delays its own check only, never the loop.
 *
 * The resolver under test is this file's getaddrinfo(), which the
 * executable exports in place of libc's (the resolver thread calls it
 * like any other caller): names ending in ".slow.test" resolve to
 * 127.0.0.1 after slow_ms, names ending in ".dual.test" to ::1 and then
 * 127.0.0.1, names ending in ".invalid" do not resolve, and everything
 * else goes to the system's getaddrinfo (libcurl answers "localhost"
 * itself).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "healthreg/aggregator.h"
#include "loop.h"

static atomic_int slow_ms;
static atomic_int slow_calls;

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);

	return n >= k && !strcmp(s + n - k, tail);
}

int getaddrinfo(const char *node, const char *service,
		const struct addrinfo *hints, struct addrinfo **res)
{
	static int (*real)(const char *, const char *,
			   const struct addrinfo *, struct addrinfo **);
	bool numeric_only = hints && (hints->ai_flags & AI_NUMERICHOST);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	if (node && !numeric_only && ends_with(node, ".invalid"))
		return EAI_NONAME;
	if (node && !numeric_only && ends_with(node, ".dual.test")) {
		/* ::1 first, then 127.0.0.1, as for a dual-stack name. */
		struct addrinfo h = *hints, *v6 = NULL, *v4 = NULL;
		int rc;

		h.ai_flags &= ~AI_ADDRCONFIG;
		rc = real("::1", service, &h, &v6);
		if (rc)
			return rc;
		rc = real("127.0.0.1", service, &h, &v4);
		if (rc) {
			freeaddrinfo(v6);
			return rc;
		}
		for (*res = v6; v6->ai_next; v6 = v6->ai_next)
			;
		v6->ai_next = v4;
		return 0;
	}
	if (node && !numeric_only && ends_with(node, ".slow.test")) {
		atomic_fetch_add(&slow_calls, 1);
		usleep((useconds_t)atomic_load(&slow_ms) * 1000);
		node = "127.0.0.1";
	}
	return real(node, service, hints, res);
}

static struct ev_loop *loop;

static void run_for(double secs)
{
	hr_test_run_for(loop, secs);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void setup(void)
{
	atomic_store(&slow_ms, 0);
	atomic_store(&slow_calls, 0);
	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
}

static void teardown(void)
{
	ev_loop_destroy(loop);
}

TestSuite(names, .init = setup, .fini = teardown, .timeout = 30);

static struct hr_check_spec tcp(const char *name, const char *host, int port,
				char *buf)
{
	struct hr_check_spec s = {
		.name = (char *)name, .kind = HR_CHECK_TCP, .target = buf,
		.interval_ms = 10000, .timeout_ms = 1000,
		.cache_ttl_ms = 10000, .failure_ttl_ms = 10000, .group = -1,
	};

	sprintf(buf, "%s:%d", host, port);
	return s;
}

static struct hr_agg *new_agg(void)
{
	struct hr_agg_opts o = { .seed = 42 };
	struct hr_agg *agg = NULL;
	struct hr_err err;

	cr_assert_eq(hr_agg_new(&agg, loop, NULL, &o, &err), 0);
	return agg;
}

/* Every finished run, with when it arrived. */
struct watch {
	const char *name; /* the check whose runs are timed */
	int runs;
	double first, last, max_gap;
	int other_runs;   /* every other check's */
	double other_at;  /* when the last one finished */
	char other_output[256];
};

static void on_event(struct hr_agg *agg, const struct hr_agg_event *ev,
		     void *payload)
{
	struct watch *w = payload;
	double t = now_s();

	(void)agg;
	if (ev->type != HR_EVENT_CHECK_RESULT)
		return;
	if (strcmp(ev->check, w->name)) {
		w->other_runs++;
		w->other_at = t;
		snprintf(w->other_output, sizeof(w->other_output), "%s",
			 ev->output);
		return;
	}
	if (w->runs && t - w->last > w->max_gap)
		w->max_gap = t - w->last;
	if (!w->runs)
		w->first = t;
	w->last = t;
	w->runs++;
}

/* Runs the single check s once and returns its result. */
static struct hr_check_info run_once(struct hr_check_spec *s)
{
	struct hr_agg *agg = new_agg();
	struct hr_check_info i;
	struct watch w = { .name = "" };

	cr_assert_eq(hr_agg_add_check(agg, s, NULL), 0);
	hr_agg_listen(agg, on_event, &w);
	hr_agg_start(agg);
	for (int k = 0; k < 50 && !w.other_runs; k++)
		run_for(0.1);
	cr_assert_eq(hr_agg_check_get(agg, s->name, &i), 0);
	cr_assert_eq(w.other_runs, 1, "one run of %s", s->name);
	/* The output is the aggregator's copy: keep it past the free. */
	i.output = strdup(i.output ? i.output : "");
	hr_agg_free(agg);
	return i;
}

Test(names, localhost_passes)
{
	char b[64], want[96];
	int port, fd = hr_test_listener(&port);
	struct hr_check_spec s = tcp("t", "localhost", port, b);
	struct hr_check_info i = run_once(&s);

	snprintf(want, sizeof(want), "TCP connect localhost:%d: Success", port);
	cr_expect_eq(i.status, HR_STATUS_PASSING);
	cr_expect_str_eq(i.output, want);
	free((char *)i.output);
	close(fd);
}

Test(names, refused_by_name)
{
	char b[64], want[128];
	int port = hr_test_closed_port();
	struct hr_check_spec s = tcp("t", "localhost", port, b);
	struct hr_check_info i = run_once(&s);

	snprintf(want, sizeof(want),
		 "dial tcp localhost:%d: connect: Connection refused", port);
	cr_expect_eq(i.status, HR_STATUS_CRITICAL);
	cr_expect_str_eq(i.output, want);
	free((char *)i.output);
}

/* A listening socket on ::1 only. */
static int listener6(int *port)
{
	struct sockaddr_in6 a;
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET6, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 1024), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin6_port);
	return fd;
}

/*
 * A name with an IPv6 and an IPv4 address: the check connects to the
 * first one, as the system resolver ordered them, and at once (no
 * fallback delay between families).
 */
Test(names, first_address_of_a_dual_stack_name)
{
	char b[64], want[96];
	int port, fd = listener6(&port);
	struct hr_check_spec s = tcp("t", "e.dual.test", port, b);
	struct hr_check_info i;

	i = run_once(&s);
	snprintf(want, sizeof(want), "TCP connect e.dual.test:%d: Success",
		 port);
	cr_expect_eq(i.status, HR_STATUS_PASSING, "%s", i.output);
	cr_expect_str_eq(i.output, want);
	cr_expect_lt(i.duration_ms, 100.0 * hr_test_time_scale(),
		     "took %.1f ms", i.duration_ms);
	free((char *)i.output);
	close(fd);
}

Test(names, unresolvable_name_is_critical)
{
	char b[64];
	struct hr_check_spec s = tcp("t", "nohost.invalid", 80, b);
	struct hr_check_info i = run_once(&s);

	cr_expect_eq(i.status, HR_STATUS_CRITICAL);
	cr_expect_str_eq(i.output, "dial tcp nohost.invalid:80: lookup "
				   "nohost.invalid: Couldn't resolve host name");
	free((char *)i.output);
}

Test(names, slow_name_within_timeout_passes)
{
	char b[64], want[96];
	int port, fd = hr_test_listener(&port);
	struct hr_check_spec s = tcp("t", "a.slow.test", port, b);
	struct hr_check_info i;

	atomic_store(&slow_ms, 200);
	i = run_once(&s);
	snprintf(want, sizeof(want), "TCP connect a.slow.test:%d: Success",
		 port);
	cr_expect_eq(i.status, HR_STATUS_PASSING);
	cr_expect_str_eq(i.output, want);
	cr_expect_eq(atomic_load(&slow_calls), 1);
	free((char *)i.output);
	close(fd);
}

/*
 * One check of kind `kind` to b.slow.test (whose name takes 1.5 s to
 * resolve; timeout 300 ms) next to a numeric tcp check every 50 ms, for
 * 2.5 s: the slow check must time out at its own timeout (the resolver
 * thread is left behind, not waited for) and the fast one keep its
 * schedule. Fills *w; the slow check's port in *port.
 */
static void slow_next_to_fast(enum hr_check_kind kind, struct watch *w,
			      int *port)
{
	struct hr_agg *agg = new_agg();
	char b1[64], b2[64];
	int fd = hr_test_listener(port);
	struct hr_check_spec slow = tcp("slow", "b.slow.test", *port, b1);
	struct hr_check_spec fast = tcp("fast", "127.0.0.1", *port, b2);
	double t0;

	if (kind == HR_CHECK_HTTP)
		snprintf(b1, sizeof(b1), "http://b.slow.test:%d/", *port);
	slow.kind = kind;
	slow.timeout_ms = 300;
	fast.interval_ms = 50;
	fast.timeout_ms = 100;
	atomic_store(&slow_ms, 1500);
	hr_agg_add_check(agg, &slow, NULL);
	hr_agg_add_check(agg, &fast, NULL);
	*w = (struct watch){ .name = "fast" };
	hr_agg_listen(agg, on_event, w);
	t0 = now_s();
	hr_agg_start(agg);
	run_for(2.5);
	cr_assert_eq(w->other_runs, 1, "the slow check finished once");
	cr_expect_lt(w->other_at - t0, 1.0 + 0.3 + 0.4 * hr_test_time_scale(),
		     "timed out at its timeout, not when the name resolved "
		     "(%.3f s)", w->other_at - t0);
	cr_expect_geq(w->runs, 25, "fast ran %d times", w->runs);
	cr_expect_lt(w->max_gap, 0.25 * hr_test_time_scale(),
		     "longest gap between fast runs %.3f s", w->max_gap);
	hr_agg_free(agg);
	close(fd);
}

Test(names, slow_resolver_does_not_block_the_loop)
{
	struct watch w;
	char want[128];
	int port;

	slow_next_to_fast(HR_CHECK_TCP, &w, &port);
	snprintf(want, sizeof(want),
		 "dial tcp b.slow.test:%d: i/o timeout after 300ms", port);
	cr_expect_str_eq(w.other_output, want);
}

/*
 * The same for an http check: libcurl 7.88 joins a resolver thread when a
 * transfer ends mid-lookup unless CURLOPT_QUICK_EXIT is set, which
 * hr_http_start() does for every transfer.
 */
Test(names, slow_resolver_does_not_block_the_loop_http)
{
	struct watch w;
	int port;

	slow_next_to_fast(HR_CHECK_HTTP, &w, &port);
	cr_expect(strstr(w.other_output, "timed out"), "%s", w.other_output);
}

/* The same for a grpc check (libcurl's resolver too): "b.slow.test:port"
 * is a grpc target as it stands. */
Test(names, slow_resolver_does_not_block_the_loop_grpc)
{
	struct watch w;
	char want[128];
	int port;

	slow_next_to_fast(HR_CHECK_GRPC, &w, &port);
	snprintf(want, sizeof(want),
		 "gRPC check b.slow.test:%d: DEADLINE_EXCEEDED: Resolving timed out after ",
		 port);
	cr_expect(!strncmp(w.other_output, want, strlen(want)), "%s",
		  w.other_output);
}

/* Removing a check, or freeing the set, while its name resolves. */
Test(names, remove_and_free_while_resolving)
{
	struct hr_agg *agg = new_agg();
	char b1[64], b2[64];
	int port, fd = hr_test_listener(&port);
	struct hr_check_spec a = tcp("a", "c.slow.test", port, b1);
	struct hr_check_spec b = tcp("b", "d.slow.test", port, b2);
	struct hr_check_info i;
	double t;

	atomic_store(&slow_ms, 1500);
	hr_agg_add_check(agg, &a, NULL);
	hr_agg_add_check(agg, &b, NULL);
	hr_agg_start(agg);
	for (int k = 0; k < 30 && atomic_load(&slow_calls) < 2; k++)
		run_for(0.05);
	cr_assert_eq(atomic_load(&slow_calls), 2, "both names resolving");
	hr_agg_check_get(agg, "a", &i);
	cr_assert(i.running);
	t = now_s();
	cr_expect_eq(hr_agg_remove_check(agg, "a"), 0);
	hr_agg_free(agg);
	cr_expect_lt(now_s() - t, 0.2 * hr_test_time_scale(), "nothing waited for the resolver");
	close(fd);
}
