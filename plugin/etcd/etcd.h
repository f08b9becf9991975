/*
 * etcd.h - the etcd v3 registry backend (JSON gateway over libcurl).
 *
 * Each instance keeps, while the aggregate status is one of
 * register_when, one key "<prefix><service>/<host:port>" under a lease in
 * the gRPC naming-resolver format. Every instance on the same loop and
 * http with the same connection settings shares one lease (etcd_lease.h):
 * one grant and one keepalive stream per agent, however many services.
 * See docs/etcd.md.
 */
#ifndef HR_ETCD_H
#define HR_ETCD_H

#include "healthreg/registry.h"

/* The backend's only exported symbol; name "etcd". */
extern const struct hr_registry_ops hr_registry_etcd;

struct hr_etcd_lease;
/* The shared lease an etcd backend instance is attached to (etcd_lease.h;
 * borrowed), for tests. */
const struct hr_etcd_lease *hr_etcd_lease_of(const struct hr_registry *r);

#endif
