/*
 * metrics.h - Prometheus text exposition of the agent's state: per check
 * status, runs by result, duration histogram, last run; the aggregate;
 * registry writes and errors by backend; build info.
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

/** Record one finished run of check name (HR_EVENT_CHECK_RESULT). */
void hr_metrics_observe(struct hr_metrics *m, const char *name,
			double duration_ms);

/* One backend's counters, borrowed for the render call only (the agent
 * points into each backend's record, see bset.h). */
struct hr_metrics_backend {
	const char *name;
	const struct hr_registry_stats *stats;
};

/**
 * Render everything as Prometheus text format 0.0.4. Returns a malloc'ed
 * NUL-terminated string (caller frees) or NULL on allocation failure.
 */
char *hr_metrics_render(const struct hr_metrics *m, const struct hr_agg *agg,
			bool maintenance,
			const struct hr_metrics_backend *backends,
			size_t n_backends);

#endif
