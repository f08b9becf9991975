/*
 * publish.h - when and what the registry backends are told: nothing until
 * the first aggregate is known (readiness, with a timeout), nothing while
 * a reload's new checks have no result yet (the hold, with a timeout),
 * and, in maintenance, "critical: maintenance: <reason>" to backends that
 * have no maintenance mode of their own (the maintenance gate).
 *
 * Lifetimes: struct hr_pub is a value embedded by the agent. It borrows
 * the loop, the aggregator and the backend set (all outlive it) and owns
 * the maintenance reason and the held check names (copies). It keeps no
 * pointer into a config, so a reload may free the old config at any time.
 * Nothing here frees a check or a backend.
 */
#ifndef HR_AGENT_PUBLISH_H
#define HR_AGENT_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "bset.h"
#include "healthreg/aggregator.h"
#include "healthreg/config.h"

struct hr_pub {
	struct ev_loop *loop;  /* borrowed */
	struct hr_agg *agg;    /* borrowed */
	struct hr_bset *bset;  /* borrowed */
	bool ready;            /* first aggregate known and published */
	bool hold;             /* reload: new checks have no result yet */
	bool reloading;        /* the new check set is being built */
	bool stopping;         /* shutting down: publish nothing more */
	bool maint;
	char *maint_reason;    /* owned; NULL = none given */
	char **held;           /* owned copies: names of the new checks */
	size_t n_held;
	ev_timer ready_timer;  /* publish even if some check never answers */
	ev_timer hold_timer;
};

/* Cannot fail. */
void hr_pub_init(struct hr_pub *p, struct ev_loop *loop, struct hr_agg *agg,
		 struct hr_bset *bset);
/* Stop the timers, free the reason and the held names. */
void hr_pub_dispose(struct hr_pub *p);

/* How long the first results of cfg's checks may take. */
double hr_pub_first_result_wait(const struct hr_config *cfg);

/* The checks have started: arm the readiness timeout (wait seconds); ready
 * at once when every check is already known. */
void hr_pub_start(struct hr_pub *p, double wait);

/* Every aggregator event (the agent's listener forwards them). */
void hr_pub_event(struct hr_pub *p, const struct hr_agg_event *ev);

/* Tell every backend the aggregate, unless not ready, held or stopping. */
void hr_pub_publish(struct hr_pub *p);

/* Set maintenance (reason copied; logs maintenance_enabled/disabled).
 * Returns 0 or -ENOMEM (nothing changed). Tells nobody: see below. */
int hr_pub_maint_set(struct hr_pub *p, bool enable, const char *reason);
/* Tell the backends the maintenance mode, then publish. */
void hr_pub_maint_apply(struct hr_pub *p);

/* Reload: hold publishing while the new check set is built. */
void hr_pub_hold_begin(struct hr_pub *p);
/* A new check whose first result the hold waits for (name copied). */
void hr_pub_hold_add(struct hr_pub *p, const char *name);
/* The new set is complete: end the hold when every held check is known,
 * else at the latest after wait seconds. */
void hr_pub_hold_settle(struct hr_pub *p, double wait);

#endif
