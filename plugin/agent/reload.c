/*
 * reload.c - make-before-break reload (reload.h): load and vet the new
 * config, diff the checks (lib/spec.c decides what is equal), rebuild the
 * backends when the service or the registry section changed, then settle.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "healthreg/exec.h"
#include "healthreg/log.h"
#include "preflight.h"
#include "reload.h"
#include "sdnotify.h"

struct counts {
	int kept, added, changed, removed;
};

void hr_agent_cfgs_dispose(struct hr_agent_cfgs *c)
{
	hr_config_free(c->cur);
	memset(c, 0, sizeof(*c));
}

static bool str_eq(const char *x, const char *y)
{
	if (!x || !y)
		return x == y;
	return !strcmp(x, y);
}

static void config_errors(const struct hr_diag *d, char *msg, size_t len)
{
	size_t i, o = 0;

	msg[0] = '\0';
	for (i = 0; i < d->n && o + 1 < len; i++)
		if (d->v[i].level == HR_DIAG_ERROR)
			o += (size_t)snprintf(msg + o, len - o, "%s%s",
					      o ? "; " : "", d->v[i].text);
}

/* Settings that only a restart applies: warn, keep the running values. */
static int vet_next(const struct hr_config *old, struct hr_config *next,
		    char *msg, size_t len)
{
	size_t i;

	if (next->enable_exec_checks != old->enable_exec_checks ||
	    !str_eq(next->api_listen, old->api_listen) ||
	    !str_eq(next->api_token_file, old->api_token_file) ||
	    !str_eq(next->state_file, old->state_file))
		hr_log(HR_LOG_WARN, "reload_needs_restart", "keys",
		       "agent.enable_exec_checks, agent.api_listen, agent.api_token_file, agent.state_file",
		       "action", "kept the running values", NULL);
	if (!next->enable_exec_checks && old->enable_exec_checks)
		next->enable_exec_checks = true;
	/* The maintenance state stays in the file it was read from. */
	if (!str_eq(next->state_file, old->state_file)) {
		char *keep = old->state_file ? strdup(old->state_file) : NULL;

		if (old->state_file && !keep) {
			snprintf(msg, len, "out of memory");
			return -ENOMEM;
		}
		free(next->state_file);
		next->state_file = keep;
	}
	for (i = 0; i < next->n_checks; i++) {
		if (next->checks[i].kind == HR_CHECK_EXEC && !old->enable_exec_checks) {
			snprintf(msg, len, "service.checks[%zu]: exec checks need agent.enable_exec_checks at start; restart healthreg",
				 i);
			hr_log(HR_LOG_ERROR, "reload_failed", "errors", msg,
			       "action", "kept the running config", NULL);
			return -EINVAL;
		}
	}
	return 0;
}

static bool backends_change(const struct hr_config *old,
			    const struct hr_config *next);

/*
 * The new config, loaded and vetted; NULL (msg set, logged) when not.
 * When the backends would be rebuilt, it must pass their preflight, as
 * at start (preflight.h): a reload that could not create them is
 * refused, not half applied.
 */
static struct hr_config *load_next(const struct hr_reload *rl, char *msg,
				   size_t len)
{
	const struct hr_config *old = rl->cfgs->cur;
	struct hr_config *next = NULL;
	struct hr_diag d;

	hr_diag_init(&d);
	if (hr_preflight_load(rl->path, 0, &next, &d) ||
	    (backends_change(old, next) &&
	     hr_preflight_run(next, HR_LOAD_BACKENDS, &d))) {
		hr_config_free(next);
		config_errors(&d, msg, len);
		hr_log(HR_LOG_ERROR, "reload_failed", "path", rl->path, "errors",
		       msg, "action", "kept the running config", NULL);
		next = NULL;
	} else if (vet_next(rl->cfgs->cur, next, msg, len)) {
		hr_config_free(next);
		next = NULL;
	}
	hr_diag_dispose(&d);
	return next;
}

/* Remove the checks that went away. */
static void remove_checks(const struct hr_reload *rl,
			  const struct hr_config *old,
			  const struct hr_config *next, struct counts *n)
{
	size_t i;

	for (i = 0; i < old->n_checks; i++) {
		const struct hr_check_spec *o = &old->checks[i];

		if (hr_config_find_check(next, o->name) >= 0)
			continue; /* kept or replaced in add_checks() */
		hr_agg_remove_check(rl->agg, o->name);
		n->removed++;
	}
}

static const char *group_name(const struct hr_config *cfg, int group)
{
	return group >= 0 && (size_t)group < cfg->n_groups
		       ? cfg->groups[group].name
		       : NULL;
}

/* o and s are the same check: equal specs, their groups compared by name
 * (hr_agg_set_groups() keeps a check in its group by name, whatever the
 * group's index is now). */
static bool same_check(const struct hr_config *old,
		       const struct hr_check_spec *o,
		       const struct hr_config *next,
		       const struct hr_check_spec *s)
{
	struct hr_check_spec a = *o, b = *s;

	if (!str_eq(group_name(old, o->group), group_name(next, s->group)))
		return false;
	a.group = b.group = -1;
	return hr_check_spec_equal(&a, &b);
}

/* Start every check of next that is new or changed, in place of the old
 * one (hr_agg_replace_check(): it counts as the old one did until its
 * first result); the hold waits for their first results. */
static void add_checks(const struct hr_reload *rl, const struct hr_config *old,
		       const struct hr_config *next, struct counts *n)
{
	struct hr_err err = { "" };
	size_t i;

	for (i = 0; i < next->n_checks; i++) {
		const struct hr_check_spec *s = &next->checks[i];
		int j = hr_config_find_check(old, s->name);
		struct hr_check_info info;
		bool running = !hr_agg_check_get(rl->agg, s->name, &info);

		if (running && j >= 0 &&
		    same_check(old, &old->checks[j], next, s)) {
			n->kept++;
			continue;
		}
		if (hr_agg_replace_check(rl->agg, s, &err)) {
			hr_log(HR_LOG_ERROR, "reload_add_failed", "check",
			       s->name, "error", err.msg, NULL);
			continue;
		}
		hr_pub_hold_add(rl->pub, s->name, hr_pub_check_wait(s));
		if (j < 0 || !running)
			n->added++;
		else
			n->changed++;
	}
}

/*
 * New backends from next. The new ones register the same instance again
 * (a replace); a renamed instance's old registration is removed by the
 * old backends' deregistering shutdown (they copied what they need).
 */
static void swap_backends(const struct hr_reload *rl, struct hr_config *next,
			  char *msg, size_t len)
{
	const struct hr_config *old = rl->cfgs->cur;
	struct hr_bset_fresh fresh;
	bool same_identity = str_eq(old->service.id, next->service.id) &&
			     str_eq(old->service.name, next->service.name);

	if (hr_bset_build(rl->bset, next, &fresh)) {
		snprintf(msg, len, "registry backends could not be created from the new config; kept the running ones");
		hr_log(HR_LOG_ERROR, "reload_registry_failed", "action",
		       "kept the running registry backends", NULL);
		return;
	}
	hr_bset_install(rl->bset, &fresh, !same_identity,
			old->shutdown_timeout_ms);
	if (rl->pub->maint)
		hr_bset_maintenance(rl->bset, true, rl->pub->maint_reason);
	/* The old backends are gone (no keepalive any more): the new ones
	 * take over what the registries were told, during the hold too. */
	hr_pub_backends_replaced(rl->pub);
}

/* The registry section is a parsed tree; cJSON_Compare() calls two
 * NULLs different. */
static bool registry_equal(const cJSON *x, const cJSON *y)
{
	if (!x || !y)
		return x == y;
	return cJSON_Compare(x, y, 1);
}

/* The backends are rebuilt when the service or the registry changed. */
static bool backends_change(const struct hr_config *old,
			    const struct hr_config *next)
{
	return !hr_service_spec_equal(&old->service, &next->service) ||
	       !registry_equal(old->registry, next->registry);
}

int hr_reload(const struct hr_reload *rl, char *msg, size_t len)
{
	struct hr_config *next, *old = rl->cfgs->cur;
	struct counts n = { 0, 0, 0, 0 };
	struct hr_err err = { "" };
	bool groups_changed, reg_changed;
	char counts[160];

	if (rl->pub->stopping)
		return snprintf(msg, len, "shutting down"), -EINVAL;
	hr_sd_notify("RELOADING=1");
	next = load_next(rl, msg, len);
	if (!next) {
		hr_sd_notify("READY=1");
		return -EINVAL;
	}
	/* Nothing reaches the registries until the new set has settled,
	 * and the aggregate is computed once, for the whole new set: the
	 * steps in between are no aggregate anyone should see or log. */
	hr_pub_hold_begin(rl->pub);
	hr_exec_env_set((const char *const *)next->exec_env);
	groups_changed = !hr_groups_equal(old, next);
	reg_changed = backends_change(old, next);
	hr_agg_batch_begin(rl->agg);
	remove_checks(rl, old, next, &n);
	if (groups_changed &&
	    hr_agg_set_groups(rl->agg, next->groups, next->n_groups, &err))
		hr_log(HR_LOG_ERROR, "reload_groups_failed", "error", err.msg, NULL);
	add_checks(rl, old, next, &n);
	hr_agg_batch_end(rl->agg);
	hr_log_setup(next->log_level, next->log_format, stderr);
	if (reg_changed)
		swap_backends(rl, next, msg, len);
	hr_config_free(rl->cfgs->cur);
	rl->cfgs->cur = next;
	snprintf(counts, sizeof(counts), "kept=%d added=%d changed=%d removed=%d",
		 n.kept, n.added, n.changed, n.removed);
	hr_log(HR_LOG_INFO, "reloaded", "path", rl->path, "checks", counts,
	       "groups", groups_changed ? "changed" : "unchanged", "registry",
	       reg_changed ? "recreated" : "unchanged", NULL);
	hr_pub_hold_settle(rl->pub);
	hr_sd_notify("READY=1");
	return 0;
}
