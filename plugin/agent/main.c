/*
 * main.c - the healthreg command line: run, check, validate.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "backends.h"
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
		"options:\n"
		"  -c, --config FILE  the JSON config file\n"
		"  --log-level LEVEL  error, warn, info (default) or debug\n"
		"  --log-format FMT   logfmt (default) or json\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"exit codes: 0 ok/passing, 1 warning, 2 critical, 64 usage error,\n"
		"            70 internal error, 78 config error\n"
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
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = NULL, *path = NULL, *level = NULL, *format = NULL;
	struct hr_config *cfg = NULL;
	int json = 0, opt, rc, lvl;
	enum hr_log_format fmt;

	if (argc >= 2 && argv[1][0] != '-') {
		cmd = argv[1];
		argv[1] = argv[0];
		argv++;
		argc--;
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
		fprintf(stderr, "healthreg: --json applies to check only\n");
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
