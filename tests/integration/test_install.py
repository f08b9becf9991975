"""cmake --install installs a usable package (issue 13).

From the ctest build directory (HR_BUILD_DIR) into a fresh temporary
prefix: the binary, libhealthreg (shared and static), the public headers,
pkg-config files, the CMake package, the systemd unit and the man pages.
Then the way a user would consume it: docs/examples/embed.c built with the
very lines of its own comment (pkg-config, shared and static), and with
find_package(healthreg) in a small CMake project, and each program run."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import hrtest

BUILD_DIR = os.environ.get("HR_BUILD_DIR", "")
EMBED = os.path.join(hrtest.SOURCE_DIR, "docs", "examples", "embed.c")
PASSING = "aggregate: passing (2 passing)"

CMAKE_PROJECT = """\
cmake_minimum_required(VERSION 3.18)
project(embed_consumer LANGUAGES C)
find_package(healthreg %s REQUIRED)
add_executable(embed_shared %s)
target_link_libraries(embed_shared PRIVATE healthreg::healthreg)
add_executable(embed_static %s)
target_link_libraries(embed_static PRIVATE healthreg::healthreg_static)
"""


def cmake_cache(var):
    """A value from the build directory's CMakeCache.txt, or ''."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"%s:[A-Z]+=(.*)$" % re.escape(var), line.rstrip("\n"))
            if m:
                return m.group(1)
    return ""


def project_version():
    with open(os.path.join(hrtest.SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(healthreg VERSION ([0-9.]+)", f.read())
    return m.group(1)


@unittest.skipUnless(BUILD_DIR, "HR_BUILD_DIR not set (run through ctest)")
class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hr-install-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        p = subprocess.run(["cmake", "--install", BUILD_DIR,
                            "--prefix", cls.prefix],
                           capture_output=True, text=True, timeout=120)
        if p.returncode:
            shutil.rmtree(cls.tmp)
            raise AssertionError("cmake --install failed:\n" + p.stdout +
                                 p.stderr)
        cls.libdir = os.path.join(cls.prefix, cmake_cache("CMAKE_INSTALL_LIBDIR")
                                  or "lib")
        cls.env = dict(os.environ)
        cls.env["PKG_CONFIG_PATH"] = os.path.join(cls.libdir, "pkgconfig")
        cls.env["LD_LIBRARY_PATH"] = cls.libdir
        # A sanitized build installs sanitized libraries.
        if cmake_cache("HR_SANITIZE") in ("ON", "TRUE", "1"):
            cls.env["CFLAGS"] = "-fsanitize=address,undefined"
            cls.env["LSAN_OPTIONS"] = "detect_leaks=0"
        else:
            cls.env["CFLAGS"] = ""

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.prefix, rel)

    def test_files(self):
        lib = os.path.relpath(self.libdir, self.prefix)
        for rel in ["bin/healthreg",
                    lib + "/libhealthreg.a",
                    lib + "/libhealthreg.so",
                    lib + "/libhealthreg.so." + project_version(),
                    "include/healthreg/aggregator.h",
                    "include/healthreg/status.h",
                    lib + "/pkgconfig/healthreg.pc",
                    lib + "/pkgconfig/healthreg-static.pc",
                    lib + "/cmake/healthreg/healthregConfig.cmake",
                    lib + "/cmake/healthreg/healthregConfigVersion.cmake",
                    lib + "/cmake/healthreg/healthregTargets.cmake",
                    "lib/systemd/system/healthreg.service",
                    "share/man/man1/healthreg.1",
                    "share/man/man5/healthreg.json.5",
                    "share/bash-completion/completions/healthreg",
                    "share/doc/healthreg/operations.md"]:
            self.assertTrue(os.path.isfile(self.path(rel)), rel)
        self.assertTrue(os.access(self.path("bin/healthreg"), os.X_OK))
        # Only the public headers; nothing of lib/*.h.
        self.assertFalse(os.path.exists(self.path("include/healthreg/internal.h")))
        self.assertFalse(os.path.exists(self.path("include/internal.h")))

    def test_one_version(self):
        v = project_version()
        out = subprocess.run([self.path("bin/healthreg"), "--version"],
                             capture_output=True, text=True, env=self.env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("healthreg " + v, out.stdout)
        pc = subprocess.run(["pkg-config", "--modversion", "healthreg",
                             "healthreg-static"],
                            capture_output=True, text=True, env=self.env)
        self.assertEqual(pc.returncode, 0, pc.stderr)
        self.assertEqual(pc.stdout.split(), [v, v])
        with open(os.path.join(self.libdir, "cmake", "healthreg",
                               "healthregConfigVersion.cmake")) as f:
            self.assertIn('set(PACKAGE_VERSION "%s")' % v, f.read())
        for page in ("man1/healthreg.1", "man5/healthreg.json.5"):
            with open(self.path("share/man/" + page)) as f:
                th = [ln for ln in f if ln.startswith(".TH ")]
            self.assertEqual(len(th), 1, page)
            self.assertIn('"healthreg %s"' % v, th[0])

    def test_shared_library_exports_public_api_only(self):
        so = os.path.join(self.libdir, "libhealthreg.so")
        nm = subprocess.run(["nm", "-D", "--defined-only", so],
                            capture_output=True, text=True, check=True)
        names = [ln.split()[-1] for ln in nm.stdout.splitlines()
                 if len(ln.split()) == 3]
        self.assertIn("hr_agg_new", names)
        self.assertEqual([n for n in names if not n.startswith("hr_")
                          or n.startswith("hr__")], [])

    def test_unit_points_at_the_installed_binary(self):
        with open(self.path("lib/systemd/system/healthreg.service")) as f:
            unit = f.read()
        exe = self.path("bin/healthreg")
        self.assertIn("ExecStart=%s run -c " % exe, unit)
        self.assertIn("ExecStartPre=%s validate -c " % exe, unit)
        self.assertNotIn("/usr/local/bin", unit)
        self.assertIn("Documentation=man:healthreg(1)", unit)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "no systemd-analyze")
    def test_installed_unit_verifies(self):
        """systemd-analyze finds the binary and both man pages it names."""
        env = dict(self.env, MANPATH=self.path("share/man"))
        r = subprocess.run(["systemd-analyze", "verify",
                            self.path("lib/systemd/system/healthreg.service")],
                           capture_output=True, text=True, env=env,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = [ln for ln in r.stderr.splitlines()
               if ("man" in ln or "Unknown" in ln or "Invalid" in ln)
               and "system call" not in ln]
        self.assertEqual(bad, [], r.stderr)

    def test_man_pages_render_without_warnings(self):
        env = dict(self.env, MANWIDTH="80", MANPAGER="cat", PAGER="cat",
                   LC_ALL="C.UTF-8")
        for page, words in [("share/man/man1/healthreg.1",
                             ["SYNOPSIS", "COMMANDS", "validate", "maint",
                              "--api", "--token-file", "EXIT STATUS",
                              "HEALTHREG_API_TOKEN"]),
                            ("share/man/man5/healthreg.json.5",
                             ["failures_before_critical", "api_listen",
                              "min_passing", "lease_ttl", "token_file",
                              "exec_env", "interval_down"])]:
            p = subprocess.run(["man", "--warnings", "-l", self.path(page)],
                               capture_output=True, text=True, env=env,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "", page)
            text = re.sub(r".\x08", "", p.stdout)
            for w in words:
                self.assertIn(w, text, page)
            self.assertFalse([ln for ln in text.splitlines()
                              if len(ln) > 80], page)

    def rendered(self, page):
        env = dict(self.env, MANWIDTH="80", MANPAGER="cat", PAGER="cat",
                   LC_ALL="C.UTF-8")
        p = subprocess.run(["man", "-l", self.path(page)], capture_output=True,
                           text=True, env=env, timeout=60)
        return re.sub(r".\x08", "", p.stdout)

    def test_healthreg_1_names_every_command_and_option(self):
        """Whatever `healthreg --help` and `healthreg help COMMAND` list
        is in the man page."""
        def helptext(*args):
            p = subprocess.run([self.path("bin/healthreg")] + list(args),
                               capture_output=True, text=True, env=self.env)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout
        text = helptext("--help")
        commands = set(re.findall(r"^  ([a-z]+)\b",
                                  text.split("\nglobal options")[0], re.M))
        self.assertIn("maint", commands)
        for c in sorted(commands):
            text += helptext("help", c)
        words = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", text))
        words |= commands
        self.assertIn("--token-file", words)
        self.assertIn("maint", words)
        page = self.rendered("share/man/man1/healthreg.1")
        missing = sorted(w for w in words
                         if not re.search(r"(?<![\w-])%s(?![\w-])"
                                          % re.escape(w), page))
        self.assertEqual(missing, [])

    def test_healthreg_json_5_names_every_config_key(self):
        """Every key of the docs' config tables is in the man page."""
        keys = set()
        for doc in ("configuration.md", "consul.md", "etcd.md"):
            with open(os.path.join(hrtest.SOURCE_DIR, "docs", doc)) as f:
                text = f.read()
            if doc != "configuration.md":
                text = text[text.index("## Configuration"):]
                text = text[:text.index("\n## ", 10)]
            for first in re.findall(r"^\| ([^|]+) \|", text, re.M):
                keys |= set(re.findall(r"`([a-z_]+)`", first))
        self.assertIn("failures_before_critical", keys)
        self.assertIn("lease_ttl", keys)
        self.assertIn("check_ttl", keys)
        page = self.rendered("share/man/man5/healthreg.json.5")
        missing = sorted(k for k in keys
                         if not re.search(r"\b%s\b" % re.escape(k), page))
        self.assertEqual(missing, [])

    def run_embed(self, exe):
        p = subprocess.run([exe], capture_output=True, text=True,
                           env=self.env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(PASSING, p.stdout)

    def test_embed_with_pkg_config(self):
        """The build lines of embed.c's own comment, as written."""
        with open(EMBED) as f:
            lines = [m.group(1) for m in
                     re.finditer(r"^ \*   (cc embed\.c .*)$", f.read(), re.M)]
        self.assertEqual(len(lines), 2, "embed.c lost its build lines")
        work = os.path.join(self.tmp, "pc")
        os.makedirs(work)
        shutil.copy(EMBED, work)
        for line, lib in zip(lines, ["libhealthreg.so", "libhealthreg.a"]):
            self.assertIn("-o embed", line)
            cmd = line + " $CFLAGS"
            p = subprocess.run(["sh", "-c", cmd], cwd=work,
                               capture_output=True, text=True, env=self.env,
                               timeout=120)
            self.assertEqual(p.returncode, 0, cmd + "\n" + p.stderr)
            exe = os.path.join(work, "embed")
            ldd = subprocess.run(["ldd", exe], capture_output=True,
                                 text=True, env=self.env)
            shared = "libhealthreg.so" in ldd.stdout
            self.assertEqual(shared, lib == "libhealthreg.so", ldd.stdout)
            self.run_embed(exe)
            os.unlink(exe)

    def test_embed_with_find_package(self):
        src = os.path.join(self.tmp, "cm")
        build = os.path.join(self.tmp, "cm-build")
        os.makedirs(src)
        shutil.copy(EMBED, src)
        v = ".".join(project_version().split(".")[:2])
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write(CMAKE_PROJECT % (v, "embed.c", "embed.c"))
        flags = self.env["CFLAGS"]
        for cmd in (["cmake", "-S", src, "-B", build,
                     "-DCMAKE_PREFIX_PATH=" + self.prefix,
                     "-DCMAKE_C_FLAGS=" + flags,
                     "-DCMAKE_EXE_LINKER_FLAGS=" + flags],
                    ["cmake", "--build", build]):
            env = dict(self.env)
            env.pop("PKG_CONFIG_PATH")  # found through the package alone
            env.pop("LD_LIBRARY_PATH")  # CMake's build RPATH
            p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        env = dict(self.env)
        env.pop("LD_LIBRARY_PATH")
        for name, shared in [("embed_shared", True), ("embed_static", False)]:
            exe = os.path.join(build, name)
            ldd = subprocess.run(["ldd", exe], capture_output=True,
                                 text=True, env=env)
            self.assertEqual("libhealthreg.so" in ldd.stdout, shared,
                             ldd.stdout)
            p = subprocess.run([exe], capture_output=True, text=True,
                               env=env, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(PASSING, p.stdout)

    def test_find_package_refuses_a_newer_minor(self):
        """0.x: a request for the next minor version is not satisfied."""
        src = os.path.join(self.tmp, "cm-new")
        os.makedirs(src)
        major, minor = project_version().split(".")[:2]
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.18)\n"
                    "project(p LANGUAGES C)\n"
                    "find_package(healthreg %s.%d REQUIRED)\n"
                    % (major, int(minor) + 1))
        p = subprocess.run(["cmake", "-S", src, "-B", src + "/b",
                            "-DCMAKE_PREFIX_PATH=" + self.prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("healthreg", p.stderr)


if __name__ == "__main__":
    unittest.main()
