/*
 * once.h - `healthreg check`: run every check of a config once, print a
 * table or JSON, and exit by the aggregate.
 *
 * Lifetimes: cfg is borrowed for the call (the aggregator copies the
 * specs); the aggregator and the loop's watchers are gone on return. The
 * evaluate callback prints from the aggregator's borrowed check infos and
 * frees nothing.
 */
#ifndef HR_AGENT_ONCE_H
#define HR_AGENT_ONCE_H

#include "healthreg/config.h"

/** Exit HR_EXIT_OK / WARNING / CRITICAL by the aggregate, or SOFTWARE. */
int hr_agent_check_once(const struct hr_config *cfg, int json);

#endif
