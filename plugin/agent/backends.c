/*
 * backends.c - the registry backends compiled into this agent.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "backends.h"
#ifdef HR_HAVE_CONSUL
#include "consul.h"
#endif
#ifdef HR_HAVE_ETCD
#include "etcd.h"
#endif

const struct hr_registry_ops *const hr_registries[] = {
#ifdef HR_HAVE_CONSUL
	&hr_registry_consul,
#endif
#ifdef HR_HAVE_ETCD
	&hr_registry_etcd,
#endif
	NULL,
};

size_t hr_backends_validators(struct hr_config_backend *vals, size_t max)
{
	size_t i, n = 0;

	for (i = 0; hr_registries[i] && n < max; i++) {
		vals[n].name = hr_registries[i]->name;
		vals[n].validate = hr_registries[i]->validate;
		vals[n].validate_service = hr_registries[i]->validate_service;
		n++;
	}
	return n;
}
