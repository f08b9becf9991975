/*
 * reload.h - apply a new config to the running agent, service by service
 * (diffed by service id), make-before-break:
 * - a service whose spec, checks, groups and registry section are all
 *   unchanged is untouched (its registrations never rewritten);
 * - a changed service: unchanged checks keep their state, removed checks
 *   stop, new and changed checks start in place (hr_agg_replace_check: a
 *   changed check counts as before, a new one not at all, until its first
 *   result), and its registries hear nothing new until the new checks
 *   have a first result (publish.h's hold). Its backends are rebuilt only
 *   when its service spec or its merged "registry" section changed, and
 *   the new ones are told the last published aggregate at once;
 * - a removed service is shut down (deregistered within
 *   shutdown_timeout) and freed after;
 * - an added service starts as at start: it registers after its first
 *   results (its own readiness).
 * A reload that fails changes nothing: the file, a backend's preflight,
 * a new service's unit or a changed service's new backends that cannot
 * be made (all are built before any service changes), a service added
 * again, or the one service renamed to an id, while that id's removal is
 * still deregistering.
 *
 * Lifetimes: struct hr_agent_cfgs owns the running config, cur. Nothing
 * borrows from it across a reload but the units' conf, which the reload
 * re-points: the aggregators copy their check specs and the backends copy
 * what they keep at create (registry.h), so a reload frees the old config
 * as soon as the new one is running. msg is the caller's buffer.
 */
#ifndef HR_AGENT_RELOAD_H
#define HR_AGENT_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "healthreg/config.h"
#include "unit.h"

struct hr_agent_cfgs {
	struct hr_config *cur;
};

/* Free the running config. NULL-safe member. */
void hr_agent_cfgs_dispose(struct hr_agent_cfgs *c);

/* What the agent lends a reload (agent.c). */
struct hr_reload_host {
	/* The live unit of service id, or NULL. */
	struct hr_unit *(*find)(void *ctx, const char *id);
	/* A unit for svc, a service of cfg (the new config: its
	 * max_concurrent and shutdown_timeout apply), built (aggregator
	 * with its checks, backends) but not started; NULL (logged) when it
	 * cannot be made. */
	struct hr_unit *(*make)(void *ctx, const struct hr_config *cfg,
				const struct hr_service_conf *svc);
	/* Discard a unit make() built and that never started. */
	void (*discard)(void *ctx, struct hr_unit *u);
	/* Add a made unit to the agent and start it. */
	void (*start)(void *ctx, struct hr_unit *u);
	/* Shut u down (deregistering) and free it afterwards. */
	void (*remove)(void *ctx, struct hr_unit *u);
	/* A unit of service id that a reload removed is still
	 * deregistering: adding the id again now could have its late
	 * deregistration remove the new registration. */
	bool (*leaving)(void *ctx, const char *id);
	bool (*stopping)(void *ctx);
	void *ctx;
};

struct hr_reload {
	const char *path;            /* the config file */
	struct hr_agent_cfgs *cfgs;
	struct hr_reload_host host;
};

/*
 * Re-read rl->path and apply it. Returns 0, or -EINVAL with the problems
 * in msg (len bytes) and the running config kept (logged as
 * reload_failed). Sends RELOADING=1 / READY=1 to systemd.
 */
int hr_reload(const struct hr_reload *rl, char *msg, size_t len);

#endif
