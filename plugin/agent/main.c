/*
 * main.c - the healthreg command line: run, check, validate.
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
#include "healthreg/log.h"

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

int main(int argc, char **argv)
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
	const char *cmd = NULL, *path = NULL, *level = NULL, *format = NULL;
	const char *api = NULL, *token_file = NULL, *reason = NULL, *sub = NULL;
	struct hr_config *cfg = NULL;
	int json = 0, opt, rc, lvl;
	enum hr_log_format fmt;

	if (argc >= 2 && argv[1][0] != '-') {
		cmd = argv[1];
		argv[1] = argv[0];
		argv++;
		argc--;
		if (!strcmp(cmd, "maint") && argc >= 2 && argv[1][0] != '-') {
			sub = argv[1];
			argv[1] = argv[0];
			argv++;
			argc--;
		}
	}
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, "c:hV", longopts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'l':
			level = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'a':
			api = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'r':
			reason = optarg;
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
	if (!cmd) {
		usage(stderr);
		return HR_EXIT_USAGE;
	}
	if (!strcmp(cmd, "status") || !strcmp(cmd, "maint") ||
	    !strcmp(cmd, "reload")) {
		struct hr_client_opts co = { api, path, token_file, json != 0 };

		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (!strcmp(cmd, "status"))
			return hr_client_status(&co);
		if (!strcmp(cmd, "reload"))
			return hr_client_reload(&co);
		if (sub && !strcmp(sub, "enable")) {
			if (!reason) {
				fprintf(stderr, "healthreg: maint enable needs --reason TEXT\n");
				return HR_EXIT_USAGE;
			}
			return hr_client_maint(&co, true, reason);
		}
		if (sub && !strcmp(sub, "disable"))
			return hr_client_maint(&co, false, "");
		fprintf(stderr, "healthreg: maint needs enable --reason TEXT or disable\n");
		return HR_EXIT_USAGE;
	}
	if (api || token_file || reason) {
		fprintf(stderr, "healthreg: --api, --token-file and --reason apply to status, maint and reload\n");
		return HR_EXIT_USAGE;
	}
	if (strcmp(cmd, "run") && strcmp(cmd, "check") && strcmp(cmd, "validate")) {
		fprintf(stderr, "healthreg: unknown command '%s'\n", cmd);
		usage(stderr);
		return HR_EXIT_USAGE;
	}
	if (!path) {
		fprintf(stderr, "healthreg: %s needs -c FILE\n", cmd);
		return HR_EXIT_USAGE;
	}
	if (json && strcmp(cmd, "check")) {
		fprintf(stderr, "healthreg: --json applies to check and status only\n");
		return HR_EXIT_USAGE;
	}
	rc = hr_agent_load_config(path, &cfg);
	if (rc)
		return rc;
	lvl = cfg->log_level;
	fmt = cfg->log_format;
	if (level && hr_log_level_parse(level, &lvl)) {
		fprintf(stderr, "healthreg: --log-level: '%s' is not error, warn, info or debug\n",
			level);
		hr_config_free(cfg);
		return HR_EXIT_USAGE;
	}
	if (format) {
		if (!strcmp(format, "json")) {
			fmt = HR_LOG_JSON;
		} else if (!strcmp(format, "logfmt")) {
			fmt = HR_LOG_LOGFMT;
		} else {
			fprintf(stderr, "healthreg: --log-format: '%s' is not logfmt or json\n",
				format);
			hr_config_free(cfg);
			return HR_EXIT_USAGE;
		}
	}
	/* check prints its own report; keep its log quiet unless asked. */
	if (!strcmp(cmd, "check") && !level)
		lvl = HR_LOG_ERROR;
	hr_log_setup(lvl, fmt, stderr);
	if (!strcmp(cmd, "validate")) {
		printf("%s: valid (%zu check%s, %zu group%s)\n", path,
		       cfg->n_checks, cfg->n_checks == 1 ? "" : "s",
		       cfg->n_groups, cfg->n_groups == 1 ? "" : "s");
		rc = HR_EXIT_OK;
	} else if (!strcmp(cmd, "check")) {
		rc = hr_agent_check_once(cfg, json);
	} else {
		rc = hr_agent_run(path, cfg);
		cfg = NULL; /* owned by the agent */
	}
	hr_config_free(cfg);
	return rc;
}
