/*
 * metrics.c - per-check duration histograms (a small open-addressing hash
 * by service id and check name) and the Prometheus text rendering.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/util.h"
#include "metrics.h"

static const double buckets_s[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				    0.5,   1,	 2.5,	5,    10 };
#define N_BUCKETS (sizeof(buckets_s) / sizeof(buckets_s[0]))

struct hist {
	char *name; /* "<service id>\x1f<check>"; NULL = empty slot */
	uint64_t bucket[N_BUCKETS]; /* cumulative at render time */
	uint64_t count;
	double sum;
};

struct hr_metrics {
	struct hist *slots;
	size_t cap, used;
};

#define KEY_SEP '\x1f'

static uint64_t hash_more(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* The key of (service, check) without building it. */
static uint64_t hash(const char *svc, const char *name)
{
	uint64_t h = hash_more(1469598103934665603ULL, svc);

	h ^= (unsigned char)KEY_SEP;
	h *= 1099511628211ULL;
	return hash_more(h, name);
}

static bool key_is(const char *key, const char *svc, const char *name)
{
	size_t n = strlen(svc);

	return !strncmp(key, svc, n) && key[n] == KEY_SEP &&
	       !strcmp(key + n + 1, name);
}

int hr_metrics_new(struct hr_metrics **out)
{
	struct hr_metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->cap = 64;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

void hr_metrics_free(struct hr_metrics *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->cap; i++)
		free(m->slots[i].name);
	free(m->slots);
	free(m);
}

static struct hist *lookup(const struct hr_metrics *m, const char *svc,
			   const char *name)
{
	size_t i = (size_t)(hash(svc, name) & (m->cap - 1));

	while (m->slots[i].name) {
		if (key_is(m->slots[i].name, svc, name))
			return &m->slots[i];
		i = (i + 1) & (m->cap - 1);
	}
	return &m->slots[i]; /* the empty slot where it would go */
}

static int grow(struct hr_metrics *m)
{
	struct hist *old = m->slots;
	size_t i, oldcap = m->cap;

	m->slots = calloc(oldcap * 2, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->cap = oldcap * 2;
	for (i = 0; i < oldcap; i++) {
		char *sep;

		if (!old[i].name)
			continue;
		sep = strchr(old[i].name, KEY_SEP);
		*sep = '\0';
		*lookup(m, old[i].name, sep + 1) = old[i];
		*sep = KEY_SEP;
	}
	free(old);
	return 0;
}

void hr_metrics_observe(struct hr_metrics *m, const char *service,
			const char *name, double duration_ms)
{
	struct hist *h;
	double s = duration_ms / 1000.0;
	size_t b;

	if ((m->used + 1) * 2 > m->cap && grow(m))
		return;
	h = lookup(m, service, name);
	if (!h->name) {
		if (asprintf(&h->name, "%s%c%s", service, KEY_SEP, name) < 0) {
			h->name = NULL;
			return;
		}
		m->used++;
	}
	for (b = 0; b < N_BUCKETS; b++) {
		if (s <= buckets_s[b]) {
			h->bucket[b]++;
			break;
		}
	}
	h->count++;
	h->sum += s;
}

/* ---- rendering ---------------------------------------------------------- */

struct sb {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->buf + b->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap + (size_t)n + 1) * 2;
			char *nb = realloc(b->buf, cap);

			if (!nb) {
				b->oom = true;
				return;
			}
			b->buf = nb;
			b->cap = cap;
		}
	}
}

/* Label values: escape backslash, double quote and newline. */
static const char *esc(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 3 < len; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
	return out;
}

static void help(struct sb *b, const char *name, const char *type,
		 const char *text)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static const enum hr_status all_status[] = {
	HR_STATUS_PASSING, HR_STATUS_WARNING, HR_STATUS_CRITICAL,
	HR_STATUS_UNKNOWN,
};

static void render_agent(struct sb *b, const struct hr_metrics_service *sv,
			 size_t n, bool maintenance)
{
	char id[512];
	size_t i, k;

	help(b, "healthreg_build_info", "gauge", "Build information.");
	sb_printf(b, "healthreg_build_info{version=\"%s\"} 1\n", HR_VERSION);
	help(b, "healthreg_services", "gauge", "Services this agent runs.");
	sb_printf(b, "healthreg_services %zu\n", n);
	help(b, "healthreg_status", "gauge",
	     "The aggregate status of each service (1 for the current one; critical while in maintenance).");
	for (i = 0; i < n; i++) {
		enum hr_status st = hr_agg_status(sv[i].agg);

		esc(sv[i].id, id, sizeof(id));
		for (k = 0; k < 3; k++)
			sb_printf(b, "healthreg_status{service=\"%s\",status=\"%s\"} %d\n",
				  id, hr_status_name(all_status[k]),
				  sv[i].maintenance ? all_status[k] == HR_STATUS_CRITICAL
						    : st == all_status[k] ||
							(all_status[k] == HR_STATUS_CRITICAL &&
							 st == HR_STATUS_UNKNOWN));
	}
	help(b, "healthreg_maintenance", "gauge", "1 while in maintenance mode.");
	sb_printf(b, "healthreg_maintenance %d\n", maintenance ? 1 : 0);
	help(b, "healthreg_checks", "gauge", "Configured checks of each service.");
	for (i = 0; i < n; i++)
		sb_printf(b, "healthreg_checks{service=\"%s\"} %zu\n",
			  esc(sv[i].id, id, sizeof(id)),
			  hr_agg_n_checks(sv[i].agg));
}

static void render_status(struct sb *b, const struct hr_metrics_service *sv,
			  size_t n)
{
	struct hr_check_info info;
	char name[512], id[512];
	size_t i, k, s;

	help(b, "healthreg_check_status", "gauge",
	     "Status of each check after thresholds (1 for the current one).");
	for (s = 0; s < n; s++) {
		esc(sv[s].id, id, sizeof(id));
		for (i = 0; i < hr_agg_n_checks(sv[s].agg); i++) {
			hr_agg_check_at(sv[s].agg, i, &info);
			esc(info.name, name, sizeof(name));
			for (k = 0; k < 4; k++)
				sb_printf(b,
					  "healthreg_check_status{check=\"%s\",kind=\"%s\",service=\"%s\",status=\"%s\"} %d\n",
					  name, hr_check_kind_name(info.kind), id,
					  hr_status_name(all_status[k]),
					  info.status == all_status[k]);
		}
	}
}

static void render_runs(struct sb *b, const struct hr_metrics_service *sv,
			size_t n)
{
	struct hr_check_info info;
	char name[512], id[512];
	size_t i, s;

	help(b, "healthreg_check_runs_total", "counter",
	     "Finished runs of each check by raw result.");
	for (s = 0; s < n; s++) {
		esc(sv[s].id, id, sizeof(id));
		for (i = 0; i < hr_agg_n_checks(sv[s].agg); i++) {
			hr_agg_check_at(sv[s].agg, i, &info);
			esc(info.name, name, sizeof(name));
			sb_printf(b, "healthreg_check_runs_total{check=\"%s\",result=\"passing\",service=\"%s\"} %llu\n",
				  name, id, (unsigned long long)info.runs_passing);
			sb_printf(b, "healthreg_check_runs_total{check=\"%s\",result=\"warning\",service=\"%s\"} %llu\n",
				  name, id, (unsigned long long)info.runs_warning);
			sb_printf(b, "healthreg_check_runs_total{check=\"%s\",result=\"critical\",service=\"%s\"} %llu\n",
				  name, id, (unsigned long long)info.runs_critical);
		}
	}
	help(b, "healthreg_check_consecutive_failures", "gauge",
	     "Critical results in a row for each check.");
	for (s = 0; s < n; s++) {
		esc(sv[s].id, id, sizeof(id));
		for (i = 0; i < hr_agg_n_checks(sv[s].agg); i++) {
			hr_agg_check_at(sv[s].agg, i, &info);
			sb_printf(b, "healthreg_check_consecutive_failures{check=\"%s\",service=\"%s\"} %u\n",
				  esc(info.name, name, sizeof(name)), id,
				  info.consecutive_failures);
		}
	}
	help(b, "healthreg_check_last_run_timestamp_seconds", "gauge",
	     "Wall-clock time of each check's last result (0 = never).");
	for (s = 0; s < n; s++) {
		esc(sv[s].id, id, sizeof(id));
		for (i = 0; i < hr_agg_n_checks(sv[s].agg); i++) {
			hr_agg_check_at(sv[s].agg, i, &info);
			sb_printf(b, "healthreg_check_last_run_timestamp_seconds{check=\"%s\",service=\"%s\"} %.3f\n",
				  esc(info.name, name, sizeof(name)), id,
				  info.last_run);
		}
	}
}

static void render_durations(struct sb *b, const struct hr_metrics *m,
			     const struct hr_metrics_service *sv, size_t n)
{
	struct hr_check_info info;
	char name[512], id[512];
	size_t i, k, s;

	help(b, "healthreg_check_duration_seconds", "histogram",
	     "Duration of check runs.");
	for (s = 0; s < n; s++) {
		esc(sv[s].id, id, sizeof(id));
		for (i = 0; i < hr_agg_n_checks(sv[s].agg); i++) {
			const struct hist *h;
			uint64_t cum = 0;

			hr_agg_check_at(sv[s].agg, i, &info);
			h = lookup(m, sv[s].id, info.name);
			esc(info.name, name, sizeof(name));
			for (k = 0; k < N_BUCKETS; k++) {
				cum += h->name ? h->bucket[k] : 0;
				sb_printf(b, "healthreg_check_duration_seconds_bucket{check=\"%s\",le=\"%g\",service=\"%s\"} %llu\n",
					  name, buckets_s[k], id,
					  (unsigned long long)cum);
			}
			sb_printf(b, "healthreg_check_duration_seconds_bucket{check=\"%s\",le=\"+Inf\",service=\"%s\"} %llu\n",
				  name, id,
				  (unsigned long long)(h->name ? h->count : 0));
			sb_printf(b, "healthreg_check_duration_seconds_sum{check=\"%s\",service=\"%s\"} %.6f\n",
				  name, id, h->name ? h->sum : 0.0);
			sb_printf(b, "healthreg_check_duration_seconds_count{check=\"%s\",service=\"%s\"} %llu\n",
				  name, id,
				  (unsigned long long)(h->name ? h->count : 0));
		}
	}
}

/* One line per backend of every service: name{backend,service} value. */
#define EACH_BACKEND(s, i, sv, n) \
	for (s = 0; s < (n); s++) \
		for (i = 0; i < (sv)[s].n_backends; i++)

static void render_registry(struct sb *b, const struct hr_metrics_service *sv,
			    size_t n)
{
	double now = hr_wall_now();
	char id[512];
	size_t i, s;
#define BK(s, i) (&sv[s].backends[i])
#define ID(s) esc(sv[s].id, id, sizeof(id))

	help(b, "healthreg_registry_writes_total", "counter",
	     "Registry requests that succeeded, by backend and service.");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_registry_writes_total{backend=\"%s\",service=\"%s\"} %llu\n",
			  BK(s, i)->name, ID(s),
			  (unsigned long long)BK(s, i)->stats->writes);
	help(b, "healthreg_registry_errors_total", "counter",
	     "Registry requests that failed, by backend and service.");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_registry_errors_total{backend=\"%s\",service=\"%s\"} %llu\n",
			  BK(s, i)->name, ID(s),
			  (unsigned long long)BK(s, i)->stats->errors);
	help(b, "healthreg_fleet_floor_kept", "gauge",
	     "1 while the fleet floor keeps this critical instance registered, by backend and service.");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_fleet_floor_kept{backend=\"%s\",service=\"%s\"} %d\n",
			  BK(s, i)->name, ID(s),
			  BK(s, i)->stats->floor_kept ? 1 : 0);
	help(b, "healthreg_fleet_floor_kept_total", "counter",
	     "Times the fleet floor kept a critical instance registered, by backend and service.");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_fleet_floor_kept_total{backend=\"%s\",service=\"%s\"} %llu\n",
			  BK(s, i)->name, ID(s),
			  (unsigned long long)BK(s, i)->stats->floor_kept_total);
	help(b, "healthreg_registry_seconds_since_last_success", "gauge",
	     "Seconds since the last successful registry request (+Inf = never).");
	EACH_BACKEND(s, i, sv, n) {
		double t = BK(s, i)->stats->last_success;

		if (t > 0)
			sb_printf(b, "healthreg_registry_seconds_since_last_success{backend=\"%s\",service=\"%s\"} %.3f\n",
				  BK(s, i)->name, ID(s),
				  now - t > 0 ? now - t : 0);
		else
			sb_printf(b, "healthreg_registry_seconds_since_last_success{backend=\"%s\",service=\"%s\"} +Inf\n",
				  BK(s, i)->name, ID(s));
	}
	help(b, "healthreg_registry_up", "gauge",
	     "1 while the registry's requests succeed, 0 while they fail.");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_registry_up{backend=\"%s\",service=\"%s\"} %d\n",
			  BK(s, i)->name, ID(s), !BK(s, i)->stats->failures);
	help(b, "healthreg_registry_consecutive_failures", "gauge",
	     "Registry requests failed in a row (0 while up).");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_registry_consecutive_failures{backend=\"%s\",service=\"%s\"} %lu\n",
			  BK(s, i)->name, ID(s),
			  (unsigned long)BK(s, i)->stats->failures);
	help(b, "healthreg_registry_dry_run", "gauge",
	     "1 for a registry with \"dry_run\": true (decisions journaled, nothing sent).");
	EACH_BACKEND(s, i, sv, n)
		sb_printf(b, "healthreg_registry_dry_run{backend=\"%s\",service=\"%s\"} %d\n",
			  BK(s, i)->name, ID(s), BK(s, i)->stats->dry_run);
	help(b, "healthreg_registry_state", "gauge",
	     "What the registry holds for the instance, as last seen: 1 for the current state.");
	EACH_BACKEND(s, i, sv, n) {
		static const enum hr_registry_state all[] = {
			HR_REGISTRY_PENDING, HR_REGISTRY_REGISTERED,
			HR_REGISTRY_DEREGISTERED, HR_REGISTRY_MAINTENANCE,
		};
		size_t k;

		for (k = 0; k < sizeof(all) / sizeof(all[0]); k++)
			sb_printf(b, "healthreg_registry_state{backend=\"%s\",service=\"%s\",state=\"%s\"} %d\n",
				  BK(s, i)->name, ID(s),
				  hr_registry_state_name(all[k]),
				  BK(s, i)->stats->state == all[k]);
	}
#undef BK
#undef ID
}

char *hr_metrics_render(const struct hr_metrics *m,
			const struct hr_metrics_service *services,
			size_t n_services, bool maintenance)
{
	struct sb b = { NULL, 0, 0, false };

	b.cap = 4096;
	b.buf = malloc(b.cap);
	if (!b.buf)
		return NULL;
	b.buf[0] = '\0';
	render_agent(&b, services, n_services, maintenance);
	render_status(&b, services, n_services);
	render_runs(&b, services, n_services);
	render_durations(&b, m, services, n_services);
	render_registry(&b, services, n_services);
	if (b.oom) {
		free(b.buf);
		return NULL;
	}
	return b.buf;
}
