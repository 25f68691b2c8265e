"""docs/kubernetes: the manifests parse as Kubernetes objects (kubectl apply --dry-run=client
against the API peer) and keep the promises the README makes: least privilege, no overlap."""
import glob
import os
import subprocess
import sys
import tempfile
import unittest

import yaml

from harness import ROOT

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers"))
import peerlib  # noqa: E402

KUBECTL = "/usr/bin/kubectl"
DOCS = os.path.join(ROOT, "docs", "kubernetes")


def objects():
    out = []
    for path in sorted(glob.glob(os.path.join(DOCS, "*.yaml"))):
        with open(path) as f:
            out += [(os.path.basename(path), doc) for doc in yaml.safe_load_all(f) if doc]
    return out


def of_kind(kind):
    return [doc for _, doc in objects() if doc["kind"] == kind]


class KubernetesDocsTest(unittest.TestCase):
    def test_kubectl_accepts_every_manifest_in_a_client_dry_run(self):
        peerlib.require_program(KUBECTL, "kubectl")
        with peerlib.kube(token="docs-token") as peer, tempfile.TemporaryDirectory() as tmp:
            kubeconfig = peer.write_kubeconfig(os.path.join(tmp, "kubeconfig"), namespace="infra")
            env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "KUBECONFIG": kubeconfig}
            for path in sorted(glob.glob(os.path.join(DOCS, "*.yaml"))):
                with self.subTest(path=os.path.basename(path)):
                    proc = subprocess.run([KUBECTL, "apply", "--dry-run=client", "--validate=false", "-o", "name",
                                           "-f", path], env=env, capture_output=True, text=True, timeout=60)
                    self.assertEqual(proc.returncode, 0, proc.stderr)
                    names = [doc for name, doc in objects() if name == os.path.basename(path)]
                    self.assertEqual(len(proc.stdout.split()), len(names), proc.stdout)
            self.assertEqual(peer.get_secret("infra", "infra-encryption-key"), None)   # a dry run wrote nothing

    def test_the_role_grants_get_and_update_on_exactly_the_key_secret(self):
        (role,) = of_kind("Role")
        self.assertEqual(role["rules"], [{"apiGroups": [""], "resources": ["secrets"],
                                          "resourceNames": ["infra-encryption-key"], "verbs": ["get", "update"]}])

    def test_the_config_names_the_chart_key_secret_and_the_password_from_the_environment(self):
        (config_map,) = of_kind("ConfigMap")
        config = yaml.safe_load(config_map["data"]["infra-keys.yaml"])
        self.assertEqual(config["dbEncryptionKey"], "infra-encryption-key/key")
        self.assertEqual(config["keys"], [{"kind": "native", "config": {"secretProvider": "kubernetes"}}])
        self.assertEqual(config["dbPassword"], "env:INFRA_SERVER_DB_PASSWORD")

    def test_jobs_never_overlap_never_retry_and_never_see_the_passphrase_in_their_environment(self):
        (cronjob,) = of_kind("CronJob")
        self.assertEqual(cronjob["spec"]["concurrencyPolicy"], "Forbid")
        pods = [cronjob["spec"]["jobTemplate"]["spec"]] + [job["spec"] for job in of_kind("Job")]
        self.assertEqual(len(pods), 2)
        for job in pods:
            self.assertEqual(job["backoffLimit"], 0)
            pod = job["template"]["spec"]
            self.assertEqual(pod["serviceAccountName"], "infra-keys")
            (container,) = pod["containers"]
            script = " ".join(container["args"])
            self.assertIn("infra-keys verify --level keys &&", script)
            self.assertIn("--passphrase-file", script)
            names = [e["name"] for e in container["env"]]
            self.assertNotIn("INFRA_KEYS_PASSPHRASE", names)
            password = [e for e in container["env"] if e["name"] == "INFRA_SERVER_DB_PASSWORD"][0]
            self.assertEqual(password["valueFrom"]["secretKeyRef"], {"name": "infra-postgres", "key": "password"})
        (hook,) = of_kind("Job")
        self.assertEqual(hook["metadata"]["annotations"]["helm.sh/hook"], "pre-upgrade")

    def test_the_readme_lists_the_exit_codes_an_alert_watches(self):
        with open(os.path.join(DOCS, "README.md")) as f:
            text = f.read()
        for code in ("| 5 |", "| 3 |", "| 8 |", "| 1 |", "| 4 |"):
            self.assertIn(code, text)
        self.assertIn("kube_job_status_failed", text)


if __name__ == "__main__":
    unittest.main()
