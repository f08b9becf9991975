/* Pure rules: thresholds (Consul's StatusHandler), aggregation with
 * priorities and quorum groups, the summary text, output truncation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "check.h"
#include "healthreg/util.h"

#define P HR_STATUS_PASSING
#define W HR_STATUS_WARNING
#define C HR_STATUS_CRITICAL
#define U HR_STATUS_UNKNOWN

static struct hr_check_spec spec(int sbp, int fbw, int fbc)
{
	struct hr_check_spec s;

	memset(&s, 0, sizeof(s));
	s.success_before_passing = sbp;
	s.failures_before_warning = fbw;
	s.failures_before_critical = fbc;
	s.group = -1;
	return s;
}

/* Feed raw results; compare the status after each. */
static void run_seq(const char *name, struct hr_check_spec s,
		    const enum hr_status *raw, const enum hr_status *want,
		    size_t n)
{
	struct hr__thresh t;
	enum hr_status cur = U;
	size_t i;

	hr__thresh_init(&t, &s);
	for (i = 0; i < n; i++) {
		cur = hr__thresh_apply(&t, &s, cur, raw[i]);
		cr_expect_eq(cur, want[i], "%s: step %zu: got %s want %s", name,
			     i, hr_status_name(cur), hr_status_name(want[i]));
	}
}

Test(thresholds, defaults_apply_every_result_at_once)
{
	enum hr_status raw[] = { P, C, P, W, C };
	enum hr_status want[] = { P, C, P, W, C };

	run_seq("0/0/0", spec(0, 0, 0), raw, want, 5);
}

Test(thresholds, first_result_applies_even_with_thresholds)
{
	/* Counters start at their thresholds (Consul). */
	enum hr_status raw1[] = { P };
	enum hr_status want1[] = { P };
	enum hr_status raw2[] = { C };
	enum hr_status want2[] = { C };

	run_seq("sbp3 first pass", spec(3, 3, 3), raw1, want1, 1);
	run_seq("fbc3 first fail", spec(3, 3, 3), raw2, want2, 1);
}

Test(thresholds, failures_before_critical)
{
	/* passing, then 3 failures needed for critical */
	enum hr_status raw[] = { P, C, C, C, C, P };
	enum hr_status want[] = { P, P, P, C, C, P };

	run_seq("fbc3", spec(0, 3, 3), raw, want, 6);
}

Test(thresholds, failures_before_warning_then_critical)
{
	enum hr_status raw[] = { P, C, C, C, C };
	enum hr_status want[] = { P, W, W, W, C };

	run_seq("fbw1 fbc4", spec(0, 1, 4), raw, want, 5);
}

Test(thresholds, success_before_passing)
{
	enum hr_status raw[] = { C, P, P, C, P, P, P };
	enum hr_status want[] = { C, C, P, C, C, P, P };

	run_seq("sbp2", spec(2, 0, 0), raw, want, 7);
}

Test(thresholds, an_interrupted_streak_starts_over)
{
	enum hr_status raw[] = { P, C, P, C, C };
	enum hr_status want[] = { P, P, P, P, C };

	run_seq("fbc2", spec(0, 2, 2), raw, want, 5);
}

Test(thresholds, warning_counts_as_success)
{
	/* A warning result resets the failure streak and applies as warning. */
	enum hr_status raw[] = { P, C, W, C, C };
	enum hr_status want[] = { P, P, W, W, C };

	run_seq("fbc2 with warning", spec(0, 2, 2), raw, want, 5);
}

/* A check as the aggregation sees it. */
struct item {
	const char *name;
	enum hr_status status;
	enum hr_on_failure on_failure;
	int group; /* index into groups or -1 */
};

/* Names in check order and the aggregate, as the aggregator's recompute. */
static enum hr_status aggregate_tally(const struct hr__tally *t,
				      const struct item *items, size_t n,
				      const struct hr_group_spec *groups,
				      char *summary, size_t len)
{
	struct hr__names nm;
	size_t i;

	hr__names_init(&nm, t);
	for (i = 0; i < n && nm.missing; i++)
		hr__names_add(&nm, items[i].status, items[i].name);
	return hr__aggregate(t, groups, &nm, summary, len);
}

/* The aggregate of a list, tallied all at once (the aggregator keeps the
 * tallies as statuses change). */
static enum hr_status aggregate_items(const struct item *items, size_t n,
				      const struct hr_group_spec *groups,
				      size_t n_groups, char *summary,
				      size_t len)
{
	size_t group_count[8][2] = { { 0 } };
	struct hr__tally t = { .groups = group_count, .n_groups = n_groups };
	size_t i;

	cr_assert_leq(n_groups, 8);
	for (i = 0; i < n; i++)
		hr__tally_count(&t, items[i].status, items[i].on_failure,
				items[i].group, +1);
	return aggregate_tally(&t, items, n, groups, summary, len);
}

struct acase {
	const char *name;
	struct item items[6];
	size_t n;
	struct hr_group_spec groups[2];
	size_t n_groups;
	enum hr_status want;
	const char *summary;
};

static const struct acase acases[] = {
	{ "empty", {}, 0, {}, 0, P, "0 passing" },
	{ "all passing", { { "a", P, 0, -1 }, { "b", P, 0, -1 } }, 2, {}, 0, P,
	  "2 passing" },
	{ "one critical", { { "a", P, 0, -1 }, { "db", C, 0, -1 } }, 2, {}, 0,
	  C, "1 passing, 1 critical: db" },
	{ "unknown counts as critical",
	  { { "a", P, 0, -1 }, { "b", U, 0, -1 } }, 2, {}, 0, C,
	  "1 passing, 1 unknown: b" },
	{ "on_failure warning",
	  { { "a", P, 0, -1 }, { "c", C, HR_ON_FAILURE_WARNING, -1 } }, 2, {},
	  0, W, "1 passing, 1 critical: c" },
	{ "on_failure ignore",
	  { { "a", P, 0, -1 }, { "c", C, HR_ON_FAILURE_IGNORE, -1 } }, 2, {},
	  0, P, "1 passing, 1 critical: c" },
	{ "check warning",
	  { { "a", W, 0, -1 }, { "b", P, 0, -1 } }, 2, {}, 0, W,
	  "1 passing, 1 warning: a" },
	{ "worst wins",
	  { { "a", W, 0, -1 }, { "b", C, 0, -1 }, { "c", P, 0, -1 } }, 3, {},
	  0, C, "1 passing, 1 warning: a, 1 critical: b" },
	{ "quorum met",
	  { { "d1", P, 0, 0 }, { "d2", C, 0, 0 }, { "d3", C, 0, 0 } }, 3,
	  { { "db", 1, HR_ON_FAILURE_CRITICAL } }, 1, P,
	  "1 passing, 2 critical: d2, d3" },
	{ "quorum lost",
	  { { "d1", P, 0, 0 }, { "d2", C, 0, 0 }, { "d3", C, 0, 0 } }, 3,
	  { { "db", 2, HR_ON_FAILURE_CRITICAL } }, 1, C,
	  "1 passing, 2 critical: d2, d3" },
	{ "quorum lost, group degrades only",
	  { { "d1", P, 0, 0 }, { "d2", C, 0, 0 } }, 2,
	  { { "db", 2, HR_ON_FAILURE_WARNING } }, 1, W,
	  "1 passing, 1 critical: d2" },
	{ "quorum met with warnings only",
	  { { "d1", P, 0, 0 }, { "d2", W, 0, 0 } }, 2,
	  { { "db", 2, HR_ON_FAILURE_CRITICAL } }, 1, W,
	  "1 passing, 1 warning: d2" },
	{ "ignored group",
	  { { "a", P, 0, -1 }, { "d1", C, 0, 0 } }, 2,
	  { { "db", 1, HR_ON_FAILURE_IGNORE } }, 1, P,
	  "1 passing, 1 critical: d1" },
	{ "member on_failure is the group's",
	  { { "d1", C, HR_ON_FAILURE_IGNORE, 0 } }, 1,
	  { { "db", 1, HR_ON_FAILURE_CRITICAL } }, 1, C, "0 passing, 1 critical: d1" },
	{ "two groups",
	  { { "d1", P, 0, 0 }, { "c1", C, 0, 1 }, { "c2", C, 0, 1 } }, 3,
	  { { "db", 1, 0 }, { "cache", 1, HR_ON_FAILURE_WARNING } }, 2, W,
	  "1 passing, 2 critical: c1, c2" },
};

Test(aggregate, table)
{
	size_t i;
	char summary[256];

	for (i = 0; i < sizeof(acases) / sizeof(acases[0]); i++) {
		const struct acase *c = &acases[i];
		enum hr_status st = aggregate_items(c->items, c->n, c->groups,
						  c->n_groups, summary,
						  sizeof(summary));

		cr_expect_eq(st, c->want, "%s: got %s want %s", c->name,
			     hr_status_name(st), hr_status_name(c->want));
		cr_expect_str_eq(summary, c->summary, "%s", c->name);
	}
}

Test(aggregate, status_changes_tallied_one_by_one_match_a_fresh_count)
{
	/* The aggregator counts every check as it is added (unknown, here)
	 * and moves it between statuses as results come in. */
	size_t i, k;

	for (i = 0; i < HR_ARRAY_SIZE(acases); i++) {
		const struct acase *c = &acases[i];
		size_t group_count[2][2] = { { 0 } };
		struct hr__tally t = { .groups = group_count,
				       .n_groups = c->n_groups };
		char want[256], got[256];
		enum hr_status st;

		for (k = 0; k < c->n; k++)
			hr__tally_count(&t, U, c->items[k].on_failure,
					c->items[k].group, +1);
		for (k = 0; k < c->n; k++) {
			hr__tally_count(&t, U, c->items[k].on_failure,
					c->items[k].group, -1);
			hr__tally_count(&t, c->items[k].status,
					c->items[k].on_failure,
					c->items[k].group, +1);
		}
		st = aggregate_tally(&t, c->items, c->n, c->groups, got,
				     sizeof(got));
		cr_expect_eq(st, aggregate_items(c->items, c->n, c->groups,
						 c->n_groups, want,
						 sizeof(want)),
			     "%s", c->name);
		cr_expect_str_eq(got, want, "%s", c->name);
	}
}

Test(aggregate, summary_lists_at_most_ten_names)
{
	struct item items[15];
	char names[15][8], summary[512];
	size_t i;

	for (i = 0; i < 15; i++) {
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		items[i].name = names[i];
		items[i].status = C;
		items[i].on_failure = 0;
		items[i].group = -1;
	}
	aggregate_items(items, 15, NULL, 0, summary, sizeof(summary));
	cr_expect_str_eq(summary, "0 passing, 15 critical: c0, c1, c2, c3, c4, "
				  "c5, c6, c7, c8, c9 and 5 more");
}

Test(aggregate, summary_fits_small_buffer)
{
	struct item items[2] = { { "alpha", C, 0, -1 },
					 { "beta", C, 0, -1 } };
	char summary[8];

	aggregate_items(items, 2, NULL, 0, summary, sizeof(summary));
	cr_expect_eq(strlen(summary), 7);
}

Test(output, short_output_kept)
{
	char *s = hr__output_store("hello", 5, 5);

	cr_assert_str_eq(s, "hello");
	free(s);
}

Test(output, exactly_the_limit_is_not_truncated)
{
	char *buf = malloc(HR_OUTPUT_MAX);
	char *s;

	memset(buf, 'a', HR_OUTPUT_MAX);
	s = hr__output_store(buf, HR_OUTPUT_MAX, HR_OUTPUT_MAX);
	cr_assert_eq(strlen(s), HR_OUTPUT_MAX);
	free(s);
	free(buf);
}

Test(output, head_kept_with_consul_marker)
{
	size_t n = 10000;
	char *buf = malloc(n);
	char *s;
	const char *marker = " ... (captured 4096 of 10000 bytes)";

	memset(buf, 'b', n);
	buf[0] = 'H';
	s = hr__output_store(buf, n, n);
	cr_assert_eq(strlen(s), HR_OUTPUT_MAX + strlen(marker));
	cr_expect_eq(s[0], 'H');
	cr_expect_str_eq(s + HR_OUTPUT_MAX, marker);
	free(s);
	free(buf);
}

Test(output, total_beyond_what_was_kept)
{
	/* A kind kept only the head but read more: the marker says so. */
	char *s = hr__output_store("abc", 3, 5000);

	cr_expect_str_eq(s, "abc ... (captured 4096 of 5000 bytes)");
	free(s);
}

Test(status, names_and_order)
{
	enum hr_status s;

	cr_expect_str_eq(hr_status_name(P), "passing");
	cr_expect_str_eq(hr_status_name(U), "unknown");
	cr_expect_eq(hr_status_parse("warning", 0, &s), 0);
	cr_expect_eq(s, W);
	cr_expect_neq(hr_status_parse("unknown", 0, &s), 0);
	cr_expect_eq(hr_status_parse("unknown", 1, &s), 0);
	cr_expect_neq(hr_status_parse("Passing", 0, &s), 0);
	cr_expect_eq(hr_status_worst(P, W), W);
	cr_expect_eq(hr_status_worst(U, W), U);
	cr_expect_eq(hr_status_worst(C, U), C);
}

/* ---- hr__next_run: jitter window and the shared run grid ------------- */

static double draw(struct hr_rng *r)
{
	return hr_rng_unit(r);
}

Test(next_run, stays_in_the_jitter_window_on_the_grid)
{
	const double ivals[] = { 0.02, 0.1, 1, 10, 60, 3600 };
	const double phase = 1234.567;
	struct hr_rng x;

	hr_rng_seed(&x, 7);

	for (size_t i = 0; i < sizeof(ivals) / sizeof(ivals[0]); i++) {
		double ival = ivals[i];

		for (int n = 0; n < 2000; n++) {
			double started = 1.8e9 + draw(&x) * 1000;
			double now = started + draw(&x) * 0.001; /* a quick run */
			double lo = started + ival * (1 - HR__JITTER);
			double hi = started + ival * (1 + HR__JITTER);
			double g = hr__grid_step(hi - lo), ideal = started;
			double d = hr__next_run(&ideal, ival, now, phase,
						draw(&x));
			double at = now + d, k = (at - phase) / g;

			cr_assert_geq(at, started + ival * 0.95 - 1e-6,
				      "ival %g: %.6f before the window", ival,
				      at - started);
			cr_assert_leq(at, started + ival * 1.05 + 1e-6,
				      "ival %g: %.6f after the window", ival,
				      at - started);
			cr_assert_lt(fabs(k - round(k)), 1e-3,
				     "ival %g: %.6f is not on the %g s grid",
				     ival, at, g);
			cr_assert(ideal >= lo - 1e-6 && ideal <= hi + 1e-6,
				  "ival %g: due %.6f outside the window", ival,
				  ideal - started);
		}
	}
}

Test(next_run, checks_with_one_interval_share_wakeups)
{
	/* 100 checks at 10 s, started at random: their next runs fall on at
	 * about one instant per second of starts (1 s grid), not 100. */
	double at[100];
	size_t distinct = 0;
	struct hr_rng x;

	hr_rng_seed(&x, 99);

	for (int i = 0; i < 100; i++) {
		double started = 1000 + draw(&x) * 10, ideal = started;

		at[i] = started + hr__next_run(&ideal, 10, started, 0.25,
					       draw(&x));
		for (int j = 0; j < i; j++)
			if (fabs(at[j] - at[i]) < 1e-6) {
				distinct--;
				break;
			}
		distinct++;
	}
	cr_expect_leq(distinct, 12, "%zu distinct instants for 100 runs",
		      distinct);
	cr_expect_geq(distinct, 9, "runs still spread: %zu instants",
		      distinct);
}

Test(next_run, grid_steps_are_1_2_5)
{
	const double w[][2] = {
		{ 0.001, 0.001 }, { 0.0019, 0.001 }, { 0.002, 0.002 },
		{ 0.0049, 0.002 }, { 0.005, 0.005 }, { 0.0099, 0.005 },
		{ 0.01, 0.01 }, { 0.2 * 0.05, 0.01 }, { 2 * 0.05 * 1, 0.1 },
		{ 2 * 0.05 * 5, 0.5 }, { 10 * 1.05 - 10 * 0.95, 1 },
		{ 2 * 0.05 * 30, 2 }, { 2 * 0.05 * 60, 5 }, { 360, 200 },
	};

	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		cr_expect(fabs(hr__grid_step(w[i][0]) - w[i][1]) < 1e-12,
			  "width %.10f: step %g, want %g", w[i][0],
			  hr__grid_step(w[i][0]), w[i][1]);
}

Test(next_run, nested_grids_share_instants)
{
	/* a 1 s check (100 ms grid) and a 10 s check (1 s grid): every
	 * instant of the coarse grid is one of the fine grid */
	double ideal = 100, a = hr__next_run(&ideal, 10, 100, 3.5, 0.5);
	double k = (100 + a - 3.5) / 0.1;

	cr_expect_lt(fabs(k - round(k)), 1e-6);
}

Test(next_run, late_runs_and_tiny_intervals)
{
	/* fell behind (now is past the window): afresh from now, within
	 * the jitter after it */
	double ideal = 100, d = hr__next_run(&ideal, 1, 102, 0, 0.5);

	cr_expect(ideal >= 102 && ideal <= 102.05, "%f", ideal);
	cr_expect(d >= 0 && d <= 0.05 + 1e-9, "%f", d);
	/* half past: inside what is left of it */
	ideal = 100;
	d = hr__next_run(&ideal, 1, 101.0, 0, 0.2);
	cr_expect_eq(ideal, 101, "%f", ideal); /* t = 100.97 was past */
	cr_expect(d >= 0 && d <= 0.05 + 1e-9, "%f", d);
	ideal = 100;
	d = hr__next_run(&ideal, 1, 101.0, 0, 0.99);
	cr_expect(fabs(ideal - 101.049) < 1e-9, "%f", ideal);
	cr_expect(d >= 0 && d <= 0.05 + 1e-9, "%f", d);
	/* 5 ms interval: a 0.5 ms window, no grid, uniform */
	ideal = 100;
	d = hr__next_run(&ideal, 0.005, 100, 0, 0.5);
	cr_expect(fabs(d - 0.005) < 1e-9, "%f", d);
}

Test(next_run, the_rate_is_one_per_interval)
{
	/* A check run by its timer for 10 000 runs: each start is within
	 * the jitter of when it was due and the mean period is the interval.
	 * (Basing each window on the previous grid point instead gave 0.992 s
	 * for 1 s: 0.96 and 1.024 are the only grid points in [0.95, 1.05]
	 * from a grid point.) */
	const double ivals[] = { 0.1, 1, 10 };
	struct hr_rng x;

	hr_rng_seed(&x, 5);

	for (size_t i = 0; i < sizeof(ivals) / sizeof(ivals[0]); i++) {
		double ival = ivals[i], ideal = 500, now = 500, first = 0;
		double start = 0;
		const int runs = 10000;

		for (int n = 0; n < runs; n++) {
			double prev = ideal;

			start = now + hr__next_run(&ideal, ival, now, 0.3,
						   draw(&x));
			cr_assert_leq(fabs(start - (prev + ival)),
				      ival * HR__JITTER + 1e-6);
			if (!n)
				first = start;
			now = start + draw(&x) * 0.002; /* late, then runs */
		}
		double mean = (start - first) / (runs - 1);

		cr_expect_lt(fabs(mean / ival - 1), 1e-3,
			     "ival %g: mean period %.6f", ival, mean);
	}
}
