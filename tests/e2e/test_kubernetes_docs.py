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
            self.assertEqual(peer.get_secret("infra", "infra-server-encryption-key"), None)   # a dry run wrote nothing

    def test_the_role_reads_exactly_the_chart_objects_and_updates_only_the_key_secret(self):
        # The names the chart gives release "infra" (tests/fixtures/helm); only the key is written.
        (role,) = of_kind("Role")
        self.assertEqual(role["rules"], [
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["infra-server"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["infra-server"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["infra-postgres"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["infra-server-encryption-key"],
             "verbs": ["get", "update"]}])
        with open(os.path.join(ROOT, "tests", "fixtures", "helm", "secrets.yaml")) as f:
            chart_secrets = [line.split(":", 1)[1].strip() for line in f if line.startswith("  name: ")]
        self.assertEqual(chart_secrets, ["infra-server-encryption-key", "infra-postgres"])

    def test_no_manifest_repeats_the_servers_config(self):
        self.assertEqual(of_kind("ConfigMap"), [])

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
            self.assertIn("infra-keys --kube-deployment infra/infra-server verify --level keys &&", script)
            self.assertIn("infra-keys --kube-deployment infra/infra-server backup --passphrase-file", script)
            # Nothing in the environment: the password is read from the server's Deployment.
            self.assertNotIn("env", container)
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
