/*
 * hr_agg_set_groups() and hr_agg_add_group() out of memory: -ENOMEM and
 * nothing changed, as aggregator.h says. Every allocation the library
 * makes in this binary goes through the wrappers below (linked with
 * -Wl,--wrap=calloc,--wrap=realloc,--wrap=strdup, tests/CMakeLists.txt),
 * and the test fails the k-th one, for every k until the call succeeds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "healthreg/aggregator.h"
#include "loop.h"

void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);

/* > 0: the arm-th allocation from now fails (then disarmed). */
static int arm;

static int fail_now(void)
{
	if (arm > 0 && --arm == 0)
		return 1;
	return 0;
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return fail_now() ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

static struct ev_loop *loop;
static struct hr_agg *agg;
static int lfd, port_up;
static int n_agg_events;

static void on_event(struct hr_agg *a, const struct hr_agg_event *ev,
		     void *payload)
{
	(void)a;
	(void)payload;
	if (ev->type == HR_EVENT_AGGREGATE)
		n_agg_events++;
}

static uint64_t runs_of(const char *name)
{
	struct hr_check_info info;

	cr_assert_eq(hr_agg_check_get(agg, name, &info), 0);
	return info.runs_passing + info.runs_warning + info.runs_critical;
}

/* Let check a run twice more: its results are tallied in its group. */
static void two_more_runs(void)
{
	uint64_t r = runs_of("a");
	double end = ev_time() + 5;

	while (runs_of("a") < r + 2 && ev_time() < end)
		hr_test_run_for(loop, 0.01);
	cr_assert_geq(runs_of("a"), r + 2, "check a runs on");
}

static void setup(void)
{
	struct hr_group_spec g = { (char *)"db", 1, HR_ON_FAILURE_CRITICAL };
	struct hr_err err = { "" };
	struct hr_check_spec s;
	char buf[64];

	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
	lfd = hr_test_listener(&port_up);
	cr_assert(lfd >= 0);
	cr_assert_eq(hr_agg_new(&agg, loop, NULL, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_add_group(agg, &g, &err), 0, "%s", err.msg);
	memset(&s, 0, sizeof(s));
	snprintf(buf, sizeof(buf), "127.0.0.1:%d", port_up);
	s.name = (char *)"a";
	s.kind = HR_CHECK_TCP;
	s.target = buf;
	s.interval_ms = 50;
	s.timeout_ms = 40;
	s.group = 0;
	cr_assert_eq(hr_agg_add_check(agg, &s, &err), 0, "%s", err.msg);
	cr_assert_gt(hr_agg_listen(agg, on_event, NULL), 0);
	hr_agg_start(agg);
	two_more_runs();
	cr_assert_eq(hr_agg_status(agg), HR_STATUS_PASSING);
}

static void teardown(void)
{
	arm = 0;
	hr_agg_free(agg);
	ev_loop_destroy(loop);
	close(lfd);
}

/* The set is as it was: a still in "db", passing, and it goes on
 * running and being counted (a half-replaced tally would crash or
 * miscount here). */
static void unchanged(void)
{
	struct hr_check_info info;

	cr_assert_eq(hr_agg_check_get(agg, "a", &info), 0);
	cr_assert_not_null(info.group);
	cr_expect_str_eq(info.group, "db");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	cr_expect_eq(n_agg_events, 0, "no aggregate change announced");
	/* An empty batch computes the aggregate again from the set. */
	hr_agg_batch_begin(agg);
	hr_agg_batch_end(agg);
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING,
		     "the groups are the old ones");
	two_more_runs();
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_PASSING);
	cr_expect_eq(n_agg_events, 0);
}

Test(agg_nomem, set_groups_changes_nothing_when_it_fails,
     .init = setup, .fini = teardown)
{
	/* "cache" (empty, quorum 1) would make the aggregate critical. */
	struct hr_group_spec g2[] = {
		{ (char *)"cache", 1, HR_ON_FAILURE_CRITICAL },
		{ (char *)"db", 1, HR_ON_FAILURE_CRITICAL },
	};
	struct hr_err err = { "" };
	int k, rc = -1, failures = 0;

	for (k = 1; k < 50; k++) {
		n_agg_events = 0;
		arm = k;
		rc = hr_agg_set_groups(agg, g2, 2, &err);
		arm = 0;
		if (!rc)
			break;
		cr_assert_eq(rc, -ENOMEM, "allocation %d: %d", k, rc);
		failures++;
		unchanged();
	}
	cr_assert_eq(rc, 0, "succeeds once nothing fails");
	cr_expect_geq(failures, 3, "every allocation of the call was failed once");
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL);
}

Test(agg_nomem, add_group_changes_nothing_when_it_fails,
     .init = setup, .fini = teardown)
{
	struct hr_group_spec g = { (char *)"cache", 1, HR_ON_FAILURE_CRITICAL };
	struct hr_err err = { "" };
	int k, rc = -1, failures = 0;

	for (k = 1; k < 50; k++) {
		n_agg_events = 0;
		arm = k;
		rc = hr_agg_add_group(agg, &g, &err);
		arm = 0;
		if (!rc)
			break;
		cr_assert_eq(rc, -ENOMEM, "allocation %d: %d", k, rc);
		failures++;
		unchanged();
	}
	cr_assert_eq(rc, 0);
	cr_expect_geq(failures, 3);
	/* An empty group with a quorum of 1 is not met. */
	cr_expect_eq(hr_agg_status(agg), HR_STATUS_CRITICAL);
}
