/*
 * once.c - `healthreg check`: every check once on a loop of its own, then
 * a table (or JSON) of the results and the aggregate.
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
};

static void print_json(struct hr_agg *agg, enum hr_status st,
		       const char *output)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "checks");
	struct hr_check_info info;
	char *s, *clean;
	size_t i;

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
		cJSON_AddItemToArray(arr, o);
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

static void print_table(struct hr_agg *agg, enum hr_status st,
			const char *output)
{
	struct hr_check_info info;
	size_t i, w = 4;
	char line[81];

	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		hr_agg_check_at(agg, i, &info);
		if (strlen(info.name) > w)
			w = strlen(info.name);
	}
	if (w > 40)
		w = 40;
	printf("%-*s  %-4s  %-8s  %9s  %s\n", (int)w, "NAME", "KIND", "STATUS",
	       "DURATION", "OUTPUT");
	for (i = 0; i < hr_agg_n_checks(agg); i++) {
		char dur[32];

		hr_agg_check_at(agg, i, &info);
		snprintf(dur, sizeof(dur), "%.1fms", info.duration_ms);
		clip(info.output, line, 80);
		printf("%-*.*s  %-4s  %-8s  %9s  %s\n", (int)w, (int)w, info.name,
		       hr_check_kind_name(info.kind), hr_status_name(info.status),
		       dur, line);
	}
	printf("\naggregate: %s (%s)\n", hr_status_name(st), output);
}

static void once_cb(struct hr_agg *agg, enum hr_status st, const char *output,
		    void *payload)
{
	struct once *o = payload;

	if (o->json)
		print_json(agg, st, output);
	else
		print_table(agg, st, output);
	o->code = st == HR_STATUS_PASSING   ? HR_EXIT_OK
		  : st == HR_STATUS_WARNING ? HR_EXIT_WARNING
					    : HR_EXIT_CRITICAL;
	ev_break(hr_agg_loop(agg), EVBREAK_ALL);
}

int hr_agent_check_once(const struct hr_config *cfg, int json)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct hr_agg *agg = NULL;
	struct hr_agg_opts opts;
	struct hr_err err = { "" };
	struct once o = { json, HR_EXIT_SOFTWARE };
	int rc;

	signal(SIGPIPE, SIG_IGN);
	memset(&opts, 0, sizeof(opts));
	opts.enable_exec_checks = cfg->enable_exec_checks;
	opts.max_concurrent = cfg->max_concurrent;
	rc = hr_agg_new(&agg, loop, NULL, &opts, &err);
	if (!rc)
		rc = hr_agg_add_config(agg, cfg, &err);
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
