/*
 * publish.h - when and what the registry backends are told: nothing until
 * the first aggregate is known (readiness, with a timeout), nothing new
 * while a reload's new checks have no result yet (the hold, with a
 * deadline that every reload's new checks extend), and, in maintenance,
 * "critical: maintenance: <reason>" to backends that have no maintenance
 * mode of their own (the maintenance gate).
 *
 * During a hold the registries keep hearing the last published state:
 * backends a reload created are told it at once (hr_pub_backends_replaced)
 * so that the registration never lapses between the old backends and the
 * new. When the hold ends, checks still without a first result count as
 * the aggregator counts them (hr_agg_replace_check(): a changed check as
 * before the reload, a new one not at all), never as critical for that.
 *
 * Lifetimes: struct hr_pub is a value embedded by the agent. It borrows
 * the loop, the aggregator and the backend set (all outlive it) and owns
 * the maintenance reason, the held check names and the last published
 * summary (copies). It keeps no pointer into a config, so a reload may
 * free the old config at any time. Nothing here frees a check or a
 * backend.
 */
#ifndef HR_AGENT_PUBLISH_H
#define HR_AGENT_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "bset.h"
#include "healthreg/aggregator.h"
#include "healthreg/config.h"
#include "healthreg/journal.h"

struct hr_pub {
	struct ev_loop *loop;  /* borrowed */
	struct hr_agg *agg;    /* borrowed */
	struct hr_bset *bset;  /* borrowed */
	const char *service;   /* borrowed: the unit's service id (unit.h) */
	/* Called once when ready (NULL: tell systemd READY=1 itself); the
	 * agent tells systemd once every service is ready. */
	void (*on_ready)(void *payload);
	void *ready_payload;
	bool ready;            /* first aggregate known and published */
	bool hold;             /* reload: new checks have no result yet */
	bool reloading;        /* the new check set is being built */
	bool stopping;         /* shutting down: publish nothing more */
	bool maint;
	char *maint_reason;    /* owned; NULL = none given */
	char **held;           /* owned copies: names of the new checks */
	size_t n_held;
	double hold_until;     /* ev_now() time: the latest first result */
	bool told;             /* something was published */
	enum hr_status told_status;   /* the last published aggregate */
	char told_output[1024];
	struct hr_journal *journal; /* borrowed: the agent's; may be NULL */
	bool have_changed;     /* the last check status change: */
	char changed[128];     /* its check (a copy), */
	enum hr_status changed_from, changed_to;
	ev_timer ready_timer;  /* publish even if some check never answers */
	ev_timer hold_timer;
};

/* Cannot fail. */
void hr_pub_init(struct hr_pub *p, struct ev_loop *loop, struct hr_agg *agg,
		 struct hr_bset *bset);
/* Stop the timers, free the reason and the held names. */
void hr_pub_dispose(struct hr_pub *p);

/* How long the first result of a check may take once it is added. */
double hr_pub_check_wait(const struct hr_check_spec *spec);
/* How long the first results of cfg's checks may take. */
double hr_pub_first_result_wait(const struct hr_service_conf *cfg);

/* The checks have started: arm the readiness timeout (wait seconds); ready
 * at once when every check is already known. */
void hr_pub_start(struct hr_pub *p, double wait);

/* Every aggregator event (the agent's listener forwards them). */
void hr_pub_event(struct hr_pub *p, const struct hr_agg_event *ev);

/* Tell every backend the aggregate, unless not ready, held or stopping. */
void hr_pub_publish(struct hr_pub *p);
/* The backend set was replaced: tell the new backends the last published
 * aggregate at once (held or not), if anything was published. */
void hr_pub_backends_replaced(struct hr_pub *p);

/* Set maintenance (reason copied; a reason's length is the caller's to
 * check: HR_MAINT_REASON_MAX, state.h). No log line: the agent logs
 * maintenance_enabled/disabled once for all its services. Tells nobody:
 * see below. Returns 0 or -ENOMEM (nothing changed then). */
int hr_pub_maint_copy(struct hr_pub *p, bool enable, const char *reason);
/* Tell the backends the maintenance mode, then publish. */
void hr_pub_maint_apply(struct hr_pub *p);

/* Journal the agent's decision d (hold, maintenance) once per backend,
 * with why (one line). */
void hr_pub_decide(struct hr_pub *p, enum hr_decision d, const char *why);
/* For the journal's context callback: e's aggregate, maintenance and the
 * checks that caused it (the checks not passing, then the last check
 * whose status changed). */
void hr_pub_journal_fill(const struct hr_pub *p, struct hr_journal_entry *e);

/* Reload: hold publishing while the new check set is built. A reload
 * during a hold joins it. */
void hr_pub_hold_begin(struct hr_pub *p);
/* A new or changed check whose first result the hold waits for (name
 * copied); the hold lasts at least wait seconds from now unless every
 * held check has its first result. */
void hr_pub_hold_add(struct hr_pub *p, const char *name, double wait);
/* The new set is complete: end the hold when every held check has its
 * first result, else at the latest deadline of any check held. */
void hr_pub_hold_settle(struct hr_pub *p);

#endif
