#!/usr/bin/python3
"""kube_peer.py checked with Debian's kubectl (/usr/bin/kubectl, package kubectl) over HTTPS."""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import base64
import json
import os
import shutil
import ssl
import string
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

KUBECTL = "/usr/bin/kubectl"


class KubePeerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        peerlib.require_program(KUBECTL, "kubectl")
        cls.peer = peerlib.kube(token="test-token")
        cls.tmp = tempfile.mkdtemp(prefix="kube-peer-test-")
        cls.kubeconfig = cls.peer.write_kubeconfig(os.path.join(cls.tmp, "kubeconfig"))

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.peer.reset()

    def kubectl(self, *args, kubeconfig=None, check=True):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.tmp, "KUBECONFIG": kubeconfig or self.kubeconfig}
        proc = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            self.fail("kubectl %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr))
        return proc

    def get_json(self, name, namespace="default"):
        return json.loads(self.kubectl("get", "secret", name, "-n", namespace, "-o", "json").stdout)

    def api(self, method, path, body=None, content_type="application/json", token="test-token"):
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.peer.url + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.peer.ssl_context()) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def test_kubectl_gets_the_deployment_and_configmap_of_the_helm_fixtures(self):
        # The objects test_kube_deployment serves, as kubectl reads them (tests/fixtures/helm).
        fixtures = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "helm")
        values = {"namespace": "infra", "app_version": "0.19.0", "chart_version": "0.20.9", "rollme": "0" * 40,
                  "db_name": "infra", "db_user": "infra", "passed_through": "",
                  "db_encryption_key": "/var/run/secrets/infrahq.com/encryption-key/key"}
        for name, resource in (("server-deployment.yaml", "deployments"), ("server-configmap-v0.19.0.yaml", "configmaps")):
            with open(os.path.join(fixtures, name)) as f:
                text = string.Template("".join(line for line in f if not line.startswith("#"))).substitute(values)
            self.peer.put_object(resource, "infra", yaml.safe_load(text))
        deployment = json.loads(self.kubectl("get", "deployment", "infra-server", "-n", "infra", "-o", "json").stdout)
        self.assertEqual(deployment["kind"], "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["args"], ["server", "-f", "/etc/infrahq/infra.yaml"])
        self.assertEqual(container["env"][0]["valueFrom"]["secretKeyRef"], {"key": "password", "name": "infra-postgres"})
        configmap = json.loads(self.kubectl("get", "configmap", "infra-server", "-n", "infra", "-o", "json").stdout)
        config = yaml.safe_load(configmap["data"]["infra.yaml"])
        self.assertEqual(config["dbEncryptionKey"], "/var/run/secrets/infrahq.com/encryption-key/key")
        self.assertEqual(config["dbHost"], "infra-postgres.infra")
        names = self.kubectl("get", "deployments,configmaps", "-n", "infra", "-o", "name").stdout.split()
        self.assertEqual(names, ["deployment.apps/infra-server", "configmap/infra-server"])
        proc = self.kubectl("get", "configmap", "absent", "-n", "infra", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('configmaps "absent" not found', proc.stderr)
        proc = self.kubectl("delete", "configmap", "infra-server", "-n", "infra", check=False)
        self.assertNotEqual(proc.returncode, 0)

    def test_get_of_a_missing_secret_is_not_found(self):
        proc = self.kubectl("get", "secret", "absent", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('secrets "absent" not found', proc.stderr)
        status, body = self.api("GET", "/api/v1/namespaces/default/secrets/absent")
        self.assertEqual((status, body["kind"], body["reason"], body["code"]), (404, "Status", "NotFound", 404))

    def test_create_secret_generic_then_get_shows_base64_data_and_metadata(self):
        self.kubectl("create", "secret", "generic", "made", "--from-literal=__root_key=abc", "-n", "infra")
        secret = self.get_json("made", "infra")
        self.assertEqual((secret["kind"], secret["apiVersion"], secret["type"]), ("Secret", "v1", "Opaque"))
        self.assertEqual(base64.b64decode(secret["data"]["__root_key"]), b"abc")
        meta = secret["metadata"]
        self.assertEqual((meta["name"], meta["namespace"]), ("made", "infra"))
        for field in ("uid", "resourceVersion", "creationTimestamp"):
            self.assertTrue(meta[field])
        self.assertEqual(self.peer.get_secret("infra", "made"), {"__root_key": b"abc"})

    def test_creating_an_existing_secret_is_already_exists(self):
        self.kubectl("create", "secret", "generic", "twice", "--from-literal=a=1")
        proc = self.kubectl("create", "secret", "generic", "twice", "--from-literal=a=1", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("already exists", proc.stderr)

    def test_strategic_and_merge_patches_merge_data_and_null_deletes(self):
        self.kubectl("create", "secret", "generic", "patched", "--from-literal=a=1", "--from-literal=b=2")
        before = self.get_json("patched")["metadata"]["resourceVersion"]
        self.kubectl("patch", "secret", "patched", "--type=strategic", "-p", '{"data":{"c":"Mw==","a":null}}')
        self.kubectl("patch", "secret", "patched", "--type=merge", "-p", '{"data":{"d":"NA=="}}')
        secret = self.get_json("patched")
        self.assertEqual(sorted(secret["data"]), ["b", "c", "d"])
        self.assertGreater(int(secret["metadata"]["resourceVersion"]), int(before))
        self.assertEqual(self.peer.ops().get("secrets.patch"), 2)

    def test_a_patch_carrying_a_stale_resource_version_is_a_conflict(self):
        self.kubectl("create", "secret", "generic", "raced", "--from-literal=a=1")
        current = self.get_json("raced")["metadata"]["resourceVersion"]
        self.kubectl("patch", "secret", "raced", "--type=merge", "-p", '{"data":{"b":"Mg=="}}')
        status, body = self.api("PATCH", "/api/v1/namespaces/default/secrets/raced",
                                {"metadata": {"resourceVersion": current}, "data": {"c": "Mw=="}},
                                "application/merge-patch+json")
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        fresh = self.get_json("raced")["metadata"]["resourceVersion"]
        status, body = self.api("PATCH", "/api/v1/namespaces/default/secrets/raced",
                                {"metadata": {"resourceVersion": fresh}, "data": {"c": "Mw=="}},
                                "application/strategic-merge-patch+json")
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(body["data"]), ["a", "b", "c"])

    def test_put_replaces_and_honours_resource_version(self):
        self.kubectl("create", "secret", "generic", "replaced", "--from-literal=a=1")
        secret = self.get_json("replaced")
        secret["data"] = {"z": "eg=="}
        status, body = self.api("PUT", "/api/v1/namespaces/default/secrets/replaced", secret)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["data"], {"z": "eg=="})
        status, body = self.api("PUT", "/api/v1/namespaces/default/secrets/replaced", secret)   # stale now
        self.assertEqual((status, body["reason"]), (409, "Conflict"))

    def test_list_and_delete(self):
        self.kubectl("create", "secret", "generic", "listed", "--from-literal=a=1", "-n", "listing")
        names = self.kubectl("get", "secrets", "-n", "listing", "-o", "name").stdout.split()
        self.assertEqual(names, ["secret/listed"])
        self.kubectl("delete", "secret", "listed", "-n", "listing")
        self.assertEqual(self.kubectl("get", "secrets", "-n", "listing", "-o", "name").stdout.split(), [])

    def test_a_wrong_or_missing_token_is_unauthorized(self):
        bad = self.peer.write_kubeconfig(os.path.join(self.tmp, "bad-kubeconfig"), token="wrong")
        proc = self.kubectl("get", "secret", "anything", kubeconfig=bad, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("Unauthorized", proc.stderr)
        status, body = self.api("GET", "/api/v1/namespaces/default/secrets/x", token=None)
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": "Unauthorized", "reason": "Unauthorized", "code": 401})

    def test_a_client_certificate_signed_by_the_ca_authenticates(self):
        certs = self.peer.write_kubeconfig(os.path.join(self.tmp, "cert-kubeconfig"), client_cert=True)
        self.kubectl("create", "secret", "generic", "by-cert", "--from-literal=a=1", kubeconfig=certs)

    def test_the_server_certificate_verifies_for_127_0_0_1_with_the_ca(self):
        context = ssl.create_default_context(cafile=self.peer.ca_path)
        with urllib.request.urlopen(self.peer.url + "/healthz", context=context, timeout=10) as resp:
            self.assertEqual(resp.read(), b"ok")
        with self.assertRaises(urllib.error.URLError):
            urllib.request.urlopen(self.peer.url + "/healthz", context=ssl.create_default_context(), timeout=10)

    def test_invalid_base64_in_data_is_refused(self):
        status, body = self.api("POST", "/api/v1/namespaces/default/secrets",
                                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
                                 "data": {"k": "not base64!"}})
        self.assertEqual(status, 400)

    def test_injected_failure_returns_a_status_object_then_recovers(self):
        self.peer.put_secret("default", "flaky", {"k": b"v"})
        self.peer.fail(status=503, times=1, op="secrets.get")
        status, body = self.api("GET", "/api/v1/namespaces/default/secrets/flaky")
        self.assertEqual((status, body["kind"], body["code"]), (503, "Status", 503))
        status, body = self.api("GET", "/api/v1/namespaces/default/secrets/flaky")
        self.assertEqual(status, 200)
        self.assertEqual(self.peer.stats()["ops"], {"secrets.get": 2})

    def test_in_cluster_layout_holds_token_ca_and_namespace(self):
        env = self.peer.incluster_dir(os.path.join(self.tmp, "sa"), namespace="infra")
        self.assertEqual(env["KUBERNETES_SERVICE_PORT"], str(self.peer.port))
        with open(os.path.join(self.tmp, "sa", "namespace")) as f:
            self.assertEqual(f.read(), "infra")

    def test_kubectl_authenticates_with_the_exec_plugin_and_passes_cluster_info(self):
        token_file = os.path.join(self.tmp, "exec-token")
        with open(token_file, "w") as f:
            f.write("test-token\n")
        info = os.path.join(self.tmp, "exec-info.json")
        calls = os.path.join(self.tmp, "exec-calls")
        for version in ("v1", "v1beta1"):
            with self.subTest(version=version):
                kubeconfig = self.peer.write_exec_kubeconfig(
                    os.path.join(self.tmp, "exec-kubeconfig-" + version), token_file, api_version=version,
                    extra_args=["--exec-info", info, "--calls", calls, "--expires-in", "600"],
                    provide_cluster_info=True, env={"PLUGIN_COLOUR": "blue"})
                self.peer.put_secret("default", "via-exec", {"k": b"v"})
                proc = self.kubectl("get", "secret", "via-exec", "-o", "json", kubeconfig=kubeconfig)
                self.assertEqual(base64.b64decode(json.loads(proc.stdout)["data"]["k"]), b"v")
                seen = json.load(open(info))
                exec_info = json.loads(seen["exec_info"])
                self.assertEqual((exec_info["apiVersion"], exec_info["kind"]),
                                 ("client.authentication.k8s.io/" + version, "ExecCredential"))
                self.assertEqual(exec_info["spec"]["interactive"], False)
                self.assertEqual(exec_info["spec"]["cluster"]["server"], self.peer.url)
                self.assertEqual(base64.b64decode(exec_info["spec"]["cluster"]["certificate-authority-data"]),
                                 open(self.peer.ca_path, "rb").read())
                self.assertEqual(seen["env"], {"PLUGIN_COLOUR": "blue"})
        self.assertGreaterEqual(int(open(calls).read()), 2)

    def test_kubectl_is_refused_after_the_exec_token_is_revoked(self):
        token_file = os.path.join(self.tmp, "revoked-token")
        with open(token_file, "w") as f:
            f.write("test-token")
        kubeconfig = self.peer.write_exec_kubeconfig(os.path.join(self.tmp, "revoked-kubeconfig"), token_file)
        self.peer.put_secret("default", "guarded", {"k": b"v"})
        self.kubectl("get", "secret", "guarded", kubeconfig=kubeconfig)
        try:
            self.peer.set_tokens("rotated-token")
            proc = self.kubectl("get", "secret", "guarded", kubeconfig=kubeconfig, check=False)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("Unauthorized", proc.stderr)
            with open(token_file, "w") as f:
                f.write("rotated-token")
            self.kubectl("get", "secret", "guarded", kubeconfig=kubeconfig)
        finally:
            self.peer.set_tokens("test-token")

    def test_kubectl_shows_the_install_hint_of_a_missing_exec_command(self):
        kubeconfig = self.peer.write_exec_kubeconfig(os.path.join(self.tmp, "missing-kubeconfig"), "/nonexistent",
                                                     command="no-such-credential-plugin",
                                                     install_hint="apt-get install the-plugin")
        proc = self.kubectl("get", "secret", "x", kubeconfig=kubeconfig, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("executable no-such-credential-plugin not found", proc.stderr)
        self.assertIn("apt-get install the-plugin", proc.stderr)

    def test_secrets_survive_a_restart_with_a_state_file(self):
        with peerlib.kube(token="t", state=os.path.join(self.tmp, "kube-state.json")) as peer:
            peer.put_secret("default", "kept", {"k": b"v"})
            ca = open(peer.ca_path).read()
            peer.restart()
            self.assertEqual(open(peer.ca_path).read(), ca)
            self.assertEqual(peer.get_secret("default", "kept"), {"k": b"v"})
            self.assertEqual(peer.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2, warnings="ignore")
