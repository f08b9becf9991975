/*
 * agent.h - the healthreg agent: an aggregator on the default libev loop
 * plus the configured registry backends, with signal handling.
 */
#ifndef HR_AGENT_H
#define HR_AGENT_H

#include "healthreg/config.h"

/* Exit codes (sysexits / Nagios). */
#define HR_EXIT_OK 0
#define HR_EXIT_WARNING 1
#define HR_EXIT_CRITICAL 2
#define HR_EXIT_USAGE 64
#define HR_EXIT_SOFTWARE 70
#define HR_EXIT_CONFIG 78

/**
 * Load and validate path against every compiled-in backend; print every
 * warning and error to stderr. Returns 0 and *out, or HR_EXIT_CONFIG.
 */
int hr_agent_load_config(const char *path, struct hr_config **out);

/**
 * `healthreg run`: runs until SIGTERM/SIGINT; SIGHUP reloads path. Takes
 * ownership of cfg. Returns an exit code.
 */
int hr_agent_run(const char *path, struct hr_config *cfg);

/** `healthreg check`: every check once; prints; exit 0/1/2. */
int hr_agent_check_once(const struct hr_config *cfg, int json);

#endif
