"""Consul gRPC check definitions drop in (issue 13, blocker 2, gRPC part).

NOT RUN YET: ctest picks up test_*.py only. The grpc check kind is added
on another branch; when it is merged, rename this file to
test_consul_definitions_grpc.py. Until then `healthreg validate` answers
these definitions with 'check kind "grpc" is not supported'.

Each file of tests/fixtures/consul-defs-grpc (Consul's documented gRPC
check, and the same in the API's CamelCase) must validate without a
warning for "grpc"/"GRPC" or "grpc_use_tls"/"GRPCUseTLS" (the keys are
matched case-insensitively and without underscores, like every key), and
come out as one check of kind grpc under the name Consul's rules give it.
"""
import glob
import json
import os
import unittest

import hrtest

FIXTURES = os.path.join(hrtest.SOURCE_DIR, "tests", "fixtures",
                        "consul-defs-grpc")

EXPECTED = {
    "grpc-service.json": [("Service health status", "grpc")],
    "grpc-camelcase.json": [("service:billing", "grpc")],
}


class TestConsulGrpcDefinitions(unittest.TestCase):
    def test_every_fixture_is_asserted(self):
        files = sorted(os.path.basename(p) for p in
                       glob.glob(os.path.join(FIXTURES, "*.json")))
        self.assertEqual(files, sorted(EXPECTED))

    def test_validate_each(self):
        for name, checks in sorted(EXPECTED.items()):
            with self.subTest(fixture=name):
                p = hrtest.run(["validate", "-c", os.path.join(FIXTURES, name)])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertNotIn("warning:", p.stderr)
                self.assertIn("valid (%d check" % len(checks), p.stdout)

    def test_names_and_kinds(self):
        """Nothing listens on the port: each check runs and is critical,
        under its name and kind."""
        for name, checks in sorted(EXPECTED.items()):
            with self.subTest(fixture=name):
                with open(os.path.join(FIXTURES, name)) as f:
                    doc = json.load(f)
                rc, out, err = hrtest.check_json(doc)
                self.assertIsNotNone(out, err)
                self.assertEqual([(c["name"], c["kind"]) for c in out["checks"]],
                                 checks, err)


if __name__ == "__main__":
    unittest.main()
