/*
 * once.c - `healthreg check`: every check once on a loop of its own, then
 * a table (or JSON) of the results and the aggregate, with how each row
 * counts: its group and on_failure, each group's quorum, and ttl checks
 * (nobody pushes during `check`) listed but not counted unless they
 * declare an initial status.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "agent.h"
#include "healthreg/aggregator.h"
#include "healthreg/util.h"
#include "once.h"

struct once {
	int json;
	int code;
	const struct hr_service_conf *cfg;
	const char *service; /* its id, shown when there are several */
};

/* A ttl check that `check` does not count: no push can come, and no
 * initial status is declared. */
static bool left_out(const struct hr_check_spec *s)
{
	return s->kind == HR_CHECK_TTL && !s->has_initial_status;
}

/* "critical", "warning", "ignore" (the group's for a member), or for a
 * ttl check without pushes "not counted" (ungrouped) or "no push" (a
 * member of its group that does not pass). */
static const char *counts_as(const struct hr_service_conf *cfg,
			     const struct hr_check_info *info)
{
	int j = hr_service_find_check(cfg, info->name);

	if (j >= 0 && left_out(&cfg->checks[j]))
		return info->group ? "no push" : "not counted";
	return hr_on_failure_name(info->on_failure);
}

/* A group's members passing and warning, and its contribution. */
struct group_count {
	size_t members, passing, warning;
};

static void count_group(struct hr_agg *agg, const char *name,
			struct group_count *gc)
{
	struct hr_check_info info;
	size_t i;

	memset(gc, 0, sizeof(*gc));
	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		hr_agg_check_at(agg, i, &info);
		if (!info.group || strcmp(info.group, name))
			continue;
		gc->members++;
		gc->passing += info.status == HR_STATUS_PASSING;
		gc->warning += info.status == HR_STATUS_WARNING;
	}
}

/* What the group contributes (the rule of lib/aggregate.c). */
static const char *group_result(const struct hr_group_spec *g,
				const struct group_count *gc)
{
	if (gc->passing >= (size_t)g->min_passing)
		return "passing";
	if (g->on_failure == HR_ON_FAILURE_IGNORE)
		return "not met, ignored";
	if (gc->passing + gc->warning >= (size_t)g->min_passing ||
	    g->on_failure == HR_ON_FAILURE_WARNING)
		return "warning";
	return "critical";
}

static void print_json(struct hr_agg *agg, const struct hr_service_conf *cfg,
		       const char *service, enum hr_status st,
		       const char *output)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "checks"), *groups;
	struct hr_check_info info;
	char *s, *clean;
	size_t i;

	if (service)
		cJSON_AddStringToObject(root, "service", service);
	cJSON_AddStringToObject(root, "status", hr_status_name(st));
	cJSON_AddStringToObject(root, "output", output);
	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		cJSON *o = cJSON_CreateObject();

		hr_agg_check_at(agg, i, &info);
		cJSON_AddStringToObject(o, "name", info.name);
		cJSON_AddStringToObject(o, "kind", hr_check_kind_name(info.kind));
		cJSON_AddStringToObject(o, "status", hr_status_name(info.status));
		cJSON_AddNumberToObject(o, "duration_ms", info.duration_ms);
		cJSON_AddStringToObject(o, "output", info.output);
		if (info.group)
			cJSON_AddStringToObject(o, "group", info.group);
		cJSON_AddStringToObject(o, "on_failure",
					hr_on_failure_name(info.on_failure));
		cJSON_AddBoolToObject(o, "counted",
				      strcmp(counts_as(cfg, &info),
					     "not counted") != 0);
		cJSON_AddItemToArray(arr, o);
	}
	groups = cJSON_AddArrayToObject(root, "groups");
	for (i = 0; i < cfg->n_groups; i++) {
		const struct hr_group_spec *g = &cfg->groups[i];
		cJSON *o = cJSON_CreateObject();
		struct group_count gc;

		count_group(agg, g->name, &gc);
		cJSON_AddStringToObject(o, "name", g->name);
		cJSON_AddNumberToObject(o, "min_passing", g->min_passing);
		cJSON_AddNumberToObject(o, "members", (double)gc.members);
		cJSON_AddNumberToObject(o, "passing", (double)gc.passing);
		cJSON_AddStringToObject(o, "on_failure",
					hr_on_failure_name(g->on_failure));
		cJSON_AddStringToObject(o, "result", group_result(g, &gc));
		cJSON_AddItemToArray(groups, o);
	}
	s = cJSON_Print(root);
	/* Check outputs are bytes from targets: valid UTF-8 JSON only. */
	clean = s ? hr_utf8_clean(s) : NULL;
	if (clean || s)
		printf("%s\n", clean ? clean : s);
	free(clean);
	cJSON_free(s);
	cJSON_Delete(root);
}

/* One line of output for the table: first line, at most width bytes. */
static void clip(const char *in, char *out, size_t width)
{
	size_t i;

	for (i = 0; in[i] && in[i] != '\n' && in[i] != '\r' && i < width; i++)
		out[i] = in[i];
	out[i] = '\0';
	if (in[i] && i == width && width > 3)
		memcpy(out + width - 3, "...", 4);
}

static void print_table(struct hr_agg *agg, const struct hr_service_conf *cfg,
			const char *service, enum hr_status st,
			const char *output)
{
	struct hr_check_info info;
	size_t i, w = 4, gw = 5, n_left = 0;
	char line[81];

	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		hr_agg_check_at(agg, i, &info);
		if (strlen(info.name) > w)
			w = strlen(info.name);
		if (info.group && strlen(info.group) > gw)
			gw = strlen(info.group);
	}
	if (w > 40)
		w = 40;
	if (gw > 24)
		gw = 24;
	if (service)
		printf("service %s\n", service);
	printf("%-*s  %-4s  %-8s  %-*s  %-11s  %9s  %s\n", (int)w, "NAME",
	       "KIND", "STATUS", (int)gw, "GROUP", "ON_FAILURE", "DURATION",
	       "OUTPUT");
	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		const char *counts;
		char dur[32];

		hr_agg_check_at(agg, i, &info);
		counts = counts_as(cfg, &info);
		n_left += !strcmp(counts, "not counted");
		snprintf(dur, sizeof(dur), "%.1fms", info.duration_ms);
		clip(info.output, line, 80);
		printf("%-*.*s  %-4s  %-8s  %-*.*s  %-11s  %9s  %s\n", (int)w,
		       (int)w, info.name, hr_check_kind_name(info.kind),
		       hr_status_name(info.status), (int)gw, (int)gw,
		       info.group ? info.group : "-", counts, dur, line);
	}
	if (cfg->n_groups)
		printf("\n");
	for (i = 0; i < cfg->n_groups; i++) {
		const struct hr_group_spec *g = &cfg->groups[i];
		struct group_count gc;

		count_group(agg, g->name, &gc);
		printf("group %s: %zu of %zu passing, min_passing %d, on_failure %s: %s\n",
		       g->name, gc.passing, gc.members, g->min_passing,
		       hr_on_failure_name(g->on_failure), group_result(g, &gc));
	}
	if (n_left)
		printf("\nttl checks get no pushes during `check`: listed, not counted (`healthreg status` counts them)\n");
	printf("\naggregate: %s (%s)\n", hr_status_name(st), output);
}

static void once_cb(struct hr_agg *agg, enum hr_status st, const char *output,
		    void *payload)
{
	struct once *o = payload;

	if (o->json)
		print_json(agg, o->cfg, o->service, st, output);
	else
		print_table(agg, o->cfg, o->service, st, output);
	o->code = st == HR_STATUS_PASSING   ? HR_EXIT_OK
		  : st == HR_STATUS_WARNING ? HR_EXIT_WARNING
					    : HR_EXIT_CRITICAL;
	ev_break(hr_agg_loop(agg), EVBREAK_ALL);
}

/* One service's checks, once: its exit code. */
static int check_service(const struct hr_config *all,
			 const struct hr_service_conf *cfg, int json)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct hr_agg *agg = NULL;
	struct hr_agg_opts opts;
	struct hr_err err = { "" };
	struct once o = { json, HR_EXIT_SOFTWARE, cfg,
			  all->n_services > 1 ? cfg->service.id : NULL };
	size_t i;
	int rc;

	memset(&opts, 0, sizeof(opts));
	opts.enable_exec_checks = all->enable_exec_checks;
	opts.max_concurrent = all->max_concurrent;
	rc = hr_agg_new(&agg, loop, NULL, &opts, &err);
	for (i = 0; !rc && i < cfg->n_groups; i++)
		rc = hr_agg_add_group(agg, &cfg->groups[i], &err);
	for (i = 0; !rc && i < cfg->n_checks; i++) {
		struct hr_check_spec s = cfg->checks[i]; /* the add copies */

		/* Listed, not counted: nobody pushes during `check`. In a
		 * group it is a member that does not pass. */
		if (left_out(&s) && s.group < 0)
			s.on_failure = HR_ON_FAILURE_IGNORE;
		rc = hr_agg_add_check(agg, &s, &err);
	}
	if (!rc)
		rc = hr_agg_evaluate(agg, once_cb, &o);
	if (rc) {
		fprintf(stderr, "healthreg: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		hr_agg_free(agg);
		return HR_EXIT_SOFTWARE;
	}
	if (o.code == HR_EXIT_SOFTWARE)
		ev_run(loop, 0);
	hr_agg_free(agg);
	return o.code;
}

/* Every service in turn (several: each under a "service ID" line, or
 * with --json one document each, in a JSON array); the worst exit code. */
int hr_agent_check_once(const struct hr_config *cfg, int json)
{
	size_t i;
	int code = HR_EXIT_OK, rc;

	signal(SIGPIPE, SIG_IGN);
	if (json && cfg->n_services > 1)
		printf("[\n");
	for (i = 0; i < cfg->n_services; i++) {
		if (i && json)
			printf(",\n");
		else if (i)
			printf("\n");
		fflush(stdout);
		rc = check_service(cfg, &cfg->services[i], json);
		if (rc == HR_EXIT_SOFTWARE || rc > code)
			code = rc;
		if (code == HR_EXIT_SOFTWARE)
			break;
	}
	if (json && cfg->n_services > 1)
		printf("]\n");
	return code;
}
