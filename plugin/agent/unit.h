/*
 * unit.h - one service of the agent: its aggregator, its publish state
 * (publish.h: readiness, the reload hold, the maintenance gate) and its
 * backend set (bset.h). The units share the loop, the one struct hr_http,
 * the metrics and the journal, all the agent's.
 *
 * Lifetimes: a unit is a heap record owned by the agent (agent.c), which
 * creates one per service of the config and frees it at the end, or,
 * when a reload removed its service, after its backends' done and its
 * retiring ones gone (or the shutdown deadline), on a fresh loop
 * iteration. It owns id (a copy),
 * agg, bset and pub; conf is borrowed from the running config and
 * re-pointed by every reload (NULL once the service was removed).
 */
#ifndef HR_AGENT_UNIT_H
#define HR_AGENT_UNIT_H

#include <stdbool.h>

#include "bset.h"
#include "healthreg/aggregator.h"
#include "healthreg/config.h"
#include "publish.h"

struct hr_unit {
	char *id;                           /* owned: the service id */
	const struct hr_service_conf *conf; /* borrowed; NULL: removed */
	struct hr_agg *agg;                 /* owned */
	struct hr_bset bset;
	struct hr_pub pub;
	bool maint;           /* in maintenance of its own (not the agent's) */
	char *maint_reason;   /* owned; its own maintenance's reason */
	bool stopping;  /* its backends are shutting down */
	bool stopped;   /* ... and are done (or timed out) */
	void *owner;    /* the agent */
};

#endif
