/*
 * state.h - the maintenance state file: {"maintenance": {"enabled": bool,
 * "reason": "..."}}, written atomically (tmp file, fsync, rename) so that
 * maintenance survives a restart. Plain file I/O; nothing kept between
 * calls. Failures are logged here (state_save_failed, state_unreadable).
 */
#ifndef HR_AGENT_STATE_H
#define HR_AGENT_STATE_H

#include <stdbool.h>

#include "healthreg/config.h"

/*
 * agent.state_file, else $STATE_DIRECTORY/<service id>.state (systemd's
 * StateDirectory=), else /var/lib/healthreg/<service id>.state. malloc'ed
 * (caller frees), NULL when out of memory.
 */
char *hr_state_path(const struct hr_config *cfg);

/* Write the state; 0 or -errno (logged). reason may be NULL (""). */
int hr_state_save(const char *path, bool enabled, const char *reason);

/*
 * Read the state. Returns 1 with *reason (malloc'ed, caller frees) when
 * maintenance was enabled (logs maintenance_restored), 0 when it was not
 * or there is no file, -ENOMEM. An unparsable file is logged and read as
 * "not enabled".
 */
int hr_state_load(const char *path, char **reason);

#endif
