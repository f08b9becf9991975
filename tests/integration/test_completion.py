"""Bash completion (contrib/completion/healthreg.bash, issue 13): sourced in
bash, it completes the commands, each command's options exactly as the
binary's own `healthreg help COMMAND` lists them (so the two cannot drift
apart), maint's words, option values and file names."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import hrtest

SCRIPT = os.path.join(hrtest.SOURCE_DIR, "contrib", "completion", "healthreg.bash")
BASH = shutil.which("bash")


def help_options(text):
    """Long and short options of a help text's option lines."""
    out = set()
    for m in re.finditer(r"^  (?:(-\w), )?(--[a-z-]+)", text, re.M):
        out.update(x for x in m.groups() if x)
    return out


@unittest.skipUnless(BASH, "no bash")
class TestCompletion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="hr-compl-")
        for name in ("web.json", "web.token", "other.txt"):
            open(os.path.join(cls.dir, name), "w").close()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def complete(self, line):
        """COMPREPLY for the command line `line` (the cursor at its end),
        as bash fills COMP_WORDS (an "=" is a word of its own)."""
        words = line.replace("=", " = ").split(" ")
        script = ('source "$1"; shift; COMP_WORDS=("$@"); '
                  'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _healthreg; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')
        p = subprocess.run([BASH, "--norc", "--noprofile", "-c", script, "bash",
                            SCRIPT] + words, capture_output=True, text=True,
                           cwd=self.dir, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        return set(l for l in p.stdout.splitlines() if l)

    def commands(self):
        text = hrtest.run(["help"]).stdout.split("\nglobal options")[0]
        return set(re.findall(r"^  ([a-z]+)\b", text, re.M))

    def options_of(self, cmd):
        text = hrtest.run(["help", cmd]).stdout
        return help_options(text.split("\noptions:\n")[1]) if "\noptions:\n" in text else set()

    def test_registered(self):
        p = subprocess.run([BASH, "--norc", "--noprofile", "-c",
                            'source "$1"; complete -p healthreg', "bash", SCRIPT],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.stdout.strip(), "complete -F _healthreg healthreg")

    def test_commands(self):
        cmds = self.commands()
        self.assertGreaterEqual(len(cmds), 8)
        self.assertEqual(self.complete("healthreg "), cmds)
        self.assertEqual(self.complete("healthreg st"), {"status"})
        self.assertEqual(self.complete("healthreg help "), cmds)
        self.assertEqual(self.complete("healthreg re"), {"reload"})
        # a global option (and its value) before the command
        self.assertEqual(self.complete("healthreg --log-level debug ch"), {"check"})
        self.assertEqual(self.complete("healthreg --log-level=debug va"), {"validate"})

    def test_each_commands_options_match_its_help(self):
        glob = help_options(hrtest.run(["help"]).stdout.split("\nglobal options")[1])
        self.assertEqual(self.complete("healthreg -"), glob)
        for cmd in self.commands() - {"help", "maint"}:
            with self.subTest(cmd=cmd):
                self.assertEqual(self.complete("healthreg %s -" % cmd),
                                 self.options_of(cmd) | glob)
                # after another option too, and with the option first
                self.assertEqual(self.complete("healthreg --log-level info %s -" % cmd),
                                 self.options_of(cmd) | glob)
        maint = self.options_of("maint")
        self.assertEqual(self.complete("healthreg maint enable -"), maint | glob)
        self.assertEqual(self.complete("healthreg maint disable --"),
                         set(o for o in (maint - {"--reason"}) | glob
                             if o.startswith("--")))

    def test_maint_words(self):
        self.assertEqual(self.complete("healthreg maint "), {"enable", "disable"})
        self.assertEqual(self.complete("healthreg maint --api 9190 e"), {"enable"})
        self.assertEqual(self.complete("healthreg maint enable "), set())

    def test_values(self):
        self.assertEqual(self.complete("healthreg check --log-level "),
                         {"error", "warn", "info", "debug"})
        self.assertEqual(self.complete("healthreg --log-format "), {"logfmt", "json"})
        self.assertEqual(self.complete("healthreg --log-format=j"), {"json"})
        self.assertEqual(self.complete("healthreg run -c web"), {"web.json", "web.token"})
        self.assertEqual(self.complete("healthreg status --token-file web.t"),
                         {"web.token"})
        self.assertEqual(self.complete("healthreg status --api "), set())


if __name__ == "__main__":
    unittest.main()
