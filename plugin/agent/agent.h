/*
 * agent.h - the healthreg agent: an aggregator on a private libev loop
 * (ev_loop_new: the default loop would reap every child itself) plus the
 * configured registry backends, the local API and signal handling.
 *
 * The parts, each with its lifetime rules in its header: publish.h (when
 * the backends hear what), bset.h (the backends), reload.h (the configs
 * and make-before-break reload), state.h (the maintenance state file),
 * once.h (`healthreg check`).
 */
#ifndef HR_AGENT_H
#define HR_AGENT_H

#include "healthreg/config.h"

/* Exit codes (sysexits / Nagios). */
#define HR_EXIT_OK 0
#define HR_EXIT_WARNING 1
#define HR_EXIT_CRITICAL 2
#define HR_EXIT_USAGE 64
#define HR_EXIT_UNAVAILABLE 69
#define HR_EXIT_SOFTWARE 70
#define HR_EXIT_CONFIG 78

/**
 * `healthreg run`: runs until SIGTERM/SIGINT; SIGHUP reloads path. Takes
 * ownership of cfg (freed before it returns), which comes from
 * hr_agent_load_config(path, HR_LOAD_RUN, ...) (preflight.h). Returns an
 * exit code.
 */
int hr_agent_run(const char *path, struct hr_config *cfg);

#endif
