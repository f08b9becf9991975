/* The exec children's environment allow-list (healthreg/exec.h). */
#include <criterion/criterion.h>
#include <stddef.h>

#include "healthreg/exec.h"

Test(exec_env, default_list)
{
	static const char *const pass[] = {
		"PATH=/bin", "HOME=/root", "LANG=C", "LC_ALL=C", "LC_TIME=x",
		"TZ=UTC", "USER=u", "LOGNAME=u", "TMPDIR=/tmp",
	};
	static const char *const keep_out[] = {
		"CONSUL_HTTP_TOKEN=t", "CONSUL_HTTP_ADDR=a", "ETCD_PASSWORD=p",
		"ETCD_USERNAME=u", "NOTIFY_SOCKET=/run/n", "LC_API_KEY=k",
		"LC_token=k", "PATHX=1", "PAT=1", "SHELL=/bin/sh",
		"HR_ALLOW_INSECURE_SECRETS=1", "AWS_SECRET_ACCESS_KEY=s",
	};
	size_t i;

	cr_assert_eq(hr_exec_env_set(NULL), 0);
	for (i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
		cr_assert(hr_exec_env_allowed(pass[i]), "%s", pass[i]);
	for (i = 0; i < sizeof(keep_out) / sizeof(keep_out[0]); i++)
		cr_assert_not(hr_exec_env_allowed(keep_out[i]), "%s", keep_out[i]);
}

Test(exec_env, configured_list)
{
	static const char *const list[] = { "*", "ETCD_PASSWORD", "MY_KEY",
					    NULL };
	static const char *const none[] = { NULL };

	cr_assert_eq(hr_exec_env_set(list), 0);
	cr_assert(hr_exec_env_allowed("ANYTHING=1"));
	cr_assert(hr_exec_env_allowed("SHELL=/bin/sh"));
	cr_assert(hr_exec_env_allowed("ETCD_PASSWORD=p"));  /* named */
	cr_assert(hr_exec_env_allowed("MY_KEY=k"));         /* named */
	cr_assert_not(hr_exec_env_allowed("ETCD_USERNAME=u"));
	cr_assert_not(hr_exec_env_allowed("MY_KEYS=k"));
	cr_assert_not(hr_exec_env_allowed("GITHUB_TOKEN=t"));
	cr_assert_not(hr_exec_env_allowed("db_password=t"));
	cr_assert_not(hr_exec_env_allowed("CONSUL_HTTP_SSL=1"));
	cr_assert_not(hr_exec_env_allowed("NOTIFY_SOCKET=/run/n"));
	cr_assert_eq(hr_exec_env_set(none), 0);
	cr_assert_not(hr_exec_env_allowed("PATH=/bin"));
	cr_assert_eq(hr_exec_env_set(NULL), 0);
	cr_assert(hr_exec_env_allowed("PATH=/bin"));
}
