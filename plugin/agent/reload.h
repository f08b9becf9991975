/*
 * reload.h - apply a new config to the running agent, make-before-break:
 * unchanged checks keep their state, removed checks stop, new and changed
 * checks start, and the registries hear nothing until the new checks have
 * a first result (publish.h's hold). The backends are rebuilt only when
 * the service or the "registry" section changed.
 *
 * Lifetimes (struct hr_agent_cfgs is the one owner of every config):
 * - cur is the running config: the aggregator copies its check specs, so
 *   cur may be replaced and freed at any reload.
 * - reg is the config the current backends were built from; they borrow
 *   reg->service (registry.h), so reg lives until they are destroyed.
 *   Often reg == cur.
 * - A reload that renames the instance retires the old backends, which
 *   still borrow the old reg while they deregister: that config moves to
 *   the graveyard, freed only with the agent.
 * - hr_reload() frees the configs nothing borrows any more before it
 *   returns; msg is the caller's buffer.
 */
#ifndef HR_AGENT_RELOAD_H
#define HR_AGENT_RELOAD_H

#include <stddef.h>

#include <ev.h>

#include "bset.h"
#include "healthreg/aggregator.h"
#include "healthreg/config.h"
#include "publish.h"

struct hr_agent_cfgs {
	struct hr_config *cur;
	struct hr_config *reg;        /* may equal cur */
	struct hr_config **graveyard; /* configs retiring backends borrow */
	size_t n_graveyard;
};

/* Free every config once (cur and reg may be one). NULL-safe members. */
void hr_agent_cfgs_dispose(struct hr_agent_cfgs *c);

/* What a reload works on; all borrowed from the agent. */
struct hr_reload {
	const char *path;            /* the config file */
	struct hr_agg *agg;
	struct hr_pub *pub;
	struct hr_bset *bset;
	struct hr_agent_cfgs *cfgs;
};

/*
 * Re-read rl->path and apply it. Returns 0, or -EINVAL with the problems
 * in msg (len bytes) and the running config kept (logged as
 * reload_failed). Sends RELOADING=1 / READY=1 to systemd.
 */
int hr_reload(const struct hr_reload *rl, char *msg, size_t len);

#endif
