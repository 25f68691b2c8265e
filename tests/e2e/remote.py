"""Root key providers as the e2e tests drive them, each against its protocol peer (tests/peers):
the config lines that name it, the environment infra-keys needs for it, and the provider's own
client (the aws CLI, Vault's HTTP API, the Kubernetes Secret) to wrap a db key and to open a row."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

import infra
from harness import read_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers"))
import peerlib  # noqa: E402

AWS = "/usr/bin/aws"
# Fast retries: a throttled peer must still end in "provider unreachable", just sooner.
BASE_ENV = {"INFRA_KEYS_HTTP_RETRY_BASE_MS": "5"}


# --- providers as the tests drive them ------------------------------------------------------
class Kms:
    kind = "awskms"
    algorithm = "AES_256"  # encryption_keys.algorithm of a row it wraps

    def __init__(self, peer, key="alias/infra"):
        self.peer, self.key = peer, key
        self.env = dict(BASE_ENV, IK_KMS_ID=peer.access_key, IK_KMS_SECRET=peer.secret_key)

    def config(self, key=None):
        return (f"dbEncryptionKeyProvider: awskms\ndbEncryptionKey: {key or self.key}\nkeys:\n  - kind: awskms\n"
                f"    config:\n      endpoint: {self.peer.url}\n      region: {self.peer.region}\n"
                f"      accessKeyID: env:IK_KMS_ID\n      secretAccessKey: env:IK_KMS_SECRET\n")

    def aws(self, *args, stdin=None):
        r = subprocess.run([AWS, "kms", *args, "--endpoint-url", self.peer.url, "--output", "json"],
                           capture_output=True, env=self.peer.aws_env(), input=stdin, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)

    def wrap(self, db_key):
        with tempfile.NamedTemporaryFile() as f:
            f.write(db_key)
            f.flush()
            out = self.aws("encrypt", "--key-id", self.key, "--plaintext", "fileb://" + f.name)
        return base64.b64decode(out["CiphertextBlob"]), self.algorithm, self.key

    def unwrap(self, wrapped):
        """The db key as KMS itself opens the row (through the official client)."""
        with tempfile.NamedTemporaryFile() as f:
            f.write(wrapped)
            f.flush()
            out = self.aws("decrypt", "--ciphertext-blob", "fileb://" + f.name)
        return base64.b64decode(out["Plaintext"])


class Vault:
    kind = "vault"
    algorithm = "aes256-gcm96"  # encryption_keys.algorithm of a row it wraps

    def __init__(self, peer, key="infra-root"):
        self.peer, self.key = peer, key
        self.env = dict(BASE_ENV, IK_VAULT_TOKEN=peer.token)

    def config(self, token="env:IK_VAULT_TOKEN"):
        return (f"dbEncryptionKeyProvider: vault\ndbEncryptionKey: {self.key}\nkeys:\n  - kind: vault\n"
                f"    config:\n      address: {self.peer.url}\n      token: {token}\n")

    def call(self, path, body=None):
        req = urllib.request.Request(f"{self.peer.url}/v1/{self.peer.mount}/{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"X-Vault-Token": self.peer.token})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["data"]

    def wrap(self, db_key):
        out = self.call(f"encrypt/{self.key}", {"plaintext": base64.b64encode(db_key).decode()})
        return out["ciphertext"].encode(), self.algorithm, self.key

    def unwrap(self, wrapped):
        out = self.call(f"decrypt/{self.key}", {"ciphertext": wrapped.decode()})
        return base64.b64decode(out["plaintext"])


class Kube:
    """Native root key in Secret infra-x, data key __root_key, namespace default."""
    kind = "native"

    def __init__(self, peer, directory):
        self.peer = peer
        self.kubeconfig = peer.write_kubeconfig(os.path.join(directory, "kubeconfig"))
        self.env = dict(BASE_ENV, KUBECONFIG=self.kubeconfig)

    def config(self):
        return "dbEncryptionKeyProvider: native\nkeys:\n  - kind: native\n    config:\n      secretProvider: kubernetes\n"

    def secret(self):
        return self.peer.get_secret("default", "infra-x") or {}

    def wrap(self, db_key):
        root_key = os.urandom(32)
        self.peer.put_secret("default", "infra-x", {"__root_key": root_key})
        return infra.seal(root_key, db_key, infra.EMPTY_KEY_ID, "").encode(), "aesgcm", "infra-x/__root_key"

    def unwrap(self, wrapped):
        return infra.unseal(self.secret()["__root_key"], wrapped.decode(), infra.EMPTY_KEY_ID)


class NativeFile:
    """The native root key in a file, as a migration's first and last provider."""
    kind = "native"
    algorithm = "aesgcm"
    env = {}

    def __init__(self, path):
        self.path = path

    def config(self):
        return f"dbEncryptionKey: {self.path}\n"

    def unwrap(self, wrapped):
        return infra.unseal(read_file(self.path), wrapped.decode(), infra.EMPTY_KEY_ID)


def kms_and_vault(test):
    """AWS KMS (key alias/infra) and Vault transit, each against a peer of its own that stops when
    `test` ends."""
    kms = peerlib.kms()
    test.addCleanup(kms.close)
    vault = peerlib.vault()
    test.addCleanup(vault.close)
    return Kms(kms), Vault(vault)


def write_config(inst, provider):
    """The installation's config: its database, then the provider's lines."""
    with open(inst.config_path, "w") as f:
        f.write("\n".join(inst.db.config_lines()) + "\n" + provider.config())


def migrate(inst, provider, env=None):
    """rewrap --from-config with a copy of the current config, after switching the config to `provider`."""
    old = os.path.join(inst.dir, f"before-{provider.kind}.yaml")
    os.replace(inst.config_path, old)
    write_config(inst, provider)
    return inst.run("rewrap", "--from-config", old, env=provider.env if env is None else env)
