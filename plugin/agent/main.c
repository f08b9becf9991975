/*
 * main.c - the healthreg command line: a table of commands, each either
 * local (run, check, validate: load the config) or a client of a running
 * agent's API (status, maint, reload), plus help and version. Options may
 * come before or after the command; each command lists the options it
 * takes (`healthreg help COMMAND`, `healthreg COMMAND --help`), and any
 * other is a usage error that says so. The completion script
 * (contrib/completion/healthreg.bash) mirrors these tables.
 */
#include <getopt.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>
#include <microhttpd.h>

#include "agent.h"
#include "api.h"
#include "backends.h"
#include "client.h"
#include "once.h"
#include "preflight.h"
#include "healthreg/exec.h"
#include "healthreg/log.h"
#include "healthreg/util.h"

/* ---- options ------------------------------------------------------------ */

enum {
	O_CONFIG = 1u << 0,
	O_JSON = 1u << 1,
	O_API = 1u << 2,
	O_TOKEN = 1u << 3,
	O_REASON = 1u << 4,
	O_LEVEL = 1u << 5,
	O_FORMAT = 1u << 6,
	O_HELP = 1u << 7,
	O_VERSION = 1u << 8,
	O_SERVICE = 1u << 9,
};

/* Every command takes these, before or after its name. */
#define O_GLOBAL (O_LEVEL | O_FORMAT | O_HELP | O_VERSION)
#define O_CLIENT (O_API | O_CONFIG | O_TOKEN)

static const struct optdoc {
	unsigned bit;
	const char *name;
	int shortopt; /* 0: none */
	const char *arg;
	const char *help;
} optdocs[] = {
	{ O_CONFIG, "config", 'c', "FILE", "the JSON config file" },
	{ O_JSON, "json", 0, NULL, "print JSON instead of a table" },
	{ O_API, "api", 0, "ADDR",
	  "the agent's API: host:port, :port, port or\n"
	  "http://host:port (default: agent.api_listen from\n"
	  "-c FILE, else " HR_API_DEFAULT_LISTEN ")" },
	{ O_TOKEN, "token-file", 0, "FILE",
	  "the API token (default: agent.api_token_file from\n"
	  "-c FILE, else $HEALTHREG_API_TOKEN)" },
	{ O_REASON, "reason", 0, "TEXT",
	  "why, at most 1024 bytes (default: Consul's\n"
	  "default text, \"...no reason was provided...\")" },
	{ O_SERVICE, "service", 0, "ID",
	  "one service (its id) in maintenance of its own\n"
	  "(default: the agent, every service)" },
	{ O_LEVEL, "log-level", 0, "LEVEL", "error, warn, info (default) or debug" },
	{ O_FORMAT, "log-format", 0, "FMT", "logfmt (default) or json" },
	{ O_HELP, "help", 'h', NULL, "help (of the command, when one is given)" },
	{ O_VERSION, "version", 'V', NULL,
	  "healthreg's version and its libraries'" },
};

/* Everything the command line said. */
struct args {
	const char *words[4]; /* the command and its words (maint enable) */
	size_t n_words;
	unsigned seen;        /* O_* bits */
	const char *seen_as[HR_ARRAY_SIZE(optdocs)]; /* as typed, for errors */
	const char *path, *level, *format;
	const char *api, *token_file, *reason, *service;
};

/* ---- commands ------------------------------------------------------------ */

static int cmd_status(const struct hr_client_opts *co, const struct args *a)
{
	(void)a;
	return hr_client_status(co);
}

static int cmd_why(const struct hr_client_opts *co, const struct args *a)
{
	return hr_client_why(co, a->n_words > 1 ? a->words[1] : NULL);
}

static int cmd_reload(const struct hr_client_opts *co, const struct args *a)
{
	(void)a;
	return hr_client_reload(co);
}

static int cmd_maint(const struct hr_client_opts *co, const struct args *a)
{
	const char *sub = a->words[1];

	if (!strcmp(sub, "enable"))
		return hr_client_maint(co, true, a->reason ? a->reason
						  : HR_MAINT_DEFAULT_REASON,
				       a->service);
	if (a->reason) {
		fprintf(stderr, "healthreg: maint disable does not take --reason\n");
		return HR_EXIT_USAGE;
	}
	return hr_client_maint(co, false, "", a->service);
}

static int cmd_validate(struct hr_config **cfg, const struct args *a)
{
	/* The load (preflight.h) ran every check run makes, the backends'
	 * preflight included. */
	const struct hr_config *c = *cfg;
	size_t i, checks = 0, groups = 0;

	for (i = 0; i < c->n_services; i++) {
		checks += c->services[i].n_checks;
		groups += c->services[i].n_groups;
	}
	if (c->n_services > 1)
		printf("%s: valid (%zu services, %zu check%s, %zu group%s)\n",
		       a->path, c->n_services, checks, checks == 1 ? "" : "s",
		       groups, groups == 1 ? "" : "s");
	else
		printf("%s: valid (%zu check%s, %zu group%s)\n", a->path,
		       checks, checks == 1 ? "" : "s", groups,
		       groups == 1 ? "" : "s");
	return HR_EXIT_OK;
}

static int cmd_check(struct hr_config **cfg, const struct args *a)
{
	return hr_agent_check_once(*cfg, (a->seen & O_JSON) != 0);
}

static int cmd_run(struct hr_config **cfg, const struct args *a)
{
	struct hr_config *c = *cfg;

	*cfg = NULL; /* owned by the agent */
	return hr_agent_run(a->path, c);
}

static int cmd_help(const struct args *a);
static int cmd_version(const struct args *a);

static const struct command {
	const char *name;
	const char *synopsis; /* after the name */
	const char *summary;  /* one line */
	const char *details;  /* for help NAME; may be NULL */
	const char *words;    /* the words after the name, "|"-separated;
				 NULL: none */
	unsigned opts;        /* O_* bits taken beyond O_GLOBAL */
	unsigned load;        /* local: what the load checks (preflight.h) */
	int (*client)(const struct hr_client_opts *co, const struct args *a);
	int (*local)(struct hr_config **cfg, const struct args *a);
	int (*self)(const struct args *a);
} commands[] = {
	{ "run", "-c FILE", "run the agent in the foreground (logs to stderr)",
	  "SIGTERM/SIGINT deregister and stop it (exit 0), SIGHUP reloads.\n"
	  "Exit 78 for a config it will not start (the same verdict as\n"
	  "validate), 69 when agent.api_listen cannot be bound (in use).",
	  NULL, O_CONFIG, HR_LOAD_RUN, NULL, cmd_run, NULL },
	{ "check", "-c FILE [--json]",
	  "run every check once, print a table and the aggregate",
	  "Exit 0 passing, 1 warning, 2 critical. Registries are not touched.",
	  NULL, O_CONFIG | O_JSON, 0, NULL, cmd_check, NULL },
	{ "validate", "-c FILE", "check the config as run would start it",
	  "The config, then what run checks before it starts: each registry's\n"
	  "needs (etcd: service.port), secret and TLS files, agent.api_listen,\n"
	  "agent.api_token_file, agent.user. Exit 0 valid, 78 not (every\n"
	  "error with its JSON path).",
	  NULL, O_CONFIG, HR_LOAD_RUN, NULL, cmd_validate, NULL },
	{ "status", "[--api ADDR | -c FILE] [--token-file FILE] [--json]",
	  "the running agent's view (its local API)",
	  "Exit 0 passing, 1 warning, 2 critical (the agent's status), 69 when\n"
	  "the agent cannot be reached.",
	  NULL, O_CLIENT | O_JSON, 0, cmd_status, NULL, NULL },
	{ "why", "[SERVICE] [--api ADDR | -c FILE] [--token-file FILE] [--json]",
	  "what happened to this instance in its registries, and why",
	  "The agent's decision journal (GET /v1/decisions), newest first:\n"
	  "register, deregister, kept by the fleet floor, held for a reload,\n"
	  "maintenance, shutdown, each with its time, backend, status and the\n"
	  "checks that caused it; SERVICE (an id) keeps that service's only.\n"
	  "Exit 0, 69 when the agent cannot be reached.",
	  "[SERVICE]", O_CLIENT | O_JSON, 0, cmd_why, NULL, NULL },
	{ "maint", "enable [--reason TEXT] | disable  [--service ID] [--api ADDR | -c FILE]",
	  "maintenance mode of the running agent (or of one of its services)",
	  "Exit 0 done, 70 when the agent could not save it to its state file\n"
	  "(nothing changed) or runs no service --service names, 69 when the\n"
	  "agent cannot be reached.",
	  "enable|disable", O_CLIENT | O_REASON | O_SERVICE, 0, cmd_maint, NULL,
	  NULL },
	{ "reload", "[--api ADDR | -c FILE] [--token-file FILE]",
	  "make the running agent re-read its config (as SIGHUP)",
	  "Exit 0 reloaded, 78 when the agent refused the new config (it\n"
	  "keeps running the old one; the errors are printed), 69 when the\n"
	  "agent cannot be reached.",
	  NULL, O_CLIENT, 0, cmd_reload, NULL, NULL },
	{ "help", "[COMMAND]", "this text, or a command's options", NULL,
	  NULL, 0, 0, NULL, NULL, cmd_help },
	{ "version", "", "healthreg's version and its libraries'", NULL,
	  NULL, 0, 0, NULL, NULL, cmd_version },
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* ---- help and version ----------------------------------------------------- */

/* "-c, --config FILE" */
static void opt_label(const struct optdoc *o, char *buf, size_t len)
{
	char s[8] = "";

	if (o->shortopt)
		snprintf(s, sizeof(s), "-%c, ", o->shortopt);
	snprintf(buf, len, "%s--%s%s%s", s, o->name, o->arg ? " " : "",
		 o->arg ? o->arg : "");
}

/* Indented lines of text, the first after a label column of width w. */
static void print_wrapped(FILE *f, const char *label, const char *text,
			  int w)
{
	const char *nl;

	fprintf(f, "  %-*s  ", w, label);
	while ((nl = strchr(text, '\n'))) {
		fprintf(f, "%.*s\n  %-*s  ", (int)(nl - text), text, w, "");
		text = nl + 1;
	}
	fprintf(f, "%s\n", text);
}

static void print_opts(FILE *f, unsigned bits)
{
	char label[64];
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(optdocs); i++) {
		if (!(bits & optdocs[i].bit))
			continue;
		opt_label(&optdocs[i], label, sizeof(label));
		print_wrapped(f, label, optdocs[i].help, 20);
	}
}

static void usage(FILE *f)
{
	char label[64];
	size_t i;

	fprintf(f, "usage: healthreg [global options] <command> [options]\n"
		   "\ncommands:\n");
	for (i = 0; i < HR_ARRAY_SIZE(commands); i++) {
		const struct command *c = &commands[i];

		snprintf(label, sizeof(label), "%s %s", c->name,
			 c->words ? c->words : c->local ? "-c FILE"
				  : c->self == cmd_help ? "[COMMAND]" : "");
		print_wrapped(f, label, c->summary, 20);
	}
	fprintf(f, "\nglobal options (before or after the command):\n");
	print_opts(f, O_GLOBAL);
	fprintf(f,
		"\n'healthreg help COMMAND' (or 'healthreg COMMAND --help') shows\n"
		"a command's options.\n"
		"\nexit codes: 0 ok/passing, 1 warning, 2 critical, 64 usage error,\n"
		"            69 agent unreachable (or API address in use), 70 internal\n"
		"            error, 78 config error\n"
		"registry backends in this build:");
	for (i = 0; hr_registries[i]; i++)
		fprintf(f, " %s", hr_registries[i]->name);
	fprintf(f, "%s\n", hr_registries[0] ? "" : " none");
}

static void command_usage(FILE *f, const struct command *c)
{
	fprintf(f, "usage: healthreg %s%s%s\n\n%s\n", c->name,
		*c->synopsis ? " " : "", c->synopsis, c->summary);
	if (c->details)
		fprintf(f, "\n%s\n", c->details);
	if (c->opts) {
		fprintf(f, "\noptions:\n");
		print_opts(f, c->opts);
	}
	fprintf(f, "\nglobal options: --log-level LEVEL, --log-format FMT, "
		   "-h, -V (healthreg help)\n");
}

static int cmd_help(const struct args *a)
{
	const struct command *c;

	if (a->n_words > 2) {
		fprintf(stderr, "healthreg: help takes one command name\n");
		return HR_EXIT_USAGE;
	}
	if (a->n_words < 2) {
		usage(stdout);
		return HR_EXIT_OK;
	}
	c = find_command(a->words[1]);
	if (!c) {
		fprintf(stderr, "healthreg: help: unknown command '%s' (healthreg help lists them)\n",
			a->words[1]);
		return HR_EXIT_USAGE;
	}
	command_usage(stdout, c);
	return HR_EXIT_OK;
}

static int cmd_version(const struct args *a)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	size_t i;

	if (a->n_words > 1) {
		fprintf(stderr, "healthreg: unexpected argument '%s'\n",
			a->words[1]);
		return HR_EXIT_USAGE;
	}
	printf("healthreg %s\n", HR_VERSION);
	printf("libcurl %s (%s%s%s)\n", cv->version,
	       cv->ssl_version ? cv->ssl_version : "no TLS",
	       cv->nghttp2_version ? ", nghttp2/" : "",
	       cv->nghttp2_version ? cv->nghttp2_version : "");
	printf("libev %d.%d\n", ev_version_major(), ev_version_minor());
	printf("cJSON %s\n", cJSON_Version());
	printf("libmicrohttpd %s\n", MHD_get_version());
	printf("registry backends:");
	for (i = 0; hr_registries[i]; i++)
		printf(" %s", hr_registries[i]->name);
	printf("%s\n", hr_registries[0] ? "" : " none");
	return HR_EXIT_OK;
}

/* ---- parsing --------------------------------------------------------------- */

static size_t optdoc_index(unsigned bit)
{
	size_t i;

	for (i = 0; i < HR_ARRAY_SIZE(optdocs); i++)
		if (optdocs[i].bit == bit)
			break;
	return i;
}

/*
 * Options anywhere ("-" first in optstring: every word comes back in
 * order as opt 1, whatever POSIXLY_CORRECT says), words in a->words.
 * -1: go on; otherwise the exit code.
 */
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
		{ "service", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct { int opt; unsigned bit; } bits[] = {
		{ 'c', O_CONFIG }, { 'j', O_JSON }, { 'l', O_LEVEL },
		{ 'f', O_FORMAT }, { 'h', O_HELP }, { 'V', O_VERSION },
		{ 'a', O_API },    { 't', O_TOKEN }, { 'r', O_REASON },
		{ 's', O_SERVICE },
	};
	int opt;
	size_t i;

	opterr = 0;
	for (;;) {
		int before = optind;

		opt = getopt_long(argc, argv, "-:c:hV", longopts, NULL);
		if (opt == -1)
			break;
		if (opt == 1) {
			if (a->n_words == HR_ARRAY_SIZE(a->words)) {
				fprintf(stderr, "healthreg: unexpected argument '%s'\n",
					optarg);
				return HR_EXIT_USAGE;
			}
			a->words[a->n_words++] = optarg;
			continue;
		}
		if (opt == '?' || opt == ':') {
			fprintf(stderr, "healthreg: %s option '%s' (healthreg help lists the options)\n",
				opt == ':' ? "a value is missing after the"
					   : "unknown",
				argv[optind - 1]);
			return HR_EXIT_USAGE;
		}
		for (i = 0; i < HR_ARRAY_SIZE(bits); i++) {
			if (bits[i].opt != opt)
				continue;
			a->seen |= bits[i].bit;
			a->seen_as[optdoc_index(bits[i].bit)] =
				argv[before < argc ? before : argc - 1];
		}
		switch (opt) {
		case 'c':
			a->path = optarg;
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
		case 's':
			a->service = optarg;
			break;
		default:
			break;
		}
	}
	/* After "--": words only. */
	for (; optind < argc; optind++) {
		if (a->n_words == HR_ARRAY_SIZE(a->words)) {
			fprintf(stderr, "healthreg: unexpected argument '%s'\n",
				argv[optind]);
			return HR_EXIT_USAGE;
		}
		a->words[a->n_words++] = argv[optind];
	}
	return -1;
}

/* The log options' values, checked for every command. */
static int log_settings(const struct args *a, int *lvl, enum hr_log_format *fmt)
{
	if (a->level && hr_log_level_parse(a->level, lvl)) {
		fprintf(stderr, "healthreg: --log-level: '%s' is not error, warn, info or debug\n",
			a->level);
		return HR_EXIT_USAGE;
	}
	if (a->format && !strcmp(a->format, "json")) {
		*fmt = HR_LOG_JSON;
	} else if (a->format && !strcmp(a->format, "logfmt")) {
		*fmt = HR_LOG_LOGFMT;
	} else if (a->format) {
		fprintf(stderr, "healthreg: --log-format: '%s' is not logfmt or json\n",
			a->format);
		return HR_EXIT_USAGE;
	}
	return 0;
}

/* Is w one of the "|"-separated words of list? */
static bool word_in(const char *list, const char *w)
{
	size_t n = strlen(w);

	while (*list) {
		size_t k = strcspn(list, "|");

		if (k == n && !strncmp(list, w, n))
			return true;
		list += k + (list[k] == '|');
	}
	return false;
}

/* The words and options fit the command; 0 or HR_EXIT_USAGE. */
static int check_usage(const struct command *c, const struct args *a)
{
	unsigned extra = a->seen & ~(c->opts | O_GLOBAL);
	size_t i, words = c->words ? 2 : 1;
	/* "[WORD]": one optional word of the caller's (why's SERVICE). */
	bool free_word = c->words && c->words[0] == '[';

	for (i = 0; extra && i < HR_ARRAY_SIZE(optdocs); i++) {
		if (!(extra & optdocs[i].bit))
			continue;
		fprintf(stderr, "healthreg: %s does not take '%s' (healthreg help %s)\n",
			c->name, a->seen_as[i], c->name);
		return HR_EXIT_USAGE;
	}
	if (c->self)
		return 0; /* help and version check their own words */
	if (c->words && !free_word && a->n_words < 2) {
		fprintf(stderr, "healthreg: %s needs %s (healthreg help %s)\n",
			c->name, c->words, c->name);
		return HR_EXIT_USAGE;
	}
	if (c->words && !free_word && !word_in(c->words, a->words[1])) {
		fprintf(stderr, "healthreg: %s: '%s' is not %s\n", c->name,
			a->words[1], c->words);
		return HR_EXIT_USAGE;
	}
	if (a->n_words > words) {
		fprintf(stderr, "healthreg: unexpected argument '%s'\n",
			a->words[words]);
		return HR_EXIT_USAGE;
	}
	if (c->local && !a->path) {
		fprintf(stderr, "healthreg: %s needs -c FILE\n", c->name);
		return HR_EXIT_USAGE;
	}
	return 0;
}

/* The config's log settings, overridden by --log-level / --log-format. */
static void setup_log(const struct command *c, const struct hr_config *cfg,
		      const struct args *a)
{
	int lvl = cfg->log_level;
	enum hr_log_format fmt = cfg->log_format;

	log_settings(a, &lvl, &fmt); /* checked before */
	/* check prints its own report; keep its log quiet unless asked. */
	if (!strcmp(c->name, "check") && !a->level)
		lvl = HR_LOG_ERROR;
	hr_log_setup(lvl, fmt, stderr);
}

static int run_local(const struct command *c, const struct args *a)
{
	struct hr_config *cfg = NULL;
	int rc;

	rc = hr_agent_load_config(a->path, c->load, &cfg);
	if (rc)
		return rc;
	setup_log(c, cfg, a);
	if (hr_exec_env_set((const char *const *)cfg->exec_env))
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
	const struct command *c = NULL;
	enum hr_log_format fmt = HR_LOG_LOGFMT;
	int rc, lvl = HR_LOG_INFO;

	memset(&a, 0, sizeof(a));
	rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.n_words) {
		c = find_command(a.words[0]);
		if (!c) {
			fprintf(stderr, "healthreg: unknown command '%s' (healthreg help lists them)\n",
				a.words[0]);
			return HR_EXIT_USAGE;
		}
	}
	if (a.seen & O_VERSION)
		return cmd_version(&a);
	if (a.seen & O_HELP) {
		if (c && c->self == cmd_help)
			return cmd_help(&a);
		if (c)
			command_usage(stdout, c);
		else
			usage(stdout);
		return HR_EXIT_OK;
	}
	if (!c) {
		usage(stderr);
		return HR_EXIT_USAGE;
	}
	rc = check_usage(c, &a);
	if (!rc)
		rc = log_settings(&a, &lvl, &fmt);
	if (rc)
		return rc;
	if (c->self)
		return c->self(&a);
	if (c->client) {
		struct hr_client_opts co = { a.api, a.path, a.token_file,
					     (a.seen & O_JSON) != 0 };

		curl_global_init(CURL_GLOBAL_DEFAULT);
		return c->client(&co, &a);
	}
	return run_local(c, &a);
}
