/*
 * hr_agg_replace_check(), the reload's make-before-break (issue 11, items
 * 2 and 13b): a changed check counts with its old status until its first
 * result, a new one does not count until then, and neither makes a
 * transient aggregate (no AGGREGATE event with another status).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "healthreg/aggregator.h"
#include "loop.h"

static struct ev_loop *loop;
static struct hr_agg *agg;
static int lfd;
static int port_up, port_down;

/* The AGGREGATE events heard, in order. */
static enum hr_status seen[16];
static int n_seen;

static void on_event(struct hr_agg *a, const struct hr_agg_event *ev,
		     void *payload)
{
	(void)a;
	(void)payload;
	if (ev->type == HR_EVENT_AGGREGATE && n_seen < 16)
		seen[n_seen++] = ev->new_status;
}

static struct hr_check_spec tcp(const char *name, int port, char *buf)
{
	struct hr_check_spec s;

	memset(&s, 0, sizeof(s));
	sprintf(buf, "127.0.0.1:%d", port);
	s.name = (char *)name;
	s.kind = HR_CHECK_TCP;
	s.target = buf;
	s.interval_ms = 200;
	s.timeout_ms = 150;
	s.group = -1;
	return s;
}

static int known(const char *name)
{
	struct hr_check_info info;

	return !hr_agg_check_get(agg, name, &info) && info.last_run != 0;
}

static void run_until_known(const char *name)
{
	double end = ev_time() + 5;

	while (!known(name) && ev_time() < end)
		hr_test_run_for(loop, 0.01);
	cr_assert(known(name), "%s has a result", name);
}

static void setup(void)
{
	struct hr_err err = { "" };
	struct hr_check_spec s;
	char buf[64];

	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
	lfd = hr_test_listener(&port_up);
	port_down = hr_test_closed_port();
	cr_assert(lfd >= 0 && port_down > 0);
	cr_assert_eq(hr_agg_new(&agg, loop, NULL, NULL, &err), 0, "%s", err.msg);
	s = tcp("a", port_up, buf);
	cr_assert_eq(hr_agg_add_check(agg, &s, &err), 0, "%s", err.msg);
	cr_assert_gt(hr_agg_listen(agg, on_event, NULL), 0);
	hr_agg_start(agg);
	run_until_known("a");
	cr_assert_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	n_seen = 0;
}

static void teardown(void)
{
	hr_agg_free(agg);
	close(lfd);
	ev_loop_destroy(loop);
}

TestSuite(agg_replace, .init = setup, .fini = teardown, .timeout = 30);

Test(agg_replace, changed_check_counts_as_before_until_its_first_result)
{
	struct hr_err err = { "" };
	struct hr_check_info info;
	char buf[64];
	struct hr_check_spec s = tcp("a", port_down, buf);

	s.interval_ms = 300;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	cr_expect_eq(n_seen, 0, "no aggregate event at all");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	cr_expect_str_eq(hr_agg_output(agg), "1 passing");
	cr_assert_eq(hr_agg_check_get(agg, "a", &info), 0);
	cr_expect_eq(info.status, HR_STATUS_PASSING, "carried over");
	cr_expect_eq(info.last_run, 0, "the new spec has not run");
	run_until_known("a");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL, "its own result");
	cr_assert_eq(n_seen, 1);
	cr_expect_eq(seen[0], HR_STATUS_CRITICAL);
}

Test(agg_replace, interval_only_change_makes_no_event)
{
	struct hr_err err = { "" };
	char buf[64];
	struct hr_check_spec s = tcp("a", port_up, buf);

	s.interval_ms = 250;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	run_until_known("a");
	hr_test_run_for(loop, 0.3);
	cr_expect_eq(n_seen, 0, "nothing changed, nothing told");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
}

Test(agg_replace, new_check_does_not_count_until_its_first_result)
{
	struct hr_err err = { "" };
	struct hr_check_info info;
	char buf[64];
	struct hr_check_spec s = tcp("n", port_down, buf);

	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	cr_expect_str_eq(hr_agg_output(agg), "1 passing, 1 unknown: n");
	cr_assert_eq(n_seen, 1, "the summary changed");
	cr_expect_eq(seen[0], HR_STATUS_PASSING, "the status did not");
	cr_assert_eq(hr_agg_check_get(agg, "n", &info), 0);
	cr_expect_eq(info.status, HR_STATUS_UNKNOWN);
	run_until_known("n");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL, "counts now");
	cr_expect_str_eq(hr_agg_output(agg), "1 passing, 1 critical: n");
}

Test(agg_replace, new_grouped_check_is_left_out_of_its_group)
{
	struct hr_group_spec g = { (char *)"db", 2, HR_ON_FAILURE_CRITICAL };
	struct hr_err err = { "" };
	char buf[64];
	struct hr_check_spec s = tcp("a", port_up, buf);

	/* One member passing of a quorum of 2: critical, as it must be. */
	cr_assert_eq(hr_agg_set_groups(agg, &g, 1, &err), 0, "%s", err.msg);
	s.group = 0;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	run_until_known("a");
	cr_assert_eq(hr_agg_status(agg), HR_STATUS_CRITICAL);
	g.min_passing = 1;
	cr_assert_eq(hr_agg_set_groups(agg, &g, 1, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	s = tcp("b", port_down, buf);
	s.group = 0;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	run_until_known("b");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING, "quorum of 1 met");
}

Test(agg_replace, provisional_checks_replaced_and_removed)
{
	struct hr_err err = { "" };
	char b1[64], b2[64];
	struct hr_check_spec n = tcp("n", port_down, b1);
	struct hr_check_spec m = tcp("m", port_down, b2);

	cr_assert_eq(hr_agg_replace_check(agg, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_replace_check(agg, &m, &err), 0, "%s", err.msg);
	n.interval_ms = 400; /* changed again before its first result */
	cr_assert_eq(hr_agg_replace_check(agg, &n, &err), 0, "%s", err.msg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING, "still left out");
	cr_assert_eq(hr_agg_remove_check(agg, "m"), 0);
	cr_expect_str_eq(hr_agg_output(agg), "1 passing, 1 unknown: n");
	run_until_known("n");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL);
	n.name = NULL;
	cr_expect_neq(hr_agg_replace_check(agg, &n, &err), 0, "a name is needed");
}

Test(agg_replace, changed_check_keeps_its_threshold_counters)
{
	struct hr_err err = { "" };
	struct hr_check_info info;
	char buf[64];
	struct hr_check_spec s = tcp("b", port_up, buf);

	/* One failure is not enough for critical: the replaced check goes
	 * on counting from where the old one was (no failures yet), it does
	 * not start afresh at the threshold (where one failure applies). */
	s.failures_before_critical = s.failures_before_warning = 2;
	cr_assert_eq(hr_agg_add_check(agg, &s, &err), 0, "%s", err.msg);
	run_until_known("b");
	cr_assert_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	s = tcp("b", port_down, buf);
	s.failures_before_critical = s.failures_before_warning = 2;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	run_until_known("b");
	cr_assert_eq(hr_agg_check_get(agg, "b", &info), 0);
	cr_expect_eq(info.last_result, HR_STATUS_CRITICAL);
	cr_expect_eq(info.status, HR_STATUS_PASSING, "one failure of two");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
}

Test(agg_replace, set_groups_keeps_each_check_in_its_group_by_name)
{
	struct hr_group_spec g1[] = { { (char *)"db", 1, HR_ON_FAILURE_CRITICAL } };
	struct hr_group_spec g2[] = {
		{ (char *)"cache", 1, HR_ON_FAILURE_CRITICAL },
		{ (char *)"db", 1, HR_ON_FAILURE_CRITICAL },
	};
	struct hr_err err = { "" };
	struct hr_check_info info;
	char buf[64];
	struct hr_check_spec s = tcp("a", port_up, buf);

	cr_assert_eq(hr_agg_set_groups(agg, g1, 1, &err), 0, "%s", err.msg);
	s.group = 0;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	run_until_known("a");
	cr_assert_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	n_seen = 0;
	/* "db" moves to index 1; "cache" (index 0) is new and empty. */
	cr_assert_eq(hr_agg_set_groups(agg, g2, 2, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_check_get(agg, "a", &info), 0);
	cr_assert_not_null(info.group);
	cr_expect_str_eq(info.group, "db");
	cr_expect_eq(info.status, HR_STATUS_PASSING, "its result stays");
	/* A quorum of 1 in an empty group is not met: critical, as a
	 * fresh start with that config would say; a group gone leaves its
	 * members ungrouped, counting on their own. */
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL);
	cr_assert_eq(hr_agg_set_groups(agg, NULL, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_check_get(agg, "a", &info), 0);
	cr_expect_null(info.group);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
}

Test(agg_replace, a_batch_announces_once)
{
	struct hr_group_spec g = { (char *)"db", 2, HR_ON_FAILURE_CRITICAL };
	struct hr_err err = { "" };
	char b1[64], b2[64];
	struct hr_check_spec a = tcp("a", port_up, b1);
	struct hr_check_spec n = tcp("n", port_down, b2);

	/* Each step alone changes the aggregate (a quorum of 2 with one
	 * member: critical); the batch as a whole leaves it passing. */
	hr_agg_batch_begin(agg);
	cr_assert_eq(hr_agg_set_groups(agg, &g, 1, &err), 0, "%s", err.msg);
	a.group = 0;
	a.interval_ms = 300;
	cr_assert_eq(hr_agg_replace_check(agg, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_replace_check(agg, &n, &err), 0, "%s", err.msg);
	g.min_passing = 1;
	cr_assert_eq(hr_agg_set_groups(agg, &g, 1, &err), 0, "%s", err.msg);
	cr_expect_eq(n_seen, 0, "nothing announced inside the batch");
	hr_agg_batch_end(agg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	cr_expect_str_eq(hr_agg_output(agg), "1 passing, 1 unknown: n");
	cr_assert_eq(n_seen, 1, "one event: the summary changed");
	cr_expect_eq(seen[0], HR_STATUS_PASSING);
}

Test(agg_replace, a_new_group_of_new_checks_waits_for_a_first_result)
{
	struct hr_group_spec g = { (char *)"db", 1, HR_ON_FAILURE_CRITICAL };
	struct hr_err err = { "" };
	char buf[64];
	struct hr_check_spec s = tcp("n", port_down, buf);

	/* A reload adds the group "db" and its only member: the group's
	 * quorum has nobody to count yet, so it is left out, as its member
	 * is; once the member fails, the group counts (critical). */
	hr_agg_batch_begin(agg);
	cr_assert_eq(hr_agg_set_groups(agg, &g, 1, &err), 0, "%s", err.msg);
	s.group = 0;
	cr_assert_eq(hr_agg_replace_check(agg, &s, &err), 0, "%s", err.msg);
	hr_agg_batch_end(agg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	cr_assert_eq(n_seen, 1, "the summary changed");
	cr_expect_eq(seen[0], HR_STATUS_PASSING, "the status did not");
	run_until_known("n");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL);
	cr_expect_str_eq(hr_agg_output(agg), "1 passing, 1 critical: n");
}
