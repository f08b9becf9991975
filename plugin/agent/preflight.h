/*
 * preflight.h - loading a config the way `healthreg run` starts it. One
 * path for `validate`, `run` and reload: the config with every
 * backend's validator, then everything run would refuse at start (each
 * backend's preflight: etcd's key needs service.port, secret and TLS
 * files; the API address and token file; agent.user). So what validate
 * accepts, run starts, and a unit's ExecStartPre=validate means it.
 *
 * Lifetimes: *out is the caller's (hr_config_free); diag is the caller's;
 * secrets read to check them are wiped before the call returns.
 */
#ifndef HR_AGENT_PREFLIGHT_H
#define HR_AGENT_PREFLIGHT_H

#include <pwd.h>

#include "healthreg/config.h"
#include "healthreg/error.h"

/* What to check beyond the config itself. */
#define HR_LOAD_BACKENDS 0x1u /* every configured backend's preflight */
#define HR_LOAD_AGENT 0x2u    /* api_listen, api_token_file, user */
#define HR_LOAD_RUN (HR_LOAD_BACKENDS | HR_LOAD_AGENT)

/**
 * Parse path against every compiled-in backend, then, when it parses,
 * the checks in what. Every problem goes to diag. Returns 0 and *out;
 * -EINVAL (problems of the config, *out NULL); or another -errno when
 * the file itself cannot be read (one line in diag: missing, a
 * directory, permission denied).
 */
int hr_preflight_load(const char *path, unsigned what,
		      struct hr_config **out, struct hr_diag *diag);

/** The checks in what on a parsed config; 0 or -EINVAL (diag). */
int hr_preflight_run(const struct hr_config *cfg, unsigned what,
		     struct hr_diag *diag);

/** The backends' preflight of service k of cfg (its merged registry
 * section; paths "registry.<b>", or "services[k].registry.<b>" when the
 * config has several services). Problems go to diag. */
void hr_preflight_service(const struct hr_config *cfg, size_t k,
			  struct hr_diag *diag);

/**
 * hr_preflight_load() printing every warning and error to stderr
 * ("healthreg: error: PATH: problem", then the count), or one line when
 * the file cannot be read. Returns 0 and *out, or HR_EXIT_CONFIG.
 */
int hr_agent_load_config(const char *path, unsigned what,
			 struct hr_config **out);

/**
 * agent.user: the user exists and this process can become it (it is root,
 * or already that user). 0 with *pw (getpwnam's static storage), or
 * -ENOENT / -EPERM / -errno with "agent.user: ..." in err.
 */
int hr_preflight_user(const char *user, const struct passwd **pw,
		      struct hr_err *err);

#endif
