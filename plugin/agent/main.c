/*
 * main.c - the healthreg command line: a table of commands, each either
 * local (run, check, validate: load the config) or a client of a running
 * agent's API (status, maint, reload).
 */
#include <getopt.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "backends.h"
#include "client.h"
#include "once.h"
#include "healthreg/exec.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: healthreg <command> [options]\n"
		"\n"
		"commands:\n"
		"  run -c FILE        run the agent in the foreground (logs to stderr);\n"
		"                     SIGTERM/SIGINT deregister and stop it\n"
		"  check -c FILE      run every check once, print a table and the\n"
		"                     aggregate; exit 0 passing, 1 warning, 2 critical\n"
		"    --json           print JSON instead of a table\n"
		"  validate -c FILE   check the config; exit 0 when valid, 78 when not\n"
		"\n"
		"  status             the running agent's view (its local API); exit 0/1/2,\n"
		"                     69 when the agent cannot be reached\n"
		"  maint enable --reason TEXT | maint disable\n"
		"                     maintenance mode of the running agent\n"
		"  reload             make the running agent re-read its config (or SIGHUP)\n"
		"    --api ADDR       the agent's API (default: agent.api_listen from -c,\n"
		"                     else " HR_API_DEFAULT_LISTEN ")\n"
		"    --token-file F   API token for writes (default: agent.api_token_file\n"
		"                     from -c, else $HEALTHREG_API_TOKEN)\n"
		"\n"
		"options:\n"
		"  -c, --config FILE  the JSON config file\n"
		"  --log-level LEVEL  error, warn, info (default) or debug\n"
		"  --log-format FMT   logfmt (default) or json\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"exit codes: 0 ok/passing, 1 warning, 2 critical, 64 usage error,\n"
		"            69 agent unreachable, 70 internal error, 78 config error\n"
		"registry backends in this build:");
	for (i = 0; hr_registries[i]; i++)
		fprintf(f, " %s", hr_registries[i]->name);
	fprintf(f, "%s\n", hr_registries[0] ? "" : " none");
}

/* Everything the command line said. */
struct args {
	const char *cmd, *sub;
	const char *path, *level, *format;
	const char *api, *token_file, *reason;
	int json;
};

/* Commands that talk to a running agent's local API. */
static int cmd_status(const struct hr_client_opts *co, const struct args *a)
{
	(void)a;
	return hr_client_status(co);
}

static int cmd_reload(const struct hr_client_opts *co, const struct args *a)
{
	(void)a;
	return hr_client_reload(co);
}

static int cmd_maint(const struct hr_client_opts *co, const struct args *a)
{
	if (a->sub && !strcmp(a->sub, "enable")) {
		if (!a->reason) {
			fprintf(stderr, "healthreg: maint enable needs --reason TEXT\n");
			return HR_EXIT_USAGE;
		}
		return hr_client_maint(co, true, a->reason);
	}
	if (a->sub && !strcmp(a->sub, "disable"))
		return hr_client_maint(co, false, "");
	fprintf(stderr, "healthreg: maint needs enable --reason TEXT or disable\n");
	return HR_EXIT_USAGE;
}

/* Commands that load the config themselves; run takes cfg (sets *cfg). */
static int cmd_validate(struct hr_config **cfg, const struct args *a)
{
	struct hr_diag diag;
	size_t i, errors;

	/* The files the registries need, as the agent would read them. */
	hr_diag_init(&diag);
	hr_backends_preflight(*cfg, &diag);
	for (i = 0; i < diag.n; i++)
		fprintf(stderr, "healthreg: %s: %s: %s\n",
			diag.v[i].level == HR_DIAG_ERROR ? "error" : "warning",
			a->path, diag.v[i].text);
	errors = diag.errors;
	hr_diag_dispose(&diag);
	if (errors) {
		fprintf(stderr, "healthreg: %s: %zu error%s, nothing started\n",
			a->path, errors, errors == 1 ? "" : "s");
		return HR_EXIT_CONFIG;
	}
	printf("%s: valid (%zu check%s, %zu group%s)\n", a->path,
	       (*cfg)->n_checks, (*cfg)->n_checks == 1 ? "" : "s",
	       (*cfg)->n_groups, (*cfg)->n_groups == 1 ? "" : "s");
	return HR_EXIT_OK;
}

static int cmd_check(struct hr_config **cfg, const struct args *a)
{
	return hr_agent_check_once(*cfg, a->json);
}

static int cmd_run(struct hr_config **cfg, const struct args *a)
{
	struct hr_config *c = *cfg;

	*cfg = NULL; /* owned by the agent */
	return hr_agent_run(a->path, c);
}

static const struct command {
	const char *name;
	int (*client)(const struct hr_client_opts *co, const struct args *a);
	int (*local)(struct hr_config **cfg, const struct args *a);
} commands[] = {
	{ "run", NULL, cmd_run },
	{ "check", NULL, cmd_check },
	{ "validate", NULL, cmd_validate },
	{ "status", cmd_status, NULL },
	{ "maint", cmd_maint, NULL },
	{ "reload", cmd_reload, NULL },
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* Move a leading word (the command, then maint's sub-command) out of
 * argv so that getopt sees only options. */
static const char *take_word(int *argc, char ***argv)
{
	const char *w;

	if (*argc < 2 || (*argv)[1][0] == '-')
		return NULL;
	w = (*argv)[1];
	(*argv)[1] = (*argv)[0];
	(*argv)++;
	(*argc)--;
	return w;
}

/* -1: go on; otherwise the exit code. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "api", required_argument, NULL, 'a' },
		{ "token-file", required_argument, NULL, 't' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	a->cmd = take_word(&argc, &argv);
	if (a->cmd && !strcmp(a->cmd, "maint"))
		a->sub = take_word(&argc, &argv);
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, "c:hV", longopts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'c':
			a->path = optarg;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'l':
			a->level = optarg;
			break;
		case 'f':
			a->format = optarg;
			break;
		case 'a':
			a->api = optarg;
			break;
		case 't':
			a->token_file = optarg;
			break;
		case 'r':
			a->reason = optarg;
			break;
		case 'h':
			usage(stdout);
			return HR_EXIT_OK;
		case 'V':
			printf("healthreg %s\n", HR_VERSION);
			return HR_EXIT_OK;
		default:
			fprintf(stderr, "healthreg: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			usage(stderr);
			return HR_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "healthreg: unexpected argument '%s'\n", argv[optind]);
		return HR_EXIT_USAGE;
	}
	return -1;
}

/* The config's log settings, overridden by --log-level / --log-format. */
static int setup_log(const struct hr_config *cfg, const struct args *a)
{
	int lvl = cfg->log_level;
	enum hr_log_format fmt = cfg->log_format;

	if (a->level && hr_log_level_parse(a->level, &lvl)) {
		fprintf(stderr, "healthreg: --log-level: '%s' is not error, warn, info or debug\n",
			a->level);
		return HR_EXIT_USAGE;
	}
	if (a->format && !strcmp(a->format, "json")) {
		fmt = HR_LOG_JSON;
	} else if (a->format && !strcmp(a->format, "logfmt")) {
		fmt = HR_LOG_LOGFMT;
	} else if (a->format) {
		fprintf(stderr, "healthreg: --log-format: '%s' is not logfmt or json\n",
			a->format);
		return HR_EXIT_USAGE;
	}
	/* check prints its own report; keep its log quiet unless asked. */
	if (!strcmp(a->cmd, "check") && !a->level)
		lvl = HR_LOG_ERROR;
	hr_log_setup(lvl, fmt, stderr);
	return 0;
}

static int run_local(const struct command *c, const struct args *a)
{
	struct hr_config *cfg = NULL;
	int rc;

	if (!a->path) {
		fprintf(stderr, "healthreg: %s needs -c FILE\n", a->cmd);
		return HR_EXIT_USAGE;
	}
	if (a->json && strcmp(a->cmd, "check")) {
		fprintf(stderr, "healthreg: --json applies to check and status only\n");
		return HR_EXIT_USAGE;
	}
	rc = hr_agent_load_config(a->path, &cfg);
	if (rc)
		return rc;
	rc = setup_log(cfg, a);
	if (!rc && hr_exec_env_set((const char *const *)cfg->exec_env))
		rc = HR_EXIT_SOFTWARE;
	if (!rc)
		rc = c->local(&cfg, a);
	hr_config_free(cfg);
	hr_exec_env_set(NULL); /* frees the configured list */
	return rc;
}

int main(int argc, char **argv)
{
	struct args a;
	const struct command *c;
	int rc;

	memset(&a, 0, sizeof(a));
	rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (!a.cmd) {
		usage(stderr);
		return HR_EXIT_USAGE;
	}
	c = find_command(a.cmd);
	if (c && c->client) {
		struct hr_client_opts co = { a.api, a.path, a.token_file,
					     a.json != 0 };

		curl_global_init(CURL_GLOBAL_DEFAULT);
		return c->client(&co, &a);
	}
	if (a.api || a.token_file || a.reason) {
		fprintf(stderr, "healthreg: --api, --token-file and --reason apply to status, maint and reload\n");
		return HR_EXIT_USAGE;
	}
	if (!c) {
		fprintf(stderr, "healthreg: unknown command '%s'\n", a.cmd);
		usage(stderr);
		return HR_EXIT_USAGE;
	}
	return run_local(c, &a);
}
