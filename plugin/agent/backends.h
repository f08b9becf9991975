/*
 * backends.h - the NULL-terminated list of compiled-in registry backends
 * (static const tables; nothing here is allocated or freed).
 */
#ifndef HR_AGENT_BACKENDS_H
#define HR_AGENT_BACKENDS_H

#include <stddef.h>

#include "healthreg/config.h"
#include "healthreg/registry.h"

extern const struct hr_registry_ops *const hr_registries[];

/*
 * Fill vals (room for max) with the name and validator of every compiled-in
 * backend, for hr_config_load(). Returns how many were written; the entries
 * point at the static tables.
 */
size_t hr_backends_validators(struct hr_config_backend *vals, size_t max);

#endif
