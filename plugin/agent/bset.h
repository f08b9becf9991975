/*
 * bset.h - the agent's set of registry backends: built from a config,
 * replaced on reload (the old ones destroyed or retired), told about
 * maintenance, and shut down with a deadline. Publishing the aggregate to
 * them is publish.h's job; this module only owns them.
 *
 * Lifetimes:
 * - struct hr_backend is a heap record owned by the set (or by a struct
 *   hr_bset_fresh until hr_bset_install() takes it). It owns its instance
 *   r and its counters: env.stats points at b->stats inside the record,
 *   which never moves, so the counters live exactly as long as the
 *   instance and nobody re-points them.
 * - A retired backend (a reload renamed the instance) moves, record and
 *   all, to the set's retiring list. It is destroyed on a fresh loop
 *   iteration after its shutdown() called done, or at the deadline; never
 *   from inside the backend's own callback.
 * - Backends copy what they keep from the config at create (registry.h):
 *   the config may be freed as soon as hr_bset_build() returns.
 * - The set is a value embedded by the agent: hr_bset_init() cannot fail,
 *   hr_bset_dispose() destroys every backend, current and retiring.
 */
#ifndef HR_AGENT_BSET_H
#define HR_AGENT_BSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "healthreg/config.h"
#include "healthreg/http.h"
#include "healthreg/registry.h"

#define HR_BSET_MAX 8

struct hr_bset;

struct hr_backend {
	const struct hr_registry_ops *ops;
	struct hr_registry *r;
	struct hr_registry_stats stats; /* the instance's counters */
	struct hr_bset *set;
	bool done;               /* shutdown() has called done */
	ev_timer timer;          /* retiring: deadline, then a 0 s destroy */
	struct hr_backend *next; /* retiring list */
	struct hr_registry_ops dry_ops; /* ops when "dry_run" (regcore.h) */
};

/* Backends built by hr_bset_build(), not yet installed (owned here). */
struct hr_bset_fresh {
	struct hr_backend *v[HR_BSET_MAX];
	size_t n;
};

/* Called once from the loop when the shutdown is over; must not dispose
 * the set (do that after ev_run returns). */
typedef void (*hr_bset_stopped_cb)(void *payload);

struct hr_bset {
	struct ev_loop *loop;      /* borrowed */
	struct hr_http *http;      /* borrowed */
	struct hr_backend *v[HR_BSET_MAX]; /* current, in config order */
	size_t n;
	struct hr_backend *retiring;
	struct hr_journal *journal; /* borrowed (the agent's); NULL: none */
	bool telling;              /* inside the shutdown() calls */
	ev_timer stop_timer;
	hr_bset_stopped_cb stopped;
	void *payload;
};

void hr_bset_init(struct hr_bset *s, struct ev_loop *loop,
		  struct hr_http *http);

/*
 * Create every backend configured in svc->registry (the service's merged
 * section) into *out (logs registry_enabled for each). On failure logs
 * registry_create_failed, destroys what it made and returns -EINVAL
 * (-ENOSPC: too many); *out is then empty. svc is borrowed for the call
 * only.
 */
int hr_bset_build(struct hr_bset *s, const struct hr_service_conf *svc,
		  int64_t shutdown_timeout_ms, struct hr_bset_fresh *out);

/*
 * Replace the current backends by fresh (taken; fresh is empty after).
 * The old ones are destroyed at once, or, with retire_old, shut down
 * (deregistering) within shutdown_timeout_ms and destroyed afterwards.
 */
void hr_bset_install(struct hr_bset *s, struct hr_bset_fresh *fresh,
		     bool retire_old, int64_t shutdown_timeout_ms);

/* Destroy backends that were built but not installed. */
void hr_bset_fresh_dispose(struct hr_bset_fresh *fresh);

/* Tell every backend with a maintenance mode. */
void hr_bset_maintenance(struct hr_bset *s, bool enable, const char *reason);

/*
 * Shut every current backend down (deregistering); cb(payload) once they
 * all called done and every retiring one is gone (done, or its own
 * deadline), or at timeout_ms (logging shutdown_timeout for each one
 * still busy).
 */
void hr_bset_shutdown(struct hr_bset *s, int64_t timeout_ms,
		      hr_bset_stopped_cb cb, void *payload);

/* Stop the timers, destroy every backend. The set is empty afterwards. */
void hr_bset_dispose(struct hr_bset *s);

#endif
