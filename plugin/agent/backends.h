/*
 * backends.h - the NULL-terminated list of compiled-in registry backends.
 */
#ifndef HR_AGENT_BACKENDS_H
#define HR_AGENT_BACKENDS_H

#include "healthreg/registry.h"

extern const struct hr_registry_ops *const hr_registries[];

#endif
