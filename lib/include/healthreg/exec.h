/*
 * exec.h - what an exec ("args") check's child inherits.
 *
 * A child gets an allow-listed environment, never the agent's whole one:
 * the agent's environment holds registry credentials (CONSUL_HTTP_TOKEN,
 * ETCD_PASSWORD) and NOTIFY_SOCKET. The list is process-wide, set by the
 * agent from agent.exec_env at start and at every reload.
 *
 * An entry is a variable name ("PATH"), or a prefix ending in '*'
 * ("LC_*"; "*" alone is every variable). A variable that looks secret
 * (its name contains TOKEN, PASSWORD, PASSWD, SECRET, KEY or CREDENTIAL,
 * case ignored, or starts with CONSUL_HTTP_ or ETCD_, or is NOTIFY_SOCKET)
 * passes only when the list names it exactly, never through a pattern.
 */
#ifndef HEALTHREG_EXEC_H
#define HEALTHREG_EXEC_H

#include <stdbool.h>

/* The list used until hr_exec_env_set() is called, or after NULL. */
#define HR_EXEC_ENV_DEFAULT \
	"PATH", "HOME", "LANG", "LC_*", "TZ", "USER", "LOGNAME", "TMPDIR"

/*
 * Replace the allow-list with a copy of names (NULL-terminated; NULL =
 * the default; an empty list passes nothing). 0, or -ENOMEM with the old
 * list kept. Not thread-safe: call it from the loop's thread.
 */
int hr_exec_env_set(const char *const *names);

/* Whether "NAME=value" (or a bare NAME) passes the current allow-list. */
bool hr_exec_env_allowed(const char *var);

#endif
