/*
 * backends.c - the registry backends compiled into this agent.
 */
#include <stddef.h>

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
