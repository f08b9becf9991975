/*
 * registry.h - the registry backend interface. A backend (Consul, etcd) is
 * a versioned const table of functions compiled into the agent. The agent
 * creates one instance per configured backend; each fails and recovers on
 * its own. Every function is called on the agent's loop and must not block.
 * The work backends share (requests, backoff, grace period, shutdown
 * deadline, done() delivery) lives in healthreg/regcore.h.
 *
 * Lifecycle: validate (at config load) -> preflight (`healthreg
 * validate`, the start of `run`, every reload) -> create -> apply (on every
 * aggregate change; the first apply comes once the agent is ready and any
 * reload hold has ended, not right after create) / maintenance (any time,
 * also before the first apply) -> shutdown (async deregistration, bounded
 * by the agent's shutdown timeout) -> destroy.
 *
 * Lifetime rules:
 *  - create() copies what it keeps: the service spec (env->service) and
 *    every string it derives from conf. Once create returns, nothing in
 *    the backend points into the agent's struct hr_config or the cJSON
 *    tree, which a reload may free at once.
 *  - Borrowed for the backend's whole life, until destroy returns:
 *    env->loop, env->http and env->stats (NULL or the agent's counters;
 *    the backend records into them, the agent owns them).
 *  - apply/maintenance/shutdown/destroy are called by the agent, never
 *    from inside a backend callback, and never after destroy. apply and
 *    maintenance after shutdown are ignored.
 *  - done() runs exactly once per shutdown, on a later loop iteration than
 *    the one in which shutdown() was called or the last request finished
 *    (never from inside shutdown() or a transfer callback), when the
 *    deregistration finished, failed for good or hit its deadline. The
 *    backend touches nothing after calling it, so done() may destroy it.
 *  - destroy() may come at any time (before done(), too: the agent's own
 *    timeout); it cancels the transfer in flight, stops every watcher and
 *    never calls done(). After destroy the caller may free env->stats.
 */
#ifndef HEALTHREG_REGISTRY_H
#define HEALTHREG_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "healthreg/config.h"
#include "healthreg/error.h"
#include "healthreg/http.h"
#include "healthreg/status.h"

#define HR_REGISTRY_ABI 2

struct hr_registry; /* a backend's own instance type */
struct hr_journal;  /* healthreg/journal.h */

/* What the registry holds for this instance, as the backend last saw it
 * (told by the backend through hr_regcore_state()). */
enum hr_registry_state {
	HR_REGISTRY_PENDING,      /* nothing written yet */
	HR_REGISTRY_REGISTERED,   /* the instance is in the registry */
	HR_REGISTRY_DEREGISTERED, /* removed (or never added: not wanted) */
	HR_REGISTRY_MAINTENANCE,  /* registered, in the registry's own
				     maintenance mode */
};

/** "pending", "registered", "deregistered", "maintenance". */
const char *hr_registry_state_name(enum hr_registry_state s);

/*
 * Counters and state a backend keeps for the agent (status, /v1/health,
 * metrics): one call of hr_registry_stats_record() per registry request
 * answered (ok) or failed; the rest is kept by regcore.c.
 */
struct hr_registry_stats {
	uint64_t writes;       /* requests that succeeded */
	uint64_t errors;       /* requests that failed (transport, 4xx, 5xx) */
	double last_success;   /* wall-clock time of the last success, 0 = never */
	/* Added for issue 13; the agent zeroes the block and sets name. */
	const char *name;      /* the backend, for log lines; may be NULL */
	enum hr_registry_state state;
	uint32_t failures;     /* consecutive failed requests; 0 = up */
	bool unreachable;      /* the last failure had no answer (a transport
				  error, a timeout, a 5xx): not a refusal */
	double failing_since;  /* wall clock of the first of those failures */
	char last_error[256];  /* the last failure, one line ("" = none) */
	double last_error_at;  /* wall clock of it, 0 = never */
	/* Added for issue 14. */
	bool dry_run;          /* "dry_run": decisions only, no requests;
				  state is what would be registered */
	/* The fleet floor: kept registered although critical, and how
	 * many times that began. */
	bool floor_kept;
	uint64_t floor_kept_total;
};

/** NULL-safe. */
void hr_registry_stats_record(struct hr_registry_stats *s, bool ok);

/*
 * What a backend gets from the agent. loop, http and stats are borrowed
 * and outlive the backend; service is borrowed for create() only (the
 * backend copies it). Fields added later go at the end; zero means
 * "default".
 */
struct hr_registry_env {
	struct ev_loop *loop;
	struct hr_http *http;
	const struct hr_service_spec *service;
	int64_t shutdown_timeout_ms;
	struct hr_registry_stats *stats; /* may be NULL */
	/* Added for issue 14: the agent's decision journal, borrowed for the
	 * backend's whole life (regcore records into it); may be NULL. */
	struct hr_journal *journal;
};

/* Called once when shutdown() has finished (or given up), on a fresh
 * loop iteration (see the lifetime rules above). */
typedef void (*hr_registry_done_cb)(void *payload);

struct hr_registry_ops {
	int abi;           /* HR_REGISTRY_ABI */
	const char *name;  /* the key under "registry" in the config */

	/* Pure: report every problem of conf under path ("registry.etcd"). */
	void (*validate)(const cJSON *conf, const char *path,
			 struct hr_diag *diag);

	/*
	 * Everything else create() would refuse, on a conf validate()
	 * accepted: rules that need the service (etcd's key needs
	 * service.port) and the files conf names (secrets read, checked and
	 * wiped at once; TLS files readable). Each problem is one diag error
	 * under path. create() runs the same checks (the same functions), so
	 * `healthreg validate` and `healthreg run` give one verdict. Reads
	 * files, nothing else; conf and service are borrowed for the call.
	 * May be NULL (nothing beyond validate).
	 */
	void (*preflight)(const cJSON *conf, const char *path,
			  const struct hr_service_spec *service,
			  struct hr_diag *diag);

	/* conf and env->service are borrowed for the call only: copy what
	 * is kept. On failure *out is NULL and err says why. */
	int (*create)(struct hr_registry **out, const cJSON *conf,
		      const struct hr_registry_env *env, struct hr_err *err);

	/*
	 * The aggregate changed (or is first known). output is the stable
	 * summary. The backend decides what to write, and when.
	 */
	void (*apply)(struct hr_registry *r, enum hr_status status,
		      const char *output);

	/* Maintenance mode on/off with an operator's reason. May be NULL. */
	void (*maintenance)(struct hr_registry *r, bool enable,
			    const char *reason);

	/*
	 * Deregister and stop all activity; call done once, on a later loop
	 * iteration (never before returning). A second call is ignored. The
	 * agent bounds it with its shutdown timeout and then calls destroy
	 * regardless.
	 */
	void (*shutdown)(struct hr_registry *r, hr_registry_done_cb done,
			 void *payload);

	/* Free everything, cancelling transfers in flight. NULL-safe. */
	void (*destroy)(struct hr_registry *r);

	/* Pure, may be NULL: report what this registry would refuse in the
	 * service section (svc, parsed, under path "service"). */
	void (*validate_service)(const struct hr_service_spec *svc,
				 const char *path, struct hr_diag *diag);
};

#endif
