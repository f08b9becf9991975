/*
 * aggregate.h - the pure rules of the check core (lib/aggregate.c): a
 * check's thresholds, when it runs next, and how check statuses add up to
 * one aggregate with a stable summary. No loop, no allocation, no state
 * beyond what the caller passes in; docs/checks.md states the rules.
 *
 * The aggregator keeps a struct hr__tally up to date as statuses change
 * and calls hr__aggregate() on it after each change; the unit tests build
 * a tally from a list of checks and call the same function.
 */
#ifndef HR_AGGREGATE_H
#define HR_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "healthreg/config.h"
#include "healthreg/status.h"

/* ---- thresholds (Consul's StatusHandler) ------------------------------ */

struct hr__thresh {
	uint32_t successes, failures;
};

/* The counters start at their thresholds: the first result applies. */
void hr__thresh_init(struct hr__thresh *t, const struct hr_check_spec *s);
/* The status after raw, given the current one. */
enum hr_status hr__thresh_apply(struct hr__thresh *t,
				const struct hr_check_spec *s,
				enum hr_status current, enum hr_status raw);

/* ---- scheduling --------------------------------------------------------- */

/*
 * From *ideal (when the previous run was due), draws when the next run is
 * due (+-HR__JITTER around `ival` seconds later, or from now if the check
 * fell behind) into *ideal, and returns the delay from `now` to the start:
 * the point nearest to it on a grid from `phase` (step hr__grid_step() of
 * the window), so that runs of many checks share wakeups. u is a uniform
 * draw in [0, 1).
 */
#define HR__JITTER 0.05
#define HR__GRID_MIN 0.001
double hr__next_run(double *ideal, double ival, double now, double phase,
		    double u);
/* The grid step for a window `width` s wide (>= HR__GRID_MIN): the
 * largest 1, 2 or 5 x 10^k ms that fits. */
double hr__grid_step(double width);

/* ---- aggregation -------------------------------------------------------- */

/*
 * Counts of checks, enough to compute the aggregate without visiting
 * them: by status; ungrouped checks by (on_failure, status); per group,
 * its passing and warning members. groups points to n_groups rows that
 * the caller allocates (zeroed); it may be NULL when n_groups is 0.
 */
struct hr__tally {
	size_t count[4];
	size_t ungrouped[3][4];
	size_t (*groups)[2];      /* per group: members passing, warning */
	/* Per group (NULL: not kept): members counted (any status), and
	 * members left out until their first result (a reload's new
	 * checks). A group with members all left out is left out too. */
	size_t (*members)[2];
	size_t n_groups;
};

/* Count a check (delta +1) or stop counting it (-1). group: an index
 * below t->n_groups, or -1. */
void hr__tally_count(struct hr__tally *t, enum hr_status st,
		     enum hr_on_failure f, int group, int delta);
/* Count (delta +1) or stop counting (-1) a member of group that is left
 * out until its first result (t->members only). */
void hr__tally_left_out(struct hr__tally *t, int group, int delta);

#define HR__SUMMARY_NAMES 10 /* names listed per non-passing status */

/*
 * The names the summary lists: the first HR__SUMMARY_NAMES checks (in
 * check order) of each non-passing status. Fill it by offering every
 * check in order to hr__names_add() until it returns false.
 */
struct hr__names {
	const char *v[4][HR__SUMMARY_NAMES];
	size_t n[4], need[4];
	size_t missing;
};

void hr__names_init(struct hr__names *nm, const struct hr__tally *t);
/* Offer a check's name (borrowed until hr__aggregate() returns). false
 * once every listed name is known: the caller may stop offering. */
bool hr__names_add(struct hr__names *nm, enum hr_status st, const char *name);

/*
 * The aggregate of the tallied checks under groups (n_groups =
 * t->n_groups), and the summary, always NUL-terminated, into summary
 * (len bytes; nothing is written when len is 0).
 */
enum hr_status hr__aggregate(const struct hr__tally *t,
			     const struct hr_group_spec *groups,
			     const struct hr__names *nm, char *summary,
			     size_t len);

#endif
