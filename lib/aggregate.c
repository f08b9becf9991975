/*
 * aggregate.c - pure rules: thresholds per check, check statuses -> one
 * service status with a stable summary text, and when a check runs next.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

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

enum hr_status hr__contribution(enum hr_status st, enum hr_on_failure f)
{
	if (st == HR_STATUS_UNKNOWN)
		st = HR_STATUS_CRITICAL;
	if (st == HR_STATUS_PASSING || f == HR_ON_FAILURE_IGNORE)
		return HR_STATUS_PASSING;
	if (f == HR_ON_FAILURE_WARNING)
		return HR_STATUS_WARNING;
	return st;
}

enum hr_status hr__group_contribution(const struct hr_group_spec *g,
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
	return hr__contribution(gs, g->on_failure);
}

#define MAX_NAMES HR__SUMMARY_NAMES

struct bucket {
	size_t count, named;
	char names[512];
	size_t pos;
};

static void format_summary(const struct bucket *b, char *summary, size_t len);

static void bucket_add(struct bucket *b, const char *name)
{
	b->count++;
	if (b->named >= MAX_NAMES)
		return;
	b->pos += (size_t)snprintf(b->names + b->pos,
				   sizeof(b->names) - b->pos, "%s%s",
				   b->named ? ", " : "", name);
	if (b->pos >= sizeof(b->names))
		b->pos = sizeof(b->names) - 1;
	b->named++;
}

enum hr_status hr__aggregate(const struct hr__agg_item *items, size_t n,
			     const struct hr_group_spec *groups,
			     size_t n_groups, char *summary, size_t len)
{
	enum hr_status agg = HR_STATUS_PASSING;
	struct bucket b[4];
	size_t i, g;

	memset(b, 0, sizeof(b));
	for (i = 0; i < n; i++) {
		bucket_add(&b[items[i].status], items[i].name);
		if (items[i].group < 0)
			agg = hr_status_worst(agg, hr__contribution(items[i].status,
							       items[i].on_failure));
	}
	for (g = 0; g < n_groups; g++) {
		size_t passing = 0, warning = 0;

		for (i = 0; i < n; i++) {
			if (items[i].group != (int)g)
				continue;
			if (items[i].status == HR_STATUS_PASSING)
				passing++;
			else if (items[i].status == HR_STATUS_WARNING)
				warning++;
		}
		agg = hr_status_worst(agg, hr__group_contribution(&groups[g], passing,
							    warning));
	}
	if (len)
		format_summary(b, summary, len);
	return agg;
}

void hr__summary(const size_t count[4],
		 const char *const names[4][HR__SUMMARY_NAMES], char *summary,
		 size_t len)
{
	struct bucket b[4];
	size_t st, i;

	memset(b, 0, sizeof(b));
	for (st = 0; st < 4; st++) {
		/* passing names are never listed */
		for (i = 0; st != HR_STATUS_PASSING && i < count[st] &&
			    i < MAX_NAMES; i++)
			bucket_add(&b[st], names[st][i]);
		b[st].count = count[st];
	}
	if (len)
		format_summary(b, summary, len);
}

static void format_summary(const struct bucket *b, char *summary, size_t len)
{
	static const enum hr_status order[] = {
		HR_STATUS_PASSING, HR_STATUS_WARNING, HR_STATUS_CRITICAL,
		HR_STATUS_UNKNOWN,
	};
	size_t i, pos = 0;
	int first = 1;

	summary[0] = '\0';
	for (i = 0; i < 4; i++) {
		const struct bucket *bk = &b[order[i]];

		if (!bk->count && order[i] != HR_STATUS_PASSING)
			continue;
		pos += (size_t)snprintf(summary + pos, pos < len ? len - pos : 0,
					"%s%zu %s", first ? "" : ", ",
					bk->count, hr_status_name(order[i]));
		if (order[i] != HR_STATUS_PASSING && bk->count) {
			pos += (size_t)snprintf(summary + pos,
						pos < len ? len - pos : 0,
						": %s", bk->names);
			if (bk->count > bk->named)
				pos += (size_t)snprintf(summary + pos,
							pos < len ? len - pos : 0,
							" and %zu more",
							bk->count - bk->named);
		}
		first = 0;
	}
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
