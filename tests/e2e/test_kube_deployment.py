"""--kube-deployment: an Infra installation made by its Helm chart (app v0.15 – v0.19), named by
its Deployment alone, reached from a laptop through an exec credential plugin, its bundled
PostgreSQL played by the suite's (after a `kubectl port-forward`, so --db-url says only where).

The kube peer serves the chart's objects as tests/fixtures/helm renders them; the database, the
user and the password come from the Deployment (the ConfigMap's dbName/dbUsername, the
INFRA_SERVER_DB_PASSWORD secretKeyRef), never from the test's environment."""
import base64
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import unittest

import yaml

import infra
from harness import BACKEND, BIN, E2E, EXIT, ROOT, assert_no_sanitizer_report

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers"))
import peerlib  # noqa: E402

NS = "infra"
DEPLOYMENT = f"{NS}/infra-server"
KEY_SECRET = "infra-server-encryption-key"
KEY_PATH = "/var/run/secrets/infrahq.com/encryption-key/key"
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "helm")
PASSPHRASE = "correct horse battery staple\n"
# app version → (chart version, ConfigMap template): the chart rendered three config shapes.
# Chart versions as the chart's Chart.yaml bumps set them (infrahq/infra fa5a64fbe, feef83e1b, 19d19f8ad).
CHART_RELEASES = {"0.15.0": ("0.20.0", "server-configmap-v0.15.0.yaml"),
                  "0.15.2": ("0.20.4", "server-configmap-v0.15.2.yaml"),
                  "0.19.0": ("0.20.9", "server-configmap-v0.19.0.yaml")}


def chart_root_key():
    """As the chart makes it: randAlphaNum 32, used as the 32 key bytes as they are."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32)).encode()


def render(name, **values):
    with open(os.path.join(FIXTURES, name)) as f:
        objects = "".join(line for line in f if not line.startswith("#"))   # comments name the placeholders
    text = string.Template(objects).substitute(values)
    return [doc for doc in yaml.safe_load_all(text) if doc]


@unittest.skipUnless(BACKEND == "postgres", "needs INFRA_KEYS_TEST_DB=postgres (tests/pg/with-postgres)")
class KubeDeploymentTest(E2E):
    def setUp(self):
        super().setUp()
        self.kube = peerlib.kube()
        self.addCleanup(self.kube.close)
        # The plugin's files live outside the installation, whose every file the state compares.
        self.client_dir = tempfile.mkdtemp(prefix="infra-keys-kubectl-")
        self.addCleanup(shutil.rmtree, self.client_dir, True)
        token_file = os.path.join(self.client_dir, "exec-token")
        with open(token_file, "w") as f:
            f.write(self.kube.token)
        self.calls_file = os.path.join(self.client_dir, "exec-calls")
        self.kubeconfig = self.kube.write_exec_kubeconfig(
            os.path.join(self.client_dir, "kubeconfig"), token_file, extra_args=["--calls", self.calls_file])
        admin = dict(part.split("=", 1) for part in os.environ["INFRA_KEYS_TEST_PG"].split())
        self.db_url = f"host={admin['host']} port={admin['port']}"   # where a port-forward listens
        self.values = {"namespace": NS, "db_name": self.inst.db.name, "db_user": admin["user"],
                       "rollme": "0" * 40, "db_encryption_key": KEY_PATH, "passed_through": ""}
        self.root_key = chart_root_key()
        self.inst.seed(values_per_column=5, wrap=lambda db_key: (
            infra.seal(self.root_key, db_key, infra.EMPTY_KEY_ID, "").encode(), "aesgcm", KEY_PATH))

    def install_chart(self, app_version="0.19.0", **overrides):
        """The objects `helm install infra` of that app version leaves in namespace infra."""
        chart_version, configmap = CHART_RELEASES[app_version]
        values = dict(self.values, app_version=app_version, chart_version=chart_version,
                      root_key_base64=base64.b64encode(self.root_key).decode(),
                      db_password_base64=base64.b64encode(os.environ["INFRA_KEYS_TEST_PG_PASSWORD"].encode()).decode(),
                      **overrides)
        for secret in render("secrets.yaml", **values):
            meta = secret["metadata"]
            self.kube.put_secret(NS, meta["name"], {k: base64.b64decode(v) for k, v in secret["data"].items()},
                                 labels=meta.get("labels"), annotations=meta.get("annotations"))
        for obj in render(configmap, **values):
            self.kube.put_object("configmaps", NS, obj)
        for obj in render("server-deployment.yaml", **values):
            self.kube.put_object("deployments", NS, obj)

    def ik(self, *args, db_url=True):
        """The binary as an operator runs it: no config, no PGPASSWORD, HOME without ~/.pgpass."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("INFRA_SERVER_", "INFRA_KEYS_CONFIG", "PG"))}
        env.update(HOME=self.inst.dir, KUBECONFIG=self.kubeconfig, INFRA_KEYS_HTTP_RETRY_BASE_MS="5")
        argv = [BIN, "--kube-deployment", DEPLOYMENT] + (["--db-url", self.db_url] if db_url else []) + list(args)
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert_no_sanitizer_report(result.stderr)
        return result

    def plugin_runs(self):
        """Runs of the exec plugin since the last call of this method."""
        return peerlib.take_count(self.calls_file)

    def key_secret(self):
        return self.kube.get_secret(NS, KEY_SECRET) or {}

    def state(self):
        return self.inst.snapshot() + repr(sorted(self.kube.dump()["secrets"].items()))

    def assertAllDecrypt(self, root_key):
        db_key = infra.unseal(root_key, self.inst.db_key_row()["encrypted"].decode(), infra.EMPTY_KEY_ID)
        self.assertEqual(db_key, self.inst.db_key)
        self.assertEqual(self.inst.decrypt_all(db_key=db_key), self.inst.plaintexts)

    def assertRefused(self, result, code, *names):
        """One line naming the object, the documented exit code."""
        self.assertEqual(result.returncode, EXIT[code], result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertTrue(lines and lines[0].startswith("infra-keys: "), result.stderr)
        self.assertTrue(all(line.startswith("infra-keys: hint: ") for line in lines[1:]), result.stderr)
        for name in names:
            self.assertIn(name, lines[0])

    # --- the chart's installation, release by release ----------------------------------------
    def test_verify_backup_rotate_and_restore_for_each_chart_release(self):
        for app_version in CHART_RELEASES:
            with self.subTest(app_version=app_version):
                self.root_key = chart_root_key()
                self.inst.db.drop()
                self.inst.db.__init__(self.inst.dir)
                self.values["db_name"] = self.inst.db.name
                self.inst.seed(values_per_column=5, wrap=lambda db_key: (
                    infra.seal(self.root_key, db_key, infra.EMPTY_KEY_ID, "").encode(), "aesgcm", KEY_PATH))
                self.install_chart(app_version)
                self.check_the_whole_cycle()

    def check_the_whole_cycle(self):
        self.plugin_runs()
        r = self.ik("verify", "--level", "full")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"configmap {NS}/infra-server key infra.yaml", r.stdout)
        self.assertEqual(self.plugin_runs(), 1)
        self.assertNotIn("resource-policy", r.stderr)

        before = self.kube.secret_metadata(NS, KEY_SECRET)
        r = self.ik("rotate-root")
        self.assertEqual(r.returncode, 0, r.stderr)
        new_key = self.key_secret()["key"]
        self.assertNotEqual(new_key, self.root_key)
        self.assertEqual(len(new_key), 32)
        after = self.kube.secret_metadata(NS, KEY_SECRET)
        self.assertEqual(before["labels"], after["labels"])
        self.assertEqual({"helm.sh/resource-policy": "keep"}, after["annotations"])
        self.assertAllDecrypt(new_key)

        passphrase = os.path.join(self.client_dir, "passphrase")
        with open(passphrase, "w") as f:
            f.write(PASSPHRASE)
        backup = os.path.join(self.client_dir, "chart.backup")
        r = self.ik("backup", "--output", backup, "--force", "--passphrase-file", passphrase, "--scrypt-work-factor", "10")
        self.assertEqual(r.returncode, 0, r.stderr)

        # A GitOps render without a cluster replaces the Secret with a new random key.
        self.kube.put_secret(NS, KEY_SECRET, {"key": chart_root_key()}, labels=after["labels"],
                             annotations=after["annotations"])
        r = self.ik("verify")
        self.assertEqual(r.returncode, EXIT["wrong_key"], r.stderr)
        self.assertIn("GitOps", r.stderr)
        r = self.ik("restore", backup, "--force", "--passphrase-file", passphrase)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.key_secret()["key"], new_key)
        restored = self.kube.secret_metadata(NS, KEY_SECRET)
        self.assertEqual((restored["labels"], restored["annotations"]), (after["labels"], after["annotations"]))
        self.assertEqual(self.ik("verify", "--level", "full").returncode, 0)
        self.assertAllDecrypt(new_key)

    def test_keys_the_chart_passes_through_are_read(self):
        # From app v0.15.2 server.config.keys reaches the server: a native entry naming a secret
        # storage that does not exist is what the server would refuse, so infra-keys must too.
        passed = "\n    keys:\n      - config:\n          secretProvider: nowhere\n        kind: native"
        self.install_chart("0.15.2", passed_through=passed)
        before = self.state()
        r = self.ik("verify")
        self.assertRefused(r, "usage", "nowhere")
        self.assertEqual(before, self.state())
        self.install_chart("0.15.2", passed_through=passed.replace("nowhere", "file"))
        self.assertEqual(self.ik("verify", "--level", "full").returncode, 0)

    def test_status_warns_when_the_key_secret_lacks_resource_policy_keep(self):
        self.install_chart()
        meta = self.kube.secret_metadata(NS, KEY_SECRET)
        self.kube.put_secret(NS, KEY_SECRET, {"key": self.root_key}, labels=meta["labels"])
        r = self.ik("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("helm.sh/resource-policy: keep", r.stderr)
        self.assertIn(KEY_SECRET, r.stderr)

    # --- what is missing is named, and nothing changes ---------------------------------------
    def test_a_missing_object_is_named_in_one_line_and_nothing_changes(self):
        cases = [
            ("deployment", lambda: self.kube.delete_object("deployments", NS, "infra-server"),
             "usage", (f"deployment {DEPLOYMENT}",)),
            ("configmap", lambda: self.kube.delete_object("configmaps", NS, "infra-server"),
             "usage", (f"configmap {NS}/infra-server",)),
            ("password secret", lambda: self.kube.delete_secret(NS, "infra-postgres"),
             "usage", ("INFRA_SERVER_DB_PASSWORD", f"secret {NS}/infra-postgres")),
            ("password key", lambda: self.kube.put_secret(NS, "infra-postgres", {"pass": b"x"}),
             "usage", ("INFRA_SERVER_DB_PASSWORD", f"secret {NS}/infra-postgres", "no key password")),
            ("key secret", lambda: self.kube.delete_secret(NS, KEY_SECRET),
             "provider", (KEY_PATH, f"secret {NS}/{KEY_SECRET}")),
        ]
        for name, remove, code, names in cases:
            with self.subTest(missing=name):
                self.install_chart()
                remove()
                before = self.state()
                for command in (("verify",), ("rotate-root",), ("restore", os.devnull, "--force")):
                    r = self.ik(*command)
                    if command[0] == "restore" and name == "key secret":
                        continue   # restore exists to put a lost key back: covered above
                    self.assertRefused(r, code, *names)
                    self.assertEqual(before, self.state())

    def test_kube_deployment_and_config_together_are_refused(self):
        self.install_chart()
        r = self.ik("--config", self.inst.config_path, "verify")
        self.assertEqual(r.returncode, EXIT["usage"], r.stderr)

    def test_a_deployment_name_without_namespace_is_refused(self):
        env = dict(os.environ, HOME=self.inst.dir, KUBECONFIG=self.kubeconfig)
        r = subprocess.run([BIN, "--kube-deployment", "infra-server", "verify"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, EXIT["usage"], r.stderr)
        self.assertIn("NAMESPACE/NAME", r.stderr)

    def test_without_db_url_the_cluster_internal_host_is_named(self):
        self.install_chart()
        r = self.ik("verify", db_url=False)
        self.assertEqual(r.returncode, EXIT["database"], r.stderr)
        self.assertIn(f"infra-postgres.{NS}", r.stderr)
        self.assertNotIn(os.environ["INFRA_KEYS_TEST_PG_PASSWORD"], r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
