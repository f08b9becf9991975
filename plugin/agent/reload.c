/*
 * reload.c - make-before-break reload (reload.h): load and vet the new
 * config, diff the services by id, and in each changed service the checks
 * (lib/spec.c decides what is equal), rebuild its backends when its
 * service spec or registry section changed, then settle.
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
	int kept, added, changed, removed; /* checks */
	int svc_kept, svc_added, svc_changed, svc_removed, recreated;
	int groups; /* services whose groups changed */
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
	/* Units a reload makes get the value the agent started with. */
	next->enable_exec_checks = old->enable_exec_checks;
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
	for (i = 0; i < next->n_services; i++) {
		const struct hr_service_conf *sv = &next->services[i];
		size_t k;

		for (k = 0; k < sv->n_checks; k++) {
			if (sv->checks[k].kind != HR_CHECK_EXEC ||
			    old->enable_exec_checks)
				continue;
			if (next->n_services == 1)
				snprintf(msg, len, "service.checks[%zu]: exec checks need agent.enable_exec_checks at start; restart healthreg",
					 k);
			else
				snprintf(msg, len, "services[%zu].checks[%zu]: exec checks need agent.enable_exec_checks at start; restart healthreg",
					 i, k);
			hr_log(HR_LOG_ERROR, "reload_failed", "errors", msg,
			       "action", "kept the running config", NULL);
			return -EINVAL;
		}
	}
	return 0;
}

static bool backends_change(const struct hr_service_conf *old,
			    const struct hr_service_conf *next);

/* Every service of next whose backends would be (re)built passes their
 * preflight, as at start. */
static int preflight_changed(const struct hr_config *old,
			     const struct hr_config *next, struct hr_diag *d)
{
	size_t i, before = d->errors;

	for (i = 0; i < next->n_services; i++) {
		const struct hr_service_conf *o = hr_config_find_service(
			old, next->services[i].service.id);

		if (!o || backends_change(o, &next->services[i]))
			hr_preflight_service(next, i, d);
	}
	return d->errors > before ? -EINVAL : 0;
}

/*
 * The new config, loaded and vetted; NULL (msg set, logged) when not.
 * When the backends of a service would be rebuilt, it must pass their
 * preflight, as at start (preflight.h): a reload that could not create
 * them is refused, not half applied.
 */
static struct hr_config *load_next(const struct hr_reload *rl, char *msg,
				   size_t len)
{
	const struct hr_config *old = rl->cfgs->cur;
	struct hr_config *next = NULL;
	struct hr_diag d;

	hr_diag_init(&d);
	if (hr_preflight_load(rl->path, 0, &next, &d) ||
	    preflight_changed(old, next, &d)) {
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
static void remove_checks(struct hr_unit *u,
			  const struct hr_service_conf *old,
			  const struct hr_service_conf *next, struct counts *n)
{
	size_t i;

	for (i = 0; i < old->n_checks; i++) {
		const struct hr_check_spec *o = &old->checks[i];

		if (hr_service_find_check(next, o->name) >= 0)
			continue; /* kept or replaced in add_checks() */
		hr_agg_remove_check(u->agg, o->name);
		n->removed++;
	}
}

static const char *group_name(const struct hr_service_conf *cfg, int group)
{
	return group >= 0 && (size_t)group < cfg->n_groups
		       ? cfg->groups[group].name
		       : NULL;
}

/* o and s are the same check: equal specs, their groups compared by name
 * (hr_agg_set_groups() keeps a check in its group by name, whatever the
 * group's index is now). */
static bool same_check(const struct hr_service_conf *old,
		       const struct hr_check_spec *o,
		       const struct hr_service_conf *next,
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
static void add_checks(struct hr_unit *u, const struct hr_service_conf *old,
		       const struct hr_service_conf *next, struct counts *n)
{
	struct hr_err err = { "" };
	size_t i;

	for (i = 0; i < next->n_checks; i++) {
		const struct hr_check_spec *s = &next->checks[i];
		int j = hr_service_find_check(old, s->name);
		struct hr_check_info info;
		bool running = !hr_agg_check_get(u->agg, s->name, &info);

		if (running && j >= 0 &&
		    same_check(old, &old->checks[j], next, s)) {
			n->kept++;
			continue;
		}
		if (hr_agg_replace_check(u->agg, s, &err)) {
			hr_log(HR_LOG_ERROR, "reload_add_failed", "check",
			       s->name, "error", err.msg, NULL);
			continue;
		}
		hr_pub_hold_add(&u->pub, s->name, hr_pub_check_wait(s));
		if (j < 0 || !running)
			n->added++;
		else
			n->changed++;
	}
}

/*
 * The new backends of next (built by build_changed() with the new
 * config's shutdown_timeout) in place of the running ones. The new ones
 * register the same instance again (a replace); a renamed instance's old
 * registration is removed by the old backends' deregistering shutdown
 * (they copied what they need), within the old config's retire_ms, the
 * deadline they were built with.
 */
static void swap_backends(struct hr_unit *u, const struct hr_service_conf *next,
			  struct hr_bset_fresh *fresh, int64_t retire_ms)
{
	const struct hr_service_conf *old = u->conf;
	bool same_identity = str_eq(old->service.id, next->service.id) &&
			     str_eq(old->service.name, next->service.name);

	hr_bset_install(&u->bset, fresh, !same_identity, retire_ms);
	if (u->pub.maint)
		hr_bset_maintenance(&u->bset, true, u->pub.maint_reason);
	/* The old backends are gone (no keepalive any more): the new ones
	 * take over what the registries were told, during the hold too. */
	hr_pub_backends_replaced(&u->pub);
}

/* The registry section is a parsed tree; cJSON_Compare() calls two
 * NULLs different. */
static bool registry_equal(const cJSON *x, const cJSON *y)
{
	if (!x || !y)
		return x == y;
	return cJSON_Compare(x, y, 1);
}

/* The backends are rebuilt when the service or its registry changed. */
static bool backends_change(const struct hr_service_conf *old,
			    const struct hr_service_conf *next)
{
	return !hr_service_spec_equal(&old->service, &next->service) ||
	       !registry_equal(old->registry, next->registry);
}

/* Nothing of the service changed: its unit is left alone. */
static bool service_same(const struct hr_service_conf *old,
			 const struct hr_service_conf *next)
{
	size_t i;

	if (backends_change(old, next) || !hr_groups_equal(old, next) ||
	    old->n_checks != next->n_checks)
		return false;
	for (i = 0; i < old->n_checks; i++)
		if (!same_check(old, &old->checks[i], next, &next->checks[i]))
			return false;
	return true;
}

/* One changed service, make-before-break (reload.h), with its new
 * backends when they change (fresh, built beforehand); its hold settles
 * in hr_reload() once every service is applied. oldc: the running
 * config. */
static void reload_unit(struct hr_unit *u, const struct hr_config *oldc,
			const struct hr_service_conf *next,
			struct hr_bset_fresh *fresh, struct counts *n)
{
	const struct hr_service_conf *old = u->conf;
	struct hr_err err = { "" };
	bool reg_changed = backends_change(old, next);

	/* Nothing reaches the registries until the new set has settled,
	 * and the aggregate is computed once, for the whole new set: the
	 * steps in between are no aggregate anyone should see or log. */
	hr_pub_hold_begin(&u->pub);
	hr_agg_batch_begin(u->agg);
	remove_checks(u, old, next, n);
	if (!hr_groups_equal(old, next)) {
		n->groups++;
		if (hr_agg_set_groups(u->agg, next->groups, next->n_groups,
				      &err))
			hr_log(HR_LOG_ERROR, "reload_groups_failed", "service",
			       u->id, "error", err.msg, NULL);
	}
	add_checks(u, old, next, n);
	hr_agg_batch_end(u->agg);
	if (reg_changed) {
		swap_backends(u, next, fresh, oldc->shutdown_timeout_ms);
		n->recreated++;
	}
	u->conf = next;
}

/* Nothing was held: the reload is settled at once (one line; with one
 * service, its aggregate). */
static void settled_unchanged(const struct hr_reload *rl,
			      const struct hr_config *next)
{
	struct hr_unit *u = next->n_services == 1
		? rl->host.find(rl->host.ctx, next->services[0].service.id)
		: NULL;

	if (u)
		hr_log(HR_LOG_INFO, "reload_settled", "reason", "no new checks",
		       "status", hr_status_name(hr_agg_status(u->agg)),
		       "output", hr_agg_output(u->agg), NULL);
	else
		hr_log(HR_LOG_INFO, "reload_settled", "reason",
		       "no service changed", NULL);
}

/* The unit's service has a new id (the one service renamed). */
static void unit_rename(struct hr_unit *u, const char *id)
{
	char *c = strdup(id);

	if (!c)
		return; /* it keeps answering to its old id */
	free(u->id);
	u->id = c;
	u->pub.service = c;
}

static void still_leaving(const char *id, char *msg, size_t len)
{
	snprintf(msg, len, "service \"%s\" is still deregistering (a reload removed it): reload again once it is gone; kept the running config",
		 id);
}

/* The units of the services next adds, made before anything changes; a
 * unit that cannot be made fails the reload, and so does an id whose
 * removed unit is still deregistering (added back, or the one service
 * renamed to it: its late deregistration could remove the new
 * registration). */
static int make_added(const struct hr_reload *rl, const struct hr_config *next,
		      bool paired, struct hr_unit **made, char *msg, size_t len)
{
	size_t i;

	for (i = 0; i < next->n_services; i++)
		made[i] = NULL;
	if (paired) {
		const char *id = next->services[0].service.id;

		if (!rl->host.find(rl->host.ctx, id) &&
		    rl->host.leaving(rl->host.ctx, id)) {
			still_leaving(id, msg, len);
			return -EINVAL;
		}
		return 0;
	}
	for (i = 0; i < next->n_services; i++) {
		const struct hr_service_conf *sv = &next->services[i];

		if (rl->host.find(rl->host.ctx, sv->service.id))
			continue;
		if (rl->host.leaving(rl->host.ctx, sv->service.id))
			still_leaving(sv->service.id, msg, len);
		else if ((made[i] = rl->host.make(rl->host.ctx, next, sv)))
			continue;
		else
			snprintf(msg, len, "service \"%s\" could not be started (see the log); kept the running config",
				 sv->service.id);
		while (i--) {
			if (made[i])
				rl->host.discard(rl->host.ctx, made[i]);
			made[i] = NULL;
		}
		return -EINVAL;
	}
	return 0;
}

/* The unit that runs next's service i now: the one service, whatever
 * its id, or the service of that id; NULL for an added one. */
static struct hr_unit *unit_of(const struct hr_reload *rl,
			       const struct hr_config *old,
			       const struct hr_config *next, bool paired,
			       size_t i)
{
	return rl->host.find(rl->host.ctx,
			     paired ? old->services[0].service.id
				    : next->services[i].service.id);
}

/*
 * The new backends of every running service whose backends change
 * (fresh[i] for next's service i), built before anything changes with the
 * new config's shutdown_timeout: one that cannot be created (preflight
 * passed: e.g. out of memory) fails the reload, not half of it.
 */
static int build_changed(const struct hr_reload *rl,
			 const struct hr_config *old,
			 const struct hr_config *next, bool paired,
			 struct hr_unit **made, struct hr_bset_fresh *fresh,
			 char *msg, size_t len)
{
	size_t i;

	for (i = 0; i < next->n_services; i++) {
		const struct hr_service_conf *sv = &next->services[i];
		struct hr_unit *u = made[i] ? NULL
					    : unit_of(rl, old, next, paired, i);

		if (!u || !backends_change(u->conf, sv))
			continue;
		if (!hr_bset_build(&u->bset, sv, next->shutdown_timeout_ms,
				   &fresh[i]))
			continue;
		snprintf(msg, len, "service \"%s\": registry backends could not be created from the new config (see the log); kept the running config",
			 sv->service.id);
		while (i--)
			hr_bset_fresh_dispose(&fresh[i]);
		return -EINVAL;
	}
	return 0;
}

int hr_reload(const struct hr_reload *rl, char *msg, size_t len)
{
	struct hr_config *next, *old = rl->cfgs->cur;
	struct counts n = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct hr_unit **made = NULL;
	struct hr_bset_fresh *fresh = NULL;
	char counts[160], svcs[160];
	bool paired;
	size_t i;

	if (rl->host.stopping(rl->host.ctx))
		return snprintf(msg, len, "shutting down"), -EINVAL;
	hr_sd_notify("RELOADING=1");
	next = load_next(rl, msg, len);
	if (next) {
		made = calloc(next->n_services, sizeof(*made));
		fresh = calloc(next->n_services, sizeof(*fresh));
		if (!made || !fresh) {
			free(made);
			made = NULL;
			snprintf(msg, len, "out of memory");
		}
	}
	/* One service before and after: the same one, whatever its id (a
	 * renamed instance keeps its checks; its old registration is
	 * removed by the retiring backends), as before "services". */
	paired = next && old->n_services == 1 && next->n_services == 1;
	if (!next || !made || make_added(rl, next, paired, made, msg, len) ||
	    build_changed(rl, old, next, paired, made, fresh, msg, len)) {
		if (next && made) {
			hr_log(HR_LOG_ERROR, "reload_failed", "path", rl->path,
			       "errors", msg, "action",
			       "kept the running config", NULL);
			for (i = 0; i < next->n_services; i++)
				if (made[i])
					rl->host.discard(rl->host.ctx, made[i]);
		}
		free(made);
		free(fresh);
		hr_config_free(next);
		hr_sd_notify("READY=1");
		return -EINVAL;
	}
	hr_exec_env_set((const char *const *)next->exec_env);
	/* Removed first: a service that left frees its id for nobody else
	 * in this reload (ids are unique), but its deregistration starts
	 * before anything new registers. */
	for (i = 0; i < old->n_services; i++) {
		const struct hr_service_conf *o = &old->services[i];
		struct hr_unit *u;

		if (paired || hr_config_find_service(next, o->service.id))
			continue;
		u = rl->host.find(rl->host.ctx, o->service.id);
		if (u) {
			u->conf = NULL;
			rl->host.remove(rl->host.ctx, u);
			n.svc_removed++;
		}
	}
	for (i = 0; i < next->n_services; i++) {
		const struct hr_service_conf *sv = &next->services[i];
		struct hr_unit *u = unit_of(rl, old, next, paired, i);

		if (made[i]) {
			rl->host.start(rl->host.ctx, made[i]);
			n.svc_added++;
		} else if (service_same(u->conf, sv)) {
			u->conf = sv;
			n.svc_kept++;
			n.kept += (int)sv->n_checks;
		} else {
			reload_unit(u, old, sv, &fresh[i], &n);
			n.svc_changed++;
			if (paired && strcmp(u->id, sv->service.id))
				unit_rename(u, sv->service.id);
		}
	}
	free(made);
	free(fresh);
	hr_log_setup(next->log_level, next->log_format, stderr);
	hr_config_free(rl->cfgs->cur);
	rl->cfgs->cur = next;
	snprintf(counts, sizeof(counts), "kept=%d added=%d changed=%d removed=%d",
		 n.kept, n.added, n.changed, n.removed);
	snprintf(svcs, sizeof(svcs), "kept=%d added=%d changed=%d removed=%d",
		 n.svc_kept, n.svc_added, n.svc_changed, n.svc_removed);
	hr_log(HR_LOG_INFO, "reloaded", "path", rl->path, "services", svcs,
	       "checks", counts, "groups", n.groups ? "changed" : "unchanged",
	       "registry", n.recreated ? "recreated" : "unchanged", NULL);
	if (!n.svc_changed && !n.svc_added)
		settled_unchanged(rl, next);
	/* Every changed service's hold settles now that all are applied. */
	for (i = 0; i < next->n_services; i++) {
		struct hr_unit *u = rl->host.find(rl->host.ctx,
						  next->services[i].service.id);

		if (u && u->pub.reloading)
			hr_pub_hold_settle(&u->pub);
	}
	hr_sd_notify("READY=1");
	return 0;
}
