/*
 * check_core.h - one check (lib/check_core.c): its copy of the spec, the
 * run in flight, its schedule, ttl, thresholds and stored result. The set
 * of checks (lib/aggregator.c) creates and frees checks through this
 * header; the kinds see only lib/check.h.
 *
 * A run ends in hr__check_finish() (or a ttl push or expiry), always in
 * this order:
 *
 *   record   the check's result, counters and status (thresholds);
 *            then host->ops->record(): the set's tallies and aggregate
 *   schedule the next run (or the ttl deadline)
 *   emit     host->ops->emit(): events to listeners, waiting evaluations
 *
 * and nothing touches the check after emit: a listener may have removed
 * it. No user code runs before emit.
 *
 * Lifetimes. The set owns its checks; a check owns its spec (a deep copy)
 * and its output. While host->busy is non-zero (a callback of the set is
 * running), memory that an event in delivery may point at is not freed
 * but parked: a removed check (hr__check_free) and an output replaced by
 * a new result. hr__host_release() frees what was parked once busy drops
 * to zero. So the strings of an event (check name, output) stay valid
 * until every listener has heard it and the events after it.
 */
#ifndef HR_CHECK_CORE_H
#define HR_CHECK_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "aggregate.h"
#include "check.h"
#include "healthreg/util.h"

struct hr__check_host;
struct eval;

/* One recorded result, as the set tallies and announces it. The strings
 * are the check's, valid while the check is (see parking above). */
struct hr__check_change {
	const char *name;
	const char *output;    /* "" when none */
	enum hr_status before; /* the check's status before this result */
	enum hr_status raw;    /* the result */
	enum hr_status after;  /* the status after thresholds */
	double duration_ms;
};

struct hr__check_host_ops {
	/* c's result is stored: update what the set keeps about c. Must not
	 * call user code. */
	void (*record)(struct hr__check_host *h, struct hr_check *c,
		       const struct hr__check_change *chg);
	/* Tell listeners and waiting evaluations. The check is not touched
	 * afterwards; it may be removed by the call. */
	void (*emit)(struct hr__check_host *h,
		     const struct hr__check_change *chg);
};

/* What a check needs from the set that owns it (embedded in the set). */
struct hr__check_host {
	const struct hr__check_host_ops *ops;
	struct ev_loop *loop;
	struct hr_http *http;
	struct hr_rng rng;      /* jitter and first-run spread */
	double phase;           /* origin of the run grid, hr__next_run() */
	bool started;           /* scheduling on */
	unsigned busy;          /* callbacks in progress: frees are parked */
	struct hr_check *dead;  /* removed while busy, linked through run */
	char **old_outputs;     /* replaced while busy */
	size_t n_old_outputs, cap_old_outputs;
};

/*
 * A check. check_core.c writes every field except the set's bookkeeping
 * at the end; the set reads spec, status and running.
 */
struct hr_check {
	struct hr__check_host *host;
	struct hr_check_spec spec; /* deep copy */
	const struct hr__check_kind *kind; /* NULL for ttl checks */
	ev_timer timer;            /* next run, or ttl expiry */
	void *run;                 /* the kind's per-run state; parked: next */
	char *output;              /* NULL = "" */
	size_t output_len;         /* bytes in output, SIZE_MAX = unknown */
	double started;            /* ev_now() at run start */
	double ideal;              /* when the (running) run is due, before jitter */
	double result_at;          /* ev_now() of the last result, 0 = none */
	double result_wall;
	double duration_ms;
	struct hr__thresh thresh;
	enum hr_status status, last_result;
	uint32_t consecutive_failures, consecutive_successes;
	uint64_t runs[3];
	bool running;
	/* the set's: evaluations waiting for this check's run to end */
	unsigned n_waiters;
	struct eval **waiters;
};

/*
 * A new check on host from spec (copied), run by kind (NULL for a ttl
 * check). -EINVAL (with err) for a spec its kind cannot run: no target,
 * args, interval or ttl; -ENOMEM. The caller checks the name, the group
 * and whether the kind is allowed, and picks the kind: the core does not
 * know the kinds, only their interface (check.h).
 */
int hr__check_new(struct hr_check **out, struct hr__check_host *host,
		  const struct hr_check_spec *spec,
		  const struct hr__check_kind *kind, struct hr_err *err);

/* Stop the timer and cancel the run in flight; true when one was. */
bool hr__check_halt(struct hr_check *c);

/* Halt and free c, or park it while host->busy. NULL-safe. The set has
 * taken it out of every list and released its waiters. */
void hr__check_free(struct hr_check *c);

/* Scheduling is on: a ttl check's deadline, or the first run soon. */
void hr__check_schedule_first(struct hr_check *c);

/* Start a run now (on-demand evaluation), unless one is in flight. The
 * run may end before this returns; c may be gone then. */
void hr__check_run(struct hr_check *c);

/* A pushed result for a ttl check (output may be NULL); c may be gone
 * when this returns. */
void hr__check_push(struct hr_check *c, enum hr_status st, const char *output);

/* true when c's last result is older than its cache_ttl / failure_ttl. */
bool hr__check_stale(const struct hr_check *c, double now);

/* The view of c, except group and on_failure (the set's). */
void hr__check_info(const struct hr_check *c, struct hr_check_info *o);

/* Callbacks of the set begin / end; release frees what was parked when
 * the last one ends and returns true then. */
void hr__host_hold(struct hr__check_host *h);
bool hr__host_release(struct hr__check_host *h);

#endif
