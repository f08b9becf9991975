/*
 * aggregate.c - pure rules: thresholds per check, check statuses -> one
 * service status with a stable summary text, and when a check runs next.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "internal.h"

/*
 * Consul's StatusHandler: the counters start at their thresholds, so the
 * first result applies at once. passing/warning count as successes.
 */
void hr__thresh_init(struct hr__thresh *t, const struct hr_check_spec *s)
{
	t->successes = (uint32_t)s->success_before_passing;
	t->failures = (uint32_t)s->failures_before_critical;
	if ((uint32_t)s->failures_before_warning > t->failures)
		t->failures = (uint32_t)s->failures_before_warning;
}

enum hr_status hr__thresh_apply(struct hr__thresh *t,
				const struct hr_check_spec *s,
				enum hr_status current, enum hr_status raw)
{
	if (raw == HR_STATUS_PASSING || raw == HR_STATUS_WARNING) {
		if (t->successes < UINT32_MAX)
			t->successes++;
		t->failures = 0;
		if (t->successes >= (uint32_t)s->success_before_passing)
			return raw;
		return current;
	}
	if (t->failures < UINT32_MAX)
		t->failures++;
	t->successes = 0;
	if (t->failures >= (uint32_t)s->failures_before_critical)
		return HR_STATUS_CRITICAL;
	if (t->failures >= (uint32_t)s->failures_before_warning)
		return HR_STATUS_WARNING;
	return current;
}

/* An item's contribution to the aggregate (unknown counts as critical). */
static enum hr_status contribution(enum hr_status st, enum hr_on_failure f)
{
	if (st == HR_STATUS_UNKNOWN)
		st = HR_STATUS_CRITICAL;
	if (st == HR_STATUS_PASSING || f == HR_ON_FAILURE_IGNORE)
		return HR_STATUS_PASSING;
	if (f == HR_ON_FAILURE_WARNING)
		return HR_STATUS_WARNING;
	return st;
}

/* A group's contribution, from its passing and warning member counts. */
static enum hr_status group_contribution(const struct hr_group_spec *g,
					 size_t passing, size_t warning)
{
	enum hr_status gs;

	/* Quorum met: passing. Met only counting members that are
	 * degraded: warning. Otherwise the group's on_failure. */
	if (passing >= (size_t)g->min_passing)
		gs = HR_STATUS_PASSING;
	else if (passing + warning >= (size_t)g->min_passing)
		gs = HR_STATUS_WARNING;
	else
		gs = HR_STATUS_CRITICAL;
	return contribution(gs, g->on_failure);
}

void hr__tally_count(struct hr__tally *t, enum hr_status st,
		     enum hr_on_failure f, int group, int delta)
{
	size_t d = (size_t)delta; /* wraps for -1: unsigned arithmetic */

	t->count[st] += d;
	if (group < 0) {
		t->ungrouped[f][st] += d;
		return;
	}
	if (t->groups && (size_t)group < t->n_groups &&
	    st <= HR_STATUS_WARNING)
		t->groups[group][st] += d;
	if (t->members && (size_t)group < t->n_groups)
		t->members[group][0] += d;
}

void hr__tally_left_out(struct hr__tally *t, int group, int delta)
{
	if (t->members && group >= 0 && (size_t)group < t->n_groups)
		t->members[group][1] += (size_t)delta;
}

/* Every member of group g waits for its first result. */
static bool group_left_out(const struct hr__tally *t, size_t g)
{
	return t->members && !t->members[g][0] && t->members[g][1];
}

void hr__names_init(struct hr__names *nm, const struct hr__tally *t)
{
	size_t s;

	memset(nm->n, 0, sizeof(nm->n));
	memset(nm->need, 0, sizeof(nm->need));
	nm->missing = 0;
	/* passing names are never listed */
	for (s = HR_STATUS_WARNING; s <= HR_STATUS_UNKNOWN; s++) {
		nm->need[s] = t->count[s] < HR__SUMMARY_NAMES
				      ? t->count[s]
				      : HR__SUMMARY_NAMES;
		nm->missing += nm->need[s];
	}
}

bool hr__names_add(struct hr__names *nm, enum hr_status st, const char *name)
{
	if (nm->n[st] < nm->need[st]) {
		nm->v[st][nm->n[st]++] = name;
		nm->missing--;
	}
	return nm->missing > 0;
}

/* "a, b, c": the names listed for one status, cut to fit len. */
static void join_names(const struct hr__names *nm, enum hr_status st,
		       char *buf, size_t len)
{
	size_t i, pos = 0;

	buf[0] = '\0';
	for (i = 0; i < nm->n[st]; i++) {
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%s",
					i ? ", " : "", nm->v[st][i]);
		if (pos >= len)
			pos = len - 1;
	}
}

/* "3 passing, 1 warning: cache, 1 critical: db" */
static void format_summary(const size_t count[4], const struct hr__names *nm,
			   char *summary, size_t len)
{
	static const enum hr_status order[] = {
		HR_STATUS_PASSING, HR_STATUS_WARNING, HR_STATUS_CRITICAL,
		HR_STATUS_UNKNOWN,
	};
	char names[512];
	size_t i, pos = 0;
	int first = 1;

	summary[0] = '\0';
	for (i = 0; i < HR_ARRAY_SIZE(order); i++) {
		enum hr_status st = order[i];

		if (!count[st] && st != HR_STATUS_PASSING)
			continue;
		pos += (size_t)snprintf(summary + pos, pos < len ? len - pos : 0,
					"%s%zu %s", first ? "" : ", ",
					count[st], hr_status_name(st));
		first = 0;
		if (st == HR_STATUS_PASSING || !count[st])
			continue;
		join_names(nm, st, names, sizeof(names));
		pos += (size_t)snprintf(summary + pos, pos < len ? len - pos : 0,
					": %s", names);
		if (count[st] > nm->n[st])
			pos += (size_t)snprintf(summary + pos,
						pos < len ? len - pos : 0,
						" and %zu more",
						count[st] - nm->n[st]);
	}
}

enum hr_status hr__aggregate(const struct hr__tally *t,
			     const struct hr_group_spec *groups,
			     const struct hr__names *nm, char *summary,
			     size_t len)
{
	enum hr_status agg = HR_STATUS_PASSING;
	size_t g;
	int f, s;

	for (f = 0; f < 3; f++)
		for (s = 0; s < 4; s++)
			if (t->ungrouped[f][s])
				agg = hr_status_worst(
					agg, contribution((enum hr_status)s,
							  (enum hr_on_failure)f));
	for (g = 0; g < t->n_groups; g++)
		if (!group_left_out(t, g))
			agg = hr_status_worst(
				agg, group_contribution(
					     &groups[g],
					     t->groups ? t->groups[g][0] : 0,
					     t->groups ? t->groups[g][1] : 0));
	if (len)
		format_summary(t->count, nm, summary, len);
	return agg;
}

double hr__grid_step(double width)
{
	/* in whole ms; the relative slack absorbs rounding (a 10 s interval's
	 * window computes as 0.9999999999 s) */
	long long w = (long long)(width / HR__GRID_MIN * (1 + 1e-9)), d = 1;

	while (d * 10 <= w)
		d *= 10;
	if (d * 5 <= w)
		d *= 5;
	else if (d * 2 <= w)
		d *= 2;
	return (double)d * HR__GRID_MIN;
}

/*
 * Delay from now to the next periodic run of a check. *ideal is the
 * instant the previous run was due; the next one is due at a uniformly
 * jittered instant t in [*ideal + ival * (1 - J), *ideal + ival * (1 + J)]
 * and *ideal becomes t: the schedule is a random walk whose steps average
 * exactly ival, so the rate is 1/ival and neither the wakeup's lateness
 * nor the grid below adds up, while the jitter slowly decorrelates
 * checks. A check that fell behind (its window is over: a run slower
 * than the interval) starts afresh from now, within ival * J.
 *
 * The run does not start at t itself but at the point of a grid nearest
 * to t inside the window: step g = the window's width rounded down to
 * 1, 2 or 5 times a power of ten ms, origin phase (random per agent, so
 * that agents in a fleet do not line up on wall-clock boundaries). Runs
 * of checks with the same interval land on the same instants, and the
 * steps of usual intervals nest (1 s -> 100 ms, 5 s -> 500 ms, 10 s ->
 * 1 s, 60 s -> 5 s), so checks with other intervals share them too: one
 * wakeup starts several runs. 100 checks at 10 s wake the agent about
 * once a second to start runs instead of ten times. A window already
 * partly past is cut at now; with no grid point in it, or a window
 * narrower than 1 ms, the run starts at t.
 */
double hr__next_run(double *ideal, double ival, double now, double phase,
		    double u)
{
	double lo = *ideal + ival * (1.0 - HR__JITTER);
	double hi = *ideal + ival * (1.0 + HR__JITTER);
	double t = lo + (hi - lo) * u, g = HR__GRID_MIN, k, k0, k1;

	if (hi < now) {
		lo = now;
		hi = now + ival * HR__JITTER;
		t = lo + (hi - lo) * u;
	} else if (lo < now) {
		lo = now;
		if (t < now)
			t = now;
	}
	*ideal = t;
	if (hi - lo >= HR__GRID_MIN) {
		g = hr__grid_step(hi - lo);
		k0 = ceil((lo - phase) / g);
		k1 = floor((hi - phase) / g);
		if (k1 >= k0) {
			k = round((t - phase) / g);
			k = k < k0 ? k0 : k > k1 ? k1 : k;
			return phase + k * g - now;
		}
	}
	return t - now;
}
