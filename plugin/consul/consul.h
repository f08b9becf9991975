/*
 * consul.h - the Consul registry backend: registers the service with one
 * TTL check on the local Consul agent and keeps that check updated with
 * the aggregate status. See docs/consul.md.
 */
#ifndef HR_CONSUL_H
#define HR_CONSUL_H

#include "healthreg/registry.h"

/* The backend's only public symbol; listed in plugin/agent/backends.c. */
extern const struct hr_registry_ops hr_registry_consul;

#endif
