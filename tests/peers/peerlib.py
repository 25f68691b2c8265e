"""Start and drive the protocol peers from tests.

    with peerlib.kms(access_key="AKID", secret_key="s3cret") as kms:
        kms.url, kms.keys["alias/infra"], kms.stats()["ops"], kms.fail(status=503, times=2)
    with peerlib.vault(token="t") as vault:   vault.url, vault.token, vault.mount
    with peerlib.kube(token="t") as kube:     kube.url, kube.ca_path, kube.write_kubeconfig(path)

Each peer runs as a child process on 127.0.0.1 with a free port; its stderr goes to peer.log_path.
"""

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


class PeerError(RuntimeError):
    pass


class Peer:
    script = None

    def __init__(self, args, state=None, port=0, workdir=None, tls=False):
        self.tls = tls
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix=self.script.replace(".py", "-"))
        self.args = list(args)
        self.state = state
        self.port = port
        self.proc = None
        self.ready = {}
        self.log_path = os.path.join(self.dir, self.script.replace(".py", ".log"))

    # lifecycle
    def start(self, timeout=30):
        ready_file = os.path.join(self.dir, "ready.json")
        if os.path.exists(ready_file):
            os.unlink(ready_file)
        cmd = [PYTHON, os.path.join(HERE, self.script), "--port", str(self.port),
               "--ready-file", ready_file] + self.extra_start_args() + self.args
        if self.state:
            cmd += ["--state", self.state]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.time() + timeout
        while not os.path.exists(ready_file):
            if self.proc.poll() is not None:
                raise PeerError("%s exited with %s before it was ready:\n%s"
                                % (self.script, self.proc.returncode, self.log_tail()))
            if time.time() > deadline:
                self.stop()
                raise PeerError("%s not ready after %ss:\n%s" % (self.script, timeout, self.log_tail()))
            time.sleep(0.05)
        with open(ready_file) as f:
            self.ready = json.load(f)
        self.port = self.ready["port"]   # a restart keeps the port clients were configured with
        self.url = self.ready["url"]
        return self

    def extra_start_args(self):
        if not self.tls:
            return []
        return ["--tls", "--cert-dir", os.path.join(self.dir, "certs")]   # restarts keep the same CA

    @property
    def ca_path(self):
        """PEM of the CA that signed the server certificate (HTTPS peers only)."""
        return self.ready.get("ca")

    @property
    def client_cert(self):
        return self.ready["client_cert"], self.ready["client_key"]

    def stop(self, timeout=10):
        """SIGTERM, wait; returns the exit code (0 for a clean shutdown)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code, self.proc = self.proc.returncode, None
        return code

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # peer-private control plane
    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_path) if self.ca_path else None

    def _control(self, action, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/__peer/" + action, data=data,
                                     method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise PeerError("%s control %s failed: %s %s" % (self.script, action, err.code, err.read()))

    def stats(self):
        """{"total", "ops": {op: count}, "statuses", "injected_failures", "pending_faults"}."""
        return self._control("stats")

    def ops(self):
        return self.stats()["ops"]

    def log(self):
        return self._control("log")

    def reset(self):
        """Zeroes the counters and drops pending faults; the peer's data stays."""
        return self._control("reset", {})

    def clear_faults(self):
        return self._control("clear", {})

    def fail(self, status=None, times=None, op=None, after=0, **extra):
        """Next matching requests fail: status (e.g. 503, 429), times (None = until reset), op
        (operation name as in stats), after (let N through first), delay_ms, drop, retry_after,
        message, type (KMS __type)."""
        spec = dict(extra, after=after)
        for key, value in (("status", status), ("times", times), ("op", op)):
            if value is not None:
                spec[key] = value
        return self._control("fail", spec)

    def control(self, **body):
        return self._control("control", body)

    def dump(self):
        return self._control("dump")


class KmsPeer(Peer):
    script = "kms_peer.py"

    def __init__(self, access_key, secret_key, region, keys, session_token=None, web_identity_token=None,
                 container_token=None, **kw):
        args = ["--access-key", access_key, "--secret-key", secret_key, "--region", region]
        if web_identity_token:
            args += ["--web-identity-token", web_identity_token]
        if container_token:
            args += ["--container-token", container_token]
        for key in keys:
            args += ["--key", key]
        if session_token:
            args += ["--session-token", session_token]
        super().__init__(args, **kw)
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.session_token = session_token
        self.web_identity_token, self.container_token = web_identity_token, container_token

    @property
    def keys(self):
        """alias/NAME -> key ARN of the keys preloaded with keys=[...]."""
        return self.ready["keys"]

    def disable_key(self, key):
        return self.control(disable_key=key)

    def enable_key(self, key):
        return self.control(enable_key=key)

    def create_key(self, alias=None):
        return self.control(create_key=alias or "")["create_key"]

    def aws_env(self, base=None, secret_key=None):
        """Environment for Debian's /usr/bin/aws (hermetic: no config, no instance metadata)."""
        env = dict(base if base is not None else os.environ)
        for name in list(env):
            if name.startswith("AWS_"):
                del env[name]
        config = os.path.join(self.dir, "aws-empty-config")
        open(config, "a").close()
        env.update({"AWS_ACCESS_KEY_ID": self.access_key,
                    "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
                    "AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": config,
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "", "AWS_DEFAULT_REGION": self.region,
                    "AWS_MAX_ATTEMPTS": "1"})
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


class VaultPeer(Peer):
    script = "vault_peer.py"

    def __init__(self, token, namespace=None, transit_mount="transit", autocreate=True, keys=(),
                 kubernetes_roles=None, approles=None, **kw):
        args = ["--token", token, "--transit-mount", transit_mount]
        for role, jwt in (kubernetes_roles or {}).items():
            args += ["--kubernetes-role", "%s=%s" % (role, jwt)]
        for role_id, secret_id in (approles or {}).items():
            args += ["--approle", "%s=%s" % (role_id, secret_id)]
        if namespace:
            args += ["--namespace", namespace]
        if not autocreate:
            args.append("--no-autocreate")
        for key in keys:
            args += ["--key", key]
        super().__init__(args, **kw)
        self.token, self.namespace, self.mount = token, namespace, transit_mount.strip("/")

    def delete_key(self, name):
        return self.control(delete_key=name)

    def create_key(self, name):
        return self.control(create_key=name)


class KubePeer(Peer):
    script = "kube_peer.py"

    def __init__(self, token, allow_client_certs=True, **kw):
        args = ["--token", token]
        if not allow_client_certs:
            args.append("--no-client-certs")
        super().__init__(args, **kw)
        self.token = token

    def extra_start_args(self):
        return ["--cert-dir", os.path.join(self.dir, "certs")]   # always HTTPS; restarts keep the CA

    def write_kubeconfig(self, path, token=None, namespace="default", client_cert=False):
        """A kubeconfig for kubectl (or any client) pointing at this peer; token=None uses the peer's."""
        if client_cert:
            user = '{client-certificate: "%s", client-key: "%s"}' % self.client_cert
        else:
            user = '{token: "%s"}' % (token if token is not None else self.token)
        with open(path, "w") as f:
            f.write('apiVersion: v1\nkind: Config\nclusters:\n- name: peer\n  cluster: {server: "%s", '
                    'certificate-authority: "%s"}\nusers:\n- name: peer\n  user: %s\ncontexts:\n- name: peer\n'
                    '  context: {cluster: peer, user: peer, namespace: "%s"}\ncurrent-context: peer\n'
                    % (self.url, self.ca_path, user, namespace))
        os.chmod(path, 0o600)
        return path

    def incluster_dir(self, path, namespace="default", token=None):
        """Lays out a service-account directory (token, ca.crt, namespace) like
        /var/run/secrets/kubernetes.io/serviceaccount; returns the env an in-cluster client reads."""
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "token"), "w") as f:
            f.write(token if token is not None else self.token)
        with open(os.path.join(path, "namespace"), "w") as f:
            f.write(namespace)
        shutil.copyfile(self.ca_path, os.path.join(path, "ca.crt"))
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def put_secret(self, namespace, name, data, labels=None, annotations=None):
        """Creates or replaces Secret namespace/name; data values are bytes or str (encoded here)."""
        encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
                   for k, v in data.items()}
        return self.control(put_secret={"namespace": namespace, "name": name, "data": encoded,
                                        "labels": labels or {}, "annotations": annotations or {}})

    def put_object(self, resource, namespace, obj):
        """Puts a ConfigMap or Deployment (resource "configmaps" or "deployments") in place."""
        return self.control(put_object={"resource": resource, "namespace": namespace, "object": obj})

    def delete_object(self, resource, namespace, name):
        return self.control(delete_object="%s/%s/%s" % (resource, namespace, name))

    def secret_metadata(self, namespace, name):
        """The stored Secret's metadata (labels, annotations, resourceVersion), or None."""
        obj = self.dump()["secrets"].get("%s/%s" % (namespace, name))
        return None if obj is None else obj["metadata"]

    def get_secret(self, namespace, name):
        """-> {key: bytes} or None, read from the peer's store without counting as a request."""
        obj = self.dump()["secrets"].get("%s/%s" % (namespace, name))
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()}

    def delete_secret(self, namespace, name):
        return self.control(delete_secret="%s/%s" % (namespace, name))

    def set_tokens(self, *tokens):
        """Only these bearer tokens are accepted from now on (revokes the others)."""
        return self.control(set_tokens=list(tokens))

    def write_exec_kubeconfig(self, path, token_file, api_version="v1", interactive_mode="Never",
                              extra_args=(), command=None, provide_cluster_info=False, install_hint=None,
                              env=None):
        """A kubeconfig whose user is an exec credential plugin (kube_exec_plugin.py handing out
        the token in token_file, or only what extra_args say), as EKS, GKE and AKS kubeconfigs are."""
        command = command or os.path.join(HERE, "kube_exec_plugin.py")
        args = (["--token-file", token_file] if token_file else []) + ["--api-version", api_version] + list(extra_args)
        lines = ["apiVersion: client.authentication.k8s.io/%s" % api_version, "command: %s" % json.dumps(command),
                 "args: %s" % json.dumps(args)]
        if interactive_mode:
            lines.append("interactiveMode: %s" % interactive_mode)
        if provide_cluster_info:
            lines.append("provideClusterInfo: true")
        if install_hint:
            lines.append("installHint: %s" % json.dumps(install_hint))
        if env:
            lines.append("env: %s" % json.dumps([{"name": k, "value": v} for k, v in env.items()]))
        with open(path, "w") as f:
            f.write('apiVersion: v1\nkind: Config\nclusters:\n- name: peer\n  cluster: {server: "%s", '
                    'certificate-authority: "%s"}\nusers:\n- name: peer\n  user:\n    exec:\n%s\ncontexts:\n'
                    '- name: peer\n  context: {cluster: peer, user: peer, namespace: default}\ncurrent-context: peer\n'
                    % (self.url, self.ca_path, "".join("      %s\n" % line for line in lines)))
        os.chmod(path, 0o600)
        return path


def kms(access_key="AKIDKMSPEER", secret_key="kms-peer-secret", region="us-east-1", keys=("alias/infra",),
        session_token=None, state=None, port=0, tls=False, web_identity_token=None, container_token=None):
    return KmsPeer(access_key, secret_key, region, keys, session_token, web_identity_token, container_token,
                   state=state, port=port, tls=tls).start()


def vault(token="vault-peer-token", namespace=None, transit_mount="transit", autocreate=True, keys=(),
          state=None, port=0, tls=False, kubernetes_roles=None, approles=None):
    """kubernetes_roles {role: jwt} and approles {role_id: secret_id} enable those login endpoints."""
    return VaultPeer(token, namespace, transit_mount, autocreate, keys, kubernetes_roles, approles,
                     state=state, port=port, tls=tls).start()


def kube(token="kube-peer-token", allow_client_certs=True, state=None, port=0):
    return KubePeer(token, allow_client_certs, state=state, port=port).start()


def take_count(path):
    """The count a test program (kube_exec_plugin.py --calls) keeps in `path`, reset to 0."""
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        count = int(f.read() or 0)
    os.unlink(path)
    return count


def require_program(path, debian_package):
    """Fails (never skips) when a client the peer tests need is missing."""
    if not os.access(path, os.X_OK):
        sys.stderr.write("missing %s: install the Debian package '%s' (apt-get install %s)\n"
                         % (path, debian_package, debian_package))
        raise AssertionError("missing %s: apt-get install %s" % (path, debian_package))
