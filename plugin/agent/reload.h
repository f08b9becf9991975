/*
 * reload.h - apply a new config to the running agent, make-before-break:
 * unchanged checks keep their state, removed checks stop, new and changed
 * checks start in place (hr_agg_replace_check: a changed check counts as
 * before, a new one not at all, until its first result), and the
 * registries hear nothing new until the new checks have a first result
 * (publish.h's hold). The backends are rebuilt only when the service or
 * the "registry" section changed, and the new ones are told the last
 * published aggregate at once.
 *
 * Lifetimes: struct hr_agent_cfgs owns the running config, cur. Nothing
 * borrows from it across a reload: the aggregator copies its check specs
 * and the backends copy what they keep at create (registry.h), so a reload
 * frees the old config as soon as the new one is running, and backends
 * that are retiring (a renamed instance deregistering) need none of it.
 * msg is the caller's buffer.
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
};

/* Free the running config. NULL-safe member. */
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
