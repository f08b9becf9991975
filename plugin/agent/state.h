/*
 * state.h - the maintenance state file: {"maintenance": {"enabled": bool,
 * "reason": "..."}} for the agent (every service), and "services": {"<id>":
 * {"enabled": true, "reason": "..."}} for the services in maintenance of
 * their own (absent when none), written atomically (tmp file, fsync, rename) so that
 * maintenance survives a restart. Plain file I/O; nothing kept between
 * calls. Failures are logged here (state_save_failed, state_unreadable,
 * state_reason_truncated).
 *
 * A reason is at most HR_MAINT_REASON_MAX bytes: the API and the CLI
 * refuse longer ones, and the reader reads any file the writer can write
 * (and more: up to HR_STATE_FILE_MAX bytes).
 */
#ifndef HR_AGENT_STATE_H
#define HR_AGENT_STATE_H

#include <stdbool.h>

#include "healthreg/config.h"

/* Bytes in a maintenance reason (before any escaping). */
#define HR_MAINT_REASON_MAX 1024
/* The largest state file read; a reason escaped six-fold fits easily. */
#define HR_STATE_FILE_MAX (1024 * 1024)

/*
 * agent.state_file, else $STATE_DIRECTORY/<first service id>.state (systemd's
 * StateDirectory=), else /var/lib/healthreg/<first service id>.state. malloc'ed
 * (caller frees), NULL when out of memory.
 */
char *hr_state_path(const struct hr_config *cfg);

/* Write the state; 0 or -errno (logged). reason may be NULL (""). */
int hr_state_save(const char *path, bool enabled, const char *reason);

/* A service in maintenance of its own; borrowed for the call. */
struct hr_state_service {
	const char *id;
	const char *reason;
};

/* hr_state_save() with the n services in maintenance of their own. */
int hr_state_save_services(const char *path, bool enabled, const char *reason,
			   const struct hr_state_service *svcs, size_t n);

typedef void (*hr_state_service_cb)(const char *id, const char *reason,
				    void *payload);
/*
 * The services in maintenance of their own, as the file lists them:
 * cb(id, reason) for each (both borrowed for the call; reasons bounded as
 * in hr_state_load(); each logged as maintenance_restored). 0 (also: no
 * file, or no "services", or "services" of another shape: none listed),
 * -ENOMEM or the read's -errno. A file hr_state_load() finds unreadable
 * keeps every service in maintenance already.
 */
int hr_state_load_services(const char *path, hr_state_service_cb cb,
			   void *payload);

/*
 * Read the state. Returns 1 with *reason (malloc'ed, caller frees) when
 * maintenance was enabled (logs maintenance_restored), 0 when it was not
 * or there is no file, -ENOMEM. A reason longer than HR_MAINT_REASON_MAX
 * is cut on a character boundary (logged). A file that exists but cannot
 * be read or understood (too large, not JSON, not this shape, or a
 * "services" that is not an object of objects) keeps the
 * instance in maintenance (1, the reason says why; logged as
 * state_unreadable): the safe default is not to register an instance an
 * operator may have taken out.
 */
int hr_state_load(const char *path, char **reason);

#endif
