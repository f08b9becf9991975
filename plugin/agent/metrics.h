/*
 * metrics.h - Prometheus text exposition of the agent's state: per check
 * status, runs by result, duration histogram, last run; each service's
 * aggregate; registry writes and errors by backend; build info. Every
 * per-check, per-service and registry series has a service="<id>" label.
 */
#ifndef HR_METRICS_H
#define HR_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "healthreg/aggregator.h"
#include "healthreg/registry.h"

struct hr_metrics;

int hr_metrics_new(struct hr_metrics **out);
void hr_metrics_free(struct hr_metrics *m);

/** Record one finished run of check name of service (its id)
 * (HR_EVENT_CHECK_RESULT). */
void hr_metrics_observe(struct hr_metrics *m, const char *service,
			const char *name, double duration_ms);

/* One backend's counters, borrowed for the render call only (the agent
 * points into each backend's record, see bset.h). */
struct hr_metrics_backend {
	const char *name;
	const struct hr_registry_stats *stats;
};

/* One service, borrowed for the render call only. */
struct hr_metrics_service {
	const char *id;
	const struct hr_agg *agg;
	const struct hr_metrics_backend *backends;
	size_t n_backends;
	bool maintenance; /* the agent's or its own */
};

/**
 * Render everything as Prometheus text format 0.0.4 (maintenance: the
 * agent's, for healthreg_maintenance). Returns a malloc'ed
 * NUL-terminated string (caller frees) or NULL on allocation failure.
 */
char *hr_metrics_render(const struct hr_metrics *m,
			const struct hr_metrics_service *services,
			size_t n_services, bool maintenance);

#endif
