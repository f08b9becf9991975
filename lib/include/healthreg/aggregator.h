/*
 * aggregator.h - the health aggregator: a set of checks on one libev loop,
 * their thresholds, priorities and quorum groups, and the one aggregate
 * status they add up to.
 *
 * Checks run on their own schedule once hr_agg_start() is called, and on
 * demand through hr_agg_evaluate(), which reuses results younger than each
 * check's cache_ttl (successes) or failure_ttl (failures). Both paths share
 * the same stored results. Listeners hear every change of a check's status
 * and of the aggregate.
 *
 * Ownership. The aggregator owns its checks and their specs (deep copies:
 * the caller's spec, groups and config may be freed as soon as the add
 * returns), its groups, listener entries and pending evaluations. It
 * borrows the loop and a shared struct hr_http, which must outlive it.
 * Payloads passed with callbacks stay the caller's.
 *
 * Callbacks. Listeners and evaluation callbacks run on the loop, from
 * inside aggregator calls (hr_agg_ttl_update, hr_agg_add_check,
 * hr_agg_remove_check, hr_agg_evaluate ...) as well as from the loop.
 * A callback may call any function here, including removing any check
 * (the one reported too), pushing ttl results, starting evaluations and
 * (un)subscribing listeners, except hr_agg_free(): the aggregator must
 * outlive every callback (asserted). Each event is complete before the
 * first listener hears it: the run is recorded and the next one scheduled
 * first, and a change made by a listener is announced by events of its
 * own, after or within the current one. The strings of an event stay
 * valid until the callback returns, whatever the listeners do; copy what
 * you keep.
 */
#ifndef HEALTHREG_AGGREGATOR_H
#define HEALTHREG_AGGREGATOR_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "healthreg/config.h"
#include "healthreg/error.h"
#include "healthreg/http.h"
#include "healthreg/status.h"

/* Output kept per check: Consul's limit; longer output is truncated with
 * Consul's marker " ... (captured 4096 of N bytes)". */
#define HR_OUTPUT_MAX 4096

struct hr_agg;

struct hr_agg_opts {
	bool enable_exec_checks; /* "args" checks refuse to start otherwise */
	int max_concurrent;      /* evaluate(): checks in flight; 0 = 64 */
	unsigned seed;           /* jitter PRNG seed; 0 = from time and pid */
};

/**
 * Create an aggregator on loop. http may be NULL (one is created and owned
 * by the aggregator) or shared (borrowed; must outlive the aggregator).
 */
int hr_agg_new(struct hr_agg **out, struct ev_loop *loop,
	       struct hr_http *http, const struct hr_agg_opts *opts,
	       struct hr_err *err);

/** Stop every check, cancel runs in flight, free. Pending evaluations are
 * dropped without their callback. NULL-safe; not from a callback. */
void hr_agg_free(struct hr_agg *agg);

/** Declare a quorum group. -EEXIST on a duplicate name, -ENOMEM (nothing
 * changed). Copied. */
int hr_agg_add_group(struct hr_agg *agg, const struct hr_group_spec *g,
		     struct hr_err *err);

/**
 * Add a check (spec is copied; spec->group indexes groups in the order
 * they were added, or -1). -EEXIST when the name is taken, -EPERM for an
 * exec check when exec checks are disabled, -EINVAL for a bad spec. A check
 * added after hr_agg_start() is scheduled at once.
 */
int hr_agg_add_check(struct hr_agg *agg, const struct hr_check_spec *spec,
		     struct hr_err *err);

/**
 * Make-before-break for a reload: add spec, replacing the check of that
 * name if there is one, with no transient aggregate. A replaced check's
 * status carries over to the new one until its first result (so the
 * aggregate does not change), and so do its threshold counters (a check
 * one failure short of failures_before_critical stays one short); a
 * check that is new is listed as unknown but does not count against the
 * aggregate (nor in its group) until its first result. Errors as
 * hr_agg_add_check(); the old check stays then.
 */
int hr_agg_replace_check(struct hr_agg *agg, const struct hr_check_spec *spec,
			 struct hr_err *err);

/**
 * Replace every group (for a reload; copied). Each check keeps its group
 * by name: it moves to the index of the group of that name in groups, or,
 * when there is none, counts as ungrouped until it is replaced or
 * removed. Its status stays, so a changed quorum is applied to the
 * results the members already have. -ENOMEM (nothing changed).
 */
int hr_agg_set_groups(struct hr_agg *agg, const struct hr_group_spec *groups,
		      size_t n, struct hr_err *err);

/**
 * Batch several changes (a reload's removes, replaces and new groups)
 * into one: between begin and end nothing recomputes or announces the
 * aggregate; end computes it once and sends at most one AGGREGATE event
 * (none when the batch left it as it was); evaluations waiting for a
 * check go on at its end. Batches nest; every begin needs its end.
 * Cannot fail.
 */
void hr_agg_batch_begin(struct hr_agg *agg);
void hr_agg_batch_end(struct hr_agg *agg);

/**
 * Stop and remove a check (its run in flight is cancelled; evaluations
 * waiting for it stop waiting). -ENOENT when unknown. Pointers from
 * hr_check_info for it are invalid once the current callback, if any,
 * returns, or at once otherwise.
 */
int hr_agg_remove_check(struct hr_agg *agg, const char *name);

/** Groups then checks of one service of a parsed config. Stops at the
 * first error. */
int hr_agg_add_service(struct hr_agg *agg, const struct hr_service_conf *cfg,
		       struct hr_err *err);
/** hr_agg_add_service() of the config's first service (its only one when
 * written as "service"). */
int hr_agg_add_config(struct hr_agg *agg, const struct hr_config *cfg,
		      struct hr_err *err);

/**
 * Start scheduling: every check runs once soon (first runs spread over at
 * most 1 s), then every interval with a few percent of jitter.
 */
void hr_agg_start(struct hr_agg *agg);

/** Stop scheduling and cancel runs in flight. Results are kept. */
void hr_agg_stop(struct hr_agg *agg);

typedef void (*hr_agg_eval_cb)(struct hr_agg *agg, enum hr_status status,
			       const char *output, void *payload);

/**
 * On-demand evaluation: run (at most max_concurrent at a time) every check
 * whose result is stale, wait for runs already in flight, and call cb once
 * with the aggregate (output borrowed for the call). cb may run before this
 * returns if nothing is stale. Returns 0 or -ENOMEM. The aggregator must
 * outlive the callback; hr_agg_free() drops it uncalled.
 */
int hr_agg_evaluate(struct hr_agg *agg, hr_agg_eval_cb cb, void *payload);

/**
 * Push a result into a ttl check (refreshing its TTL). output may be NULL
 * (copied). Listeners hear it before this returns. -ENOENT unknown check,
 * -EINVAL not a ttl check.
 */
int hr_agg_ttl_update(struct hr_agg *agg, const char *name,
		      enum hr_status status, const char *output);

/** The current aggregate and its stable summary ("2 passing, 1 critical: db");
 * the summary is borrowed until the next change to the aggregator. */
enum hr_status hr_agg_status(const struct hr_agg *agg);
const char *hr_agg_output(const struct hr_agg *agg);

/* A read-only view of one check. Strings are borrowed until the next loop
 * iteration or change to the aggregator (for a removed check: until the
 * callback that removed it returns). */
struct hr_check_info {
	const char *name;
	enum hr_check_kind kind;
	enum hr_status status;       /* after thresholds */
	enum hr_status last_result;  /* the raw result of the last run */
	const char *output;
	const char *group;           /* NULL when not grouped */
	enum hr_on_failure on_failure;
	double last_run;             /* wall-clock time of the last result, 0 = never */
	double duration_ms;          /* of the last run */
	uint32_t consecutive_failures;
	uint32_t consecutive_successes;
	uint64_t runs_passing, runs_warning, runs_critical;
	bool running;
};

size_t hr_agg_n_checks(const struct hr_agg *agg);
/** Info for check i (0 <= i < n, in insertion order). -ERANGE otherwise. */
int hr_agg_check_at(const struct hr_agg *agg, size_t i,
		    struct hr_check_info *out);
/** Info for a named check. -ENOENT otherwise. */
int hr_agg_check_get(const struct hr_agg *agg, const char *name,
		     struct hr_check_info *out);

enum hr_agg_event_type {
	HR_EVENT_CHECK_RESULT,    /* every finished run (metrics) */
	HR_EVENT_CHECK_STATUS,    /* a check's status changed */
	HR_EVENT_AGGREGATE,       /* the aggregate status or summary changed */
};

/* One event. All of it is borrowed for the callback: copy what you keep. */
struct hr_agg_event {
	enum hr_agg_event_type type;
	const char *check;        /* NULL for HR_EVENT_AGGREGATE */
	enum hr_status old_status, new_status;
	const char *output;       /* check output, or the aggregate summary */
	double duration_ms;       /* HR_EVENT_CHECK_RESULT only */
};

typedef void (*hr_agg_listener_cb)(struct hr_agg *agg,
				   const struct hr_agg_event *ev,
				   void *payload);

/**
 * Subscribe to events. Returns a positive listener id, or -ENOMEM.
 * Listeners are called in subscription order. For one finished run the
 * events are RESULT, then STATUS if the check's status changed, then
 * AGGREGATE if the aggregate did. Subscribed from inside a callback, a
 * listener hears the events that begin after it.
 */
int hr_agg_listen(struct hr_agg *agg, hr_agg_listener_cb cb, void *payload);
/** Unsubscribe (also from inside a callback, itself or another): not
 * called again, even for the event in delivery. Unknown ids are ignored. */
void hr_agg_unlisten(struct hr_agg *agg, int id);

/** The loop and the HTTP glue the aggregator runs on (borrowed). */
struct ev_loop *hr_agg_loop(const struct hr_agg *agg);
struct hr_http *hr_agg_http(const struct hr_agg *agg);

#endif
