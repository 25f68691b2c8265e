"""Remote root key providers end to end: AWS KMS, Vault transit and native-in-Kubernetes, each
against its protocol peer (tests/peers): init, verify, rotate-root, rewrap, provider migration,
backup/restore, failures, crash safety and provider call counts."""
import json
import os
import re
import signal
import subprocess
import unittest

import infra
import remote
from harness import BACKEND, BIN, E2E, EXIT, Installation, wait_until_stopped
from remote import BASE_ENV, Kms, Kube, NativeFile, Vault, peerlib
from test_rotation import ROTATE_POINTS


class RemoteE2E(E2E):
    """An installation whose config names a remote provider; self.p is the provider under test."""

    def setUp(self):
        super().setUp()
        self.peers = []
        self.p = self.make_provider()
        self.use(self.p)

    def tearDown(self):
        super().tearDown()
        for peer in self.peers:
            peer.close()

    def start(self, peer):
        self.peers.append(peer)
        return peer

    def use(self, provider, inst=None):
        remote.write_config(inst or self.inst, provider)
        self.current = provider

    def ik(self, *args, inst=None, env=None):
        return (inst or self.inst).run(*args, env=dict(self.current.env, **(env or {})))

    def seed(self, n=5, inst=None):
        (inst or self.inst).seed(values_per_column=n, wrap=self.p.wrap)

    def assertAllDecrypt(self, inst=None):
        """Every value opens with the db key the provider unwraps from the row, as the server opens it."""
        inst = inst or self.inst
        db_key = self.current.unwrap(inst.db_key_row()["encrypted"])
        self.assertEqual(db_key, inst.db_key)
        self.assertEqual(inst.decrypt_all(db_key=db_key), inst.plaintexts)

    def state(self):
        """What a failed command must leave alone: key rows, values, key files and, while the
        Kubernetes peer runs, its Secrets (not the *.yaml configs, which the tests rewrite)."""
        return re.sub(r"'[^']*\.yaml': b'[^']*'(, )?", "", self.inst.snapshot()) + self.provider_state()

    def provider_state(self):
        return ""

    def assertProviderFailure(self, result, before):
        """Exit 3 with one line naming the problem (and maybe a hint line), and nothing changed."""
        self.assertExit(result, "provider")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertTrue(lines and lines[0].startswith("infra-keys: "), result.stderr)
        self.assertTrue(all(line.startswith("infra-keys: hint: ") for line in lines[1:]), result.stderr)
        self.assertEqual(before, self.state())

    def calls(self, peer, *args, n=5):
        """Provider requests made by one command on a fresh installation with n values per column."""
        inst = Installation()
        try:
            self.use(self.p, inst)
            self.seed(n, inst)
            peer.reset()
            r = self.ik(*args, inst=inst)
            self.assertExit(r, "ok")
            return peer.stats()["total"]
        finally:
            inst.close()

    def assertConstantCalls(self, peer, *commands):
        for args in commands:
            small, large = self.calls(peer, *args, n=1), self.calls(peer, *args, n=100)
            self.assertEqual(small, large, f"{args}: {small} provider calls with 1 value per column, {large} with 100")

    def assertEveryCommandFails(self, before):
        for cmd in (("rotate-root",), ("verify",), ("rewrap",)):
            self.assertProviderFailure(self.ik(*cmd), before)

    def assertRewrapIsANoOp(self):
        before = self.inst.snapshot()
        r = self.ik("rewrap")
        self.assertExit(r, "ok")
        self.assertIn("nothing to do", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def assertFailsWhenDown(self, peer):
        peer.stop()
        before = self.state()  # what the stopped peer held cannot change; the rest must not
        r = self.ik("rotate-root")
        self.assertProviderFailure(r, before)
        self.assertIn(self.current.kind if self.current.kind != "native" else "kubernetes", r.stderr)
        self.assertProviderFailure(self.ik("verify"), before)


# --- AWS KMS ----------------------------------------------------------------------------------
class KmsTest(RemoteE2E):
    def make_provider(self):
        self.kms = self.start(peerlib.kms(keys=("alias/infra", "alias/other")))
        return Kms(self.kms)

    def test_init_then_verify_at_every_level(self):
        r = self.ik("init")
        self.assertExit(r, "ok")
        row = self.inst.db_key_row()
        self.assertEqual((row["algorithm"], row["root_key_id"]), ("AES_256", "alias/infra"))
        self.assertEqual(len(self.p.unwrap(row["encrypted"])), 32)
        self.assertIn("nothing", self.ik("init").stdout)
        for level in ("config", "keys", "full"):
            self.assertExit(self.ik("verify", "--level", level), "ok")

    def test_verify_reports_the_kms_key_state(self):
        self.seed()
        r = self.ik("verify", "--level", "full")
        self.assertExit(r, "ok")
        self.assertIn("state Enabled", r.stdout)

    def test_rotate_root_reencrypts_inside_kms_and_rekeys_every_value(self):
        self.seed(10)
        old = self.inst.db_key_row()
        r = self.ik("rotate-root")
        self.assertExit(r, "ok")
        row = self.inst.db_key_row()
        self.assertNotEqual(row["encrypted"], old["encrypted"])
        self.assertEqual(row["root_key_id"], "alias/infra")
        self.assertAllDecrypt()
        self.assertExit(self.ik("verify", "--level", "full"), "ok")

    def test_rotate_root_to_another_kms_key_says_to_update_the_config(self):
        self.seed()
        r = self.ik("rotate-root", "--to-key-id", "alias/other")
        self.assertExit(r, "ok")
        self.assertIn("dbEncryptionKey must now be alias/other", r.stdout)
        self.assertEqual(self.inst.db_key_row()["root_key_id"], "alias/other")
        self.assertExit(self.ik("verify"), "wrong_key")
        self.p.key = "alias/other"
        self.use(self.p)
        self.assertExit(self.ik("verify", "--level", "full"), "ok")
        self.assertAllDecrypt()

    def test_restore_of_a_native_backup_rewraps_the_row_under_the_configured_kms_key(self):
        # The key backup was made while the installation was native; the config names KMS now,
        # and the native key is gone: restore re-wraps the backup's db key under the KMS key.
        self.inst.write_config()
        self.inst.seed(values_per_column=5)
        pass_file, path = os.path.join(self.inst.dir, "passphrase"), os.path.join(self.inst.dir, "keys.backup")
        with open(pass_file, "w") as f:
            f.write("correct horse battery staple\n")
        self.assertExit(self.inst.run("backup", "-o", path, "--passphrase-file", pass_file, "--scrypt-work-factor", "10"),
                        "ok")
        os.remove(self.inst.key_path)
        self.use(self.p)
        before = self.state()
        r = self.ik("restore", path, "--passphrase-file", pass_file, "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn("would re-wrap dbkey row", r.stdout)
        self.assertIn("awskms", r.stdout)
        self.assertEqual(before, self.state())
        self.assertExit(self.ik("restore", path, "--passphrase-file", pass_file), "ok")
        row = self.inst.db_key_row()
        self.assertEqual((row["algorithm"], row["root_key_id"]), ("AES_256", "alias/infra"))
        self.assertAllDecrypt()  # the db key as the aws CLI decrypts it from the row
        self.assertExit(self.ik("verify", "--level", "full"), "ok")

    def test_rewrap_is_a_no_op_when_kms_already_wraps_the_row(self):
        self.seed()
        self.assertRewrapIsANoOp()

    def test_failures_exit_with_provider_unreachable_and_change_nothing(self):
        self.seed()
        before = self.state()
        cases = {
            "throttled beyond retries": lambda: self.kms.fail(status=429),
            "disabled key": lambda: self.kms.disable_key("alias/infra"),
            "service error": lambda: self.kms.fail(status=503),
        }
        for name, breaks in cases.items():
            with self.subTest(name):
                breaks()
                try:
                    self.assertEveryCommandFails(before)
                finally:
                    self.kms.reset()
                    self.kms.enable_key("alias/infra")
        with self.subTest("disabled key message"):
            self.kms.disable_key("alias/infra")
            try:
                r = self.ik("verify")
                self.assertProviderFailure(r, before)
                self.assertIn("not enabled", r.stderr)
            finally:
                self.kms.enable_key("alias/infra")
        with self.subTest("bad credentials"):
            r = self.ik("rotate-root", env={"IK_KMS_SECRET": "not-the-secret"})
            self.assertProviderFailure(r, before)
            self.assertNotIn("not-the-secret", r.stderr + r.stdout)
        with self.subTest("wrong key id"):
            self.use(Kms(self.kms, key="alias/missing"))
            self.assertProviderFailure(self.ik("rotate-root"), before)
            self.assertProviderFailure(self.ik("verify"), before)
            self.use(self.p)
        with self.subTest("peer down"):
            self.assertFailsWhenDown(self.kms)

    def test_a_target_key_that_wraps_but_does_not_unwrap_is_refused_by_the_plan(self):
        self.seed()
        before = self.state()
        for args in (["rotate-root", "--dry-run"], ["rotate-root"]):
            with self.subTest(args=args):
                # The first Decrypt opens the current row; the plan's test key is the second.
                self.kms.fail(op="Decrypt", after=1, status=400, type="AccessDeniedException",
                              message="not authorized to perform kms:Decrypt")
                try:
                    r = self.ik(*args)
                finally:
                    self.kms.reset()
                self.assertProviderFailure(r, before)
                self.assertIn("kms:Decrypt", r.stderr)
        r = self.ik("rotate-root", "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn("wraps and unwraps a test key", r.stdout)

    def test_provider_calls_do_not_grow_with_the_number_of_values(self):
        self.assertConstantCalls(self.kms, ("init",), ("verify", "--level", "full"), ("rotate-root",))

    def test_init_of_a_new_installation_makes_a_few_calls(self):
        self.kms.reset()
        self.assertExit(self.ik("init"), "ok")
        self.assertLessEqual(self.kms.stats()["total"], 4)


# --- Vault transit ------------------------------------------------------------------------------
class VaultTest(RemoteE2E):
    def make_provider(self):
        self.vault = self.start(peerlib.vault())
        return Vault(self.vault)

    def test_init_then_verify_at_every_level(self):
        r = self.ik("init")
        self.assertExit(r, "ok")
        row = self.inst.db_key_row()
        self.assertTrue(row["encrypted"].startswith(b"vault:v1:"))
        self.assertEqual((row["algorithm"], row["root_key_id"]), ("aes256-gcm96", "infra-root"))
        for level in ("config", "keys", "full"):
            self.assertExit(self.ik("verify", "--level", level), "ok")

    def test_rotate_root_adds_a_key_version_and_rewraps_inside_vault(self):
        self.seed(10)
        r = self.ik("rotate-root")
        self.assertExit(r, "ok")
        self.assertTrue(self.inst.db_key_row()["encrypted"].startswith(b"vault:v2:"))
        self.assertEqual(self.p.call("keys/infra-root")["latest_version"], 2)
        self.assertAllDecrypt()
        v = self.ik("verify", "--level", "full")
        self.assertExit(v, "ok")
        self.assertIn("wrapped by key version 2", v.stdout)
        self.assertIn("min_decryption_version 1", v.stdout)
        # Nothing half-done can be left by a Vault rotation.
        self.assertIn("nothing to resume", self.ik("rotate-root", "--resume").stdout)

    def test_a_kill_at_every_vault_rotation_step_leaves_a_working_installation(self):
        self.seed()
        for point in ["rotate-after-provider-rotate", "rotate-before-commit", "rotate-after-commit"]:
            with self.subTest(point=point):
                r = self.ik("rotate-root", env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                self.assertExit(self.ik("verify", "--level", "full"), "ok")
                self.assertAllDecrypt()
                self.assertExit(self.ik("rotate-root"), "ok")
                self.assertExit(self.ik("verify", "--level", "full"), "ok")
                self.assertAllDecrypt()

    def test_rewrap_after_vault_rotated_its_key_by_itself_is_a_no_op(self):
        self.seed()
        self.p.call("keys/infra-root/rotate", {})
        self.assertRewrapIsANoOp()

    def test_failures_exit_with_provider_unreachable_and_change_nothing(self):
        self.seed()
        before = self.state()
        with self.subTest("throttled beyond retries"):
            self.vault.fail(status=429)
            try:
                self.assertEveryCommandFails(before)
            finally:
                self.vault.reset()
        with self.subTest("bad token (403)"):
            self.inst.write_config(self.p.config(token="plaintext:not-the-token"))
            r = self.ik("rotate-root")
            self.assertProviderFailure(r, before)
            self.assertIn("permission denied", r.stderr)
            self.assertNotIn("not-the-token", r.stderr + r.stdout)
            self.use(self.p)
        with self.subTest("wrong key name"):
            self.use(Vault(self.vault, key="no-such-key"))
            r = self.ik("verify")
            self.assertProviderFailure(r, before)
            self.use(self.p)
        with self.subTest("peer down"):
            self.assertFailsWhenDown(self.vault)

    def test_provider_calls_do_not_grow_with_the_number_of_values(self):
        self.assertConstantCalls(self.vault, ("init",), ("verify", "--level", "full"), ("rotate-root",))


# --- native root key in a Kubernetes Secret -------------------------------------------------------
class KubeTest(RemoteE2E):
    def make_provider(self):
        self.kube = self.start(peerlib.kube())
        return Kube(self.kube, self.inst.dir)

    def provider_state(self):
        return repr(sorted(self.p.secret().items())) if self.kube.proc else ""  # a stopped peer holds still

    def retired(self):
        return sorted(k for k in self.p.secret() if k.endswith(".retired"))

    def assertConverged(self):
        self.assertExit(self.ik("verify", "--level", "full"), "ok")
        self.assertNotIn("__root_key.new", self.p.secret())
        self.assertAllDecrypt()

    def test_init_creates_the_secret_then_verify_at_every_level(self):
        self.assertExit(self.ik("init"), "ok")
        self.assertEqual(len(self.p.secret()["__root_key"]), 32)
        self.assertEqual(self.inst.db_key_row()["root_key_id"], "infra-x/__root_key")
        for level in ("config", "keys", "full"):
            self.assertExit(self.ik("verify", "--level", level), "ok")

    def test_rotate_root_keeps_the_old_key_in_the_same_secret(self):
        self.seed(10)
        old_key = self.p.secret()["__root_key"]
        r = self.ik("rotate-root")
        self.assertExit(r, "ok")
        secret = self.p.secret()
        self.assertNotEqual(secret["__root_key"], old_key)
        self.assertEqual(len(self.retired()), 1)
        self.assertEqual(secret[self.retired()[0]], old_key)
        self.assertConverged()
        self.assertIn(self.retired()[0], self.ik("status").stdout)
        self.assertExit(self.ik("rotate-root", "--retire-old"), "ok")
        self.assertEqual(self.retired(), [])
        self.assertConverged()

    def test_a_kill_at_every_rotation_step_is_recoverable(self):
        self.seed(10)
        for point in ROTATE_POINTS:
            with self.subTest(point=point):
                r = self.ik("rotate-root", env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                row = self.inst.db_key_row()
                secret = self.p.secret()
                opening = []
                for name, key in secret.items():
                    try:
                        infra.unseal(key, row["encrypted"].decode(), infra.EMPTY_KEY_ID)
                        opening.append(name)
                    except Exception:
                        pass
                self.assertTrue(opening, "no key in the Secret unwraps the dbkey row")
                v = self.ik("verify")
                if point == "rotate-after-install":
                    self.assertExit(v, "ok")
                else:
                    self.assertExit(v, "interrupted")
                    self.assertIn("infra-keys rotate-root --resume", v.stderr)
                    self.assertExit(self.ik("rewrap"), "interrupted")
                self.assertExit(self.ik("rotate-root", "--resume"), "ok")
                self.assertConverged()

    def test_rotation_keeps_the_secrets_labels_and_annotations(self):
        self.seed(3)
        labels = {"app.kubernetes.io/name": "infra-server", "app.kubernetes.io/instance": "infra",
                  "helm.sh/chart": "infra-0.19.0"}
        annotations = {"helm.sh/resource-policy": "keep", "meta.helm.sh/release-name": "infra"}
        self.kube.put_secret("default", "infra-x", self.p.secret(), labels=labels, annotations=annotations)
        old = self.p.secret()["__root_key"]
        self.assertExit(self.ik("rotate-root"), "ok")
        self.assertNotEqual(self.p.secret()["__root_key"], old)
        meta = self.kube.secret_metadata("default", "infra-x")
        self.assertEqual((meta.get("labels"), meta.get("annotations")), (labels, annotations))
        self.assertAllDecrypt()
        self.assertEqual(set(self.kube.ops()) & {"secrets.patch"}, set())   # get and update only (RBAC)

    def test_status_warns_about_a_helm_managed_key_secret_without_resource_policy_keep(self):
        self.seed(1)
        labels = {"app.kubernetes.io/managed-by": "Helm"}
        self.kube.put_secret("default", "infra-x", self.p.secret(), labels=labels)
        r = self.ik("status")
        self.assertExit(r, "ok")
        self.assertIn("without the annotation helm.sh/resource-policy: keep", r.stderr)
        self.kube.put_secret("default", "infra-x", self.p.secret(), labels=labels,
                             annotations={"helm.sh/resource-policy": "keep"})
        r = self.ik("status")
        self.assertExit(r, "ok")
        self.assertNotIn("resource-policy", r.stderr)

    def test_verify_names_a_key_secret_regenerated_by_a_gitops_render(self):
        self.seed(3)
        self.kube.put_secret("default", "infra-x", {"__root_key": os.urandom(32)})   # helm template's new key
        before = self.state()
        r = self.ik("verify")
        self.assertExit(r, "wrong_key")
        self.assertIn("does not unwrap the db key", r.stderr)
        self.assertIn("hint: if a GitOps tool rendered the Infra Helm chart without a cluster", r.stderr)
        self.assertEqual(before, self.state())

    def test_a_concurrent_change_of_the_secret_makes_the_slot_write_fail(self):
        self.seed()
        # A leftover new key is an interrupted rotation: a second rotation must not overwrite it.
        secret = self.p.secret()
        secret["__root_key.new"] = os.urandom(32)
        self.kube.put_secret("default", "infra-x", secret)
        before = self.state()
        self.assertExit(self.ik("rotate-root"), "interrupted")
        self.assertEqual(before, self.state())

    def test_other_commands_say_in_progress_while_a_rotation_runs_and_interrupted_after_a_kill(self):
        # No key directory to lock: the database's change lock is what shows the rotation.
        self.seed()
        env = dict(os.environ, HOME=self.inst.dir, INFRA_KEYS_FAILPOINT="rotate-after-write-new-key:stop", **self.p.env)
        p = subprocess.Popen([BIN, "--config", self.inst.config_path, "rotate-root"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_until_stopped(p)
            self.assertIn("__root_key.new", self.p.secret())
            for args in (["verify"], ["status"], ["rotate-root"], ["rotate-root", "--resume"]):
                with self.subTest(args=args):
                    r = self.ik(*args)
                    self.assertExit(r, "refused")
                    self.assertIn("in progress", r.stderr)
                    # The database's lock names its holder: the process (SQLite) or its session.
                    self.assertIn("session" if BACKEND == "postgres" else f"pid {p.pid}", r.stderr)
        finally:
            p.kill()
            p.wait()
            p.stderr.close()
        r = self.ik("verify")
        self.assertExit(r, "interrupted")
        self.assertExit(self.ik("rotate-root", "--resume"), "ok")
        self.assertConverged()

    def test_two_concurrent_rotations_never_mix(self):
        # No flock spans a cluster: the database lock, taken before any key is written, is what
        # stops the second rotation (--server-stopped: else each sees the other hold the SQLite file).
        self.seed()
        env = dict(os.environ, HOME=self.inst.dir, **self.p.env)
        argv = [BIN, "--config", self.inst.config_path, "rotate-root", "--server-stopped"]
        for _ in range(3):
            procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
            results = sorted((p.wait(), p.stderr.read()) for p in procs)
            for p in procs:
                p.stderr.close()
            codes = [code for code, _ in results]
            self.assertTrue(codes in ([0, 0], [0, EXIT["refused"]]), results)
            self.assertNotIn("__root_key.new", self.p.secret())
            self.assertConverged()

    def test_backup_and_restore_round_trip(self):
        self.seed()
        backup = os.path.join(self.inst.dir, "infra.backup")
        passphrase = os.path.join(self.inst.dir, "passphrase")
        with open(passphrase, "w") as f:
            f.write("correct horse battery staple\n")
        r = self.ik("backup", "--output", backup, "--passphrase-file", passphrase, "--scrypt-work-factor", "10")
        self.assertExit(r, "ok")
        root_key = self.p.secret()["__root_key"]
        self.kube.delete_secret("default", "infra-x")
        self.assertExit(self.ik("verify"), "provider")
        self.assertExit(self.ik("restore", backup, "--passphrase-file", passphrase), "ok")
        self.assertEqual(self.p.secret()["__root_key"], root_key)
        self.assertConverged()

    def test_failures_exit_with_provider_unreachable_and_change_nothing(self):
        self.seed()
        before = self.state()
        with self.subTest("bad token"):
            bad = self.kube.write_kubeconfig(os.path.join(self.kube.dir, "bad-kubeconfig"), token="nope")
            r = self.ik("rotate-root", env={"KUBECONFIG": bad})
            self.assertProviderFailure(r, before)
            self.assertIn("Unauthorized", r.stderr)
        with self.subTest("peer down"):
            self.assertFailsWhenDown(self.kube)

    def test_provider_calls_do_not_grow_with_the_number_of_values(self):
        self.assertConstantCalls(self.kube, ("init",), ("verify", "--level", "full"), ("rotate-root",),
                                 ("rotate-root", "--retire-old"))


# --- credentials a CronJob or a laptop has, without keys in the config -----------------------------
def write_file(directory, name, text, mode=0o600):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class KmsAmbient(Kms):
    """awskms whose keys entry names no credentials: they come from the environment's sources."""

    def __init__(self, peer, env):
        super().__init__(peer)
        self.env = dict(BASE_ENV, **env)

    def config(self, key=None):
        return (f"dbEncryptionKeyProvider: awskms\ndbEncryptionKey: {key or self.key}\nkeys:\n  - kind: awskms\n"
                f"    config:\n      endpoint: {self.peer.url}\n      region: {self.peer.region}\n")


class AwsCredentialSourcesTest(RemoteE2E):
    ROLE = "arn:aws:iam::111122223333:role/infra-keys"

    def make_provider(self):
        self.kms = self.start(peerlib.kms(web_identity_token="oidc-token-of-the-pod", container_token="pod-identity-token"))
        return KmsAmbient(self.kms, {})

    def file(self, name, text, mode=0o600):
        return write_file(self.kms.dir, name, text, mode)

    def assertWorksWith(self, env, op, by_helper=False):
        """verify and rotate-root work with these credentials; every request infra-keys made names
        it (by_helper: `op` is made by the credential_process helper, not by infra-keys)."""
        self.use(KmsAmbient(self.kms, env))
        self.kms.reset()
        self.assertExit(self.ik("verify", "--level", "full"), "ok")
        self.assertExit(self.ik("rotate-root"), "ok")
        log = self.kms.log()   # before the test's own client (awscli) calls the peer
        self.assertAllDecrypt()
        self.assertIn(op, self.kms.ops())
        ours = [entry for entry in log if not (by_helper and entry["op"] == op)]
        self.assertTrue(ours and all((entry.get("user_agent") or "").startswith("infra-keys/") for entry in ours), log)
        # Never an encryption context: the server sends none, so it could not decrypt.
        self.assertFalse([e for e in log if "EncryptionContext" in e.get("params", {})])

    def test_web_identity_assumes_the_role_through_sts(self):
        self.seed(3)
        token = self.file("token", "oidc-token-of-the-pod\n")
        self.assertWorksWith({"AWS_ROLE_ARN": self.ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": token,
                              "AWS_ROLE_SESSION_NAME": "cronjob", "AWS_ENDPOINT_URL_STS": self.kms.url},
                             "sts.AssumeRoleWithWebIdentity")
        self.assertEqual(self.kms.ops()["sts.AssumeRoleWithWebIdentity"], 2)   # once in each of the two runs

    def test_container_credentials_send_the_token_file(self):
        self.seed(3)
        token = self.file("pod-token", "pod-identity-token")
        self.assertWorksWith({"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.kms.url + "/v1/credentials",
                              "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token}, "ContainerCredentials")

    def test_credential_process_of_the_profile(self):
        self.seed(3)
        script = self.file("creds.py", "#!/usr/bin/python3\nimport json, sys, urllib.request\n"
                           "req = urllib.request.Request(sys.argv[1], headers={'Authorization': 'pod-identity-token'})\n"
                           "c = json.load(urllib.request.urlopen(req))\n"
                           "print(json.dumps({'Version': 1, 'AccessKeyId': c['AccessKeyId'], "
                           "'SecretAccessKey': c['SecretAccessKey'], 'SessionToken': c['Token']}))\n", mode=0o700)
        config = self.file("aws-config", f"[profile ops]\ncredential_process = {script} '{self.kms.url}/v1/credentials'\n")
        self.assertWorksWith({"AWS_PROFILE": "ops", "AWS_CONFIG_FILE": config,
                              "AWS_SHARED_CREDENTIALS_FILE": self.file("none", "")}, "ContainerCredentials",
                             by_helper=True)

    def test_a_rejected_web_identity_token_is_a_provider_error_that_changes_nothing(self):
        self.seed(3)
        before = self.state()
        token = self.file("forged", "forged-token")
        self.use(KmsAmbient(self.kms, {"AWS_ROLE_ARN": self.ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": token,
                                       "AWS_ENDPOINT_URL_STS": self.kms.url}))
        r = self.ik("rotate-root")
        self.assertProviderFailure(r, before)
        self.assertIn("InvalidIdentityToken", r.stderr)
        self.assertNotIn("forged-token", r.stderr)

    def test_a_missing_web_identity_token_file_is_a_usage_error(self):
        self.seed(1)
        self.use(KmsAmbient(self.kms, {"AWS_ROLE_ARN": self.ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/token",
                                       "AWS_ENDPOINT_URL_STS": self.kms.url}))
        r = self.ik("verify")
        self.assertExit(r, "usage")
        self.assertIn("/nonexistent/token", r.stderr)

    def test_no_credentials_at_all_is_a_usage_error_naming_the_sources(self):
        self.seed(1)
        r = self.ik("verify", env={"AWS_CONFIG_FILE": self.file("empty", ""), "AWS_SHARED_CREDENTIALS_FILE": self.file("empty2", "")})
        self.assertExit(r, "usage")
        self.assertIn("AWS_WEB_IDENTITY_TOKEN_FILE", r.stderr)


class VaultAmbient(Vault):
    def __init__(self, peer, env):
        super().__init__(peer)
        self.env = dict(BASE_ENV, **env)

    def config(self, token=None):
        return (f"dbEncryptionKeyProvider: vault\ndbEncryptionKey: {self.key}\nkeys:\n  - kind: vault\n"
                f"    config:\n      address: {self.peer.url}\n")


class VaultCredentialSourcesTest(RemoteE2E):
    def make_provider(self):
        self.vault = self.start(peerlib.vault(kubernetes_roles={"infra-keys": "sa-jwt"},
                                              approles={"role-1": "secret-1"}))
        return VaultAmbient(self.vault, {})

    def file(self, name, text):
        return write_file(self.vault.dir, name, text)

    def assertWorksWith(self, env, login=None):
        self.use(VaultAmbient(self.vault, env))
        self.vault.reset()
        self.assertExit(self.ik("verify", "--level", "full"), "ok")
        self.assertExit(self.ik("rotate-root"), "ok")
        ops, log = self.vault.ops(), self.vault.log()   # before the test's own client calls the peer
        self.assertAllDecrypt()
        self.assertEqual(ops.get("login", 0), 2 if login else 0)   # one login per run
        self.assertTrue(log and all((e.get("user_agent") or "").startswith("infra-keys/") for e in log), log)

    def test_kubernetes_auth_logs_in_with_the_service_account_token(self):
        self.seed(3)
        self.assertWorksWith({"INFRA_KEYS_VAULT_K8S_ROLE": "infra-keys",
                              "INFRA_KEYS_VAULT_K8S_TOKEN_FILE": self.file("sa-token", "sa-jwt\n")}, login=True)

    def test_approle_logs_in_with_the_secret_id_file(self):
        self.seed(3)
        self.assertWorksWith({"INFRA_KEYS_VAULT_ROLE_ID": "role-1",
                              "INFRA_KEYS_VAULT_SECRET_ID_FILE": self.file("secret-id", "secret-1")}, login=True)

    def test_a_token_file_sink_and_the_vault_cli_token_file(self):
        self.seed(3)
        self.assertWorksWith({"INFRA_KEYS_VAULT_TOKEN_FILE": self.file("sink", self.vault.token + "\n")})
        with open(os.path.join(self.inst.dir, ".vault-token"), "w") as f:
            f.write(self.vault.token)
        self.assertWorksWith({})

    def test_a_refused_login_is_a_provider_error_that_changes_nothing(self):
        self.seed(3)
        before = self.state()
        self.use(VaultAmbient(self.vault, {"INFRA_KEYS_VAULT_K8S_ROLE": "infra-keys",
                                           "INFRA_KEYS_VAULT_K8S_TOKEN_FILE": self.file("bad", "forged-jwt")}))
        r = self.ik("rotate-root")
        self.assertProviderFailure(r, before)
        self.assertIn("permission denied", r.stderr)
        self.assertNotIn("forged-jwt", r.stderr)


# --- the same Secret reached as from a laptop: a kubeconfig whose user is an exec plugin ---------
class KubeExec(Kube):
    """As EKS, GKE and AKS kubeconfigs are: the token comes from an exec credential plugin."""

    def __init__(self, peer, directory, api_version="v1"):
        self.peer, self.dir = peer, directory
        self.token_file = os.path.join(directory, "exec-tokens")
        self.calls_file = os.path.join(directory, "exec-calls")
        with open(self.token_file, "w") as f:
            f.write(peer.token)
        self.kubeconfig = peer.write_exec_kubeconfig(
            os.path.join(directory, "exec-kubeconfig"), self.token_file, api_version=api_version,
            extra_args=["--calls", self.calls_file, "--expires-in", "900"])
        self.env = dict(BASE_ENV, KUBECONFIG=self.kubeconfig)

    def calls(self):
        """Runs of the plugin since the last call of this method."""
        return peerlib.take_count(self.calls_file)


class KubeExecTest(RemoteE2E):
    def make_provider(self):
        self.kube = self.start(peerlib.kube())
        return KubeExec(self.kube, self.inst.dir)

    def provider_state(self):
        return repr(sorted(self.p.secret().items())) if self.kube.proc else ""

    def test_verify_rotate_backup_restore_through_the_plugin_run_once_per_command(self):
        self.seed(5)
        self.assertExit(self.ik("verify", "--level", "full"), "ok")
        self.assertEqual(self.p.calls(), 1)
        old = self.p.secret()["__root_key"]
        self.assertExit(self.ik("rotate-root"), "ok")
        self.assertNotEqual(self.p.secret()["__root_key"], old)
        self.assertEqual(self.p.calls(), 1)
        self.assertAllDecrypt()
        backup = os.path.join(self.inst.dir, "infra.backup")
        passphrase = os.path.join(self.inst.dir, "passphrase")
        with open(passphrase, "w") as f:
            f.write("correct horse battery staple\n")
        self.assertExit(self.ik("backup", "--output", backup, "--passphrase-file", passphrase,
                                "--scrypt-work-factor", "10"), "ok")
        root_key = self.p.secret()["__root_key"]
        self.kube.delete_secret("default", "infra-x")
        self.assertExit(self.ik("restore", backup, "--passphrase-file", passphrase), "ok")
        self.assertEqual(self.p.secret()["__root_key"], root_key)
        self.assertExit(self.ik("verify", "--level", "full"), "ok")
        self.assertAllDecrypt()

    def test_v1beta1_plugins_work_without_interactive_mode(self):
        self.p = KubeExec(self.kube, self.inst.dir, api_version="v1beta1")
        self.use(self.p)
        self.seed(2)
        self.assertExit(self.ik("verify"), "ok")

    def test_a_revoked_token_runs_the_plugin_again_and_the_command_succeeds(self):
        self.seed(2)
        with open(self.p.token_file, "w") as f:
            f.write("revoked-token\n" + self.kube.token)   # the first run hands out a revoked token
        self.kube.reset()
        self.assertExit(self.ik("verify"), "ok")
        self.assertEqual(self.p.calls(), 2)
        self.assertEqual(self.kube.stats()["statuses"].get("401"), 1)

    def test_a_missing_plugin_is_a_usage_error_with_the_install_hint(self):
        self.seed(2)
        before = self.state()
        missing = self.kube.write_exec_kubeconfig(os.path.join(self.kube.dir, "missing"), self.p.token_file,
                                                  command="no-such-credential-plugin",
                                                  install_hint="apt-get install the-plugin")
        r = self.ik("rotate-root", env={"KUBECONFIG": missing})
        self.assertExit(r, "usage")
        self.assertIn("executable no-such-credential-plugin not found", r.stderr)
        self.assertIn("hint: apt-get install the-plugin", r.stderr)
        self.assertEqual(before, self.state())

    def test_a_failing_plugin_is_a_provider_error_and_its_stderr_reaches_the_operator(self):
        self.seed(2)
        before = self.state()
        failing = self.kube.write_exec_kubeconfig(os.path.join(self.kube.dir, "failing"), self.p.token_file,
                                                  extra_args=["--fail", "4"])
        r = self.ik("rotate-root", env={"KUBECONFIG": failing})
        self.assertExit(r, "provider")
        self.assertIn("failed with exit code 4", r.stderr)
        self.assertIn("kube_exec_plugin: failing as asked", r.stderr)
        self.assertEqual(before, self.state())

    def test_a_plugin_handing_out_a_client_certificate_authenticates_with_it(self):
        self.seed(2)
        cert, key = self.kube.client_cert
        kubeconfig = self.kube.write_exec_kubeconfig(os.path.join(self.kube.dir, "cert-exec"), None,
                                                     extra_args=["--cert", cert, "--key", key])
        self.kube.reset()
        self.assertExit(self.ik("verify", "--level", "full", env={"KUBECONFIG": kubeconfig}), "ok")
        self.assertEqual(self.kube.stats()["statuses"].get("401"), None)

    def test_interactive_mode_always_without_a_terminal_is_refused(self):
        always = self.kube.write_exec_kubeconfig(os.path.join(self.inst.dir, "always"), self.p.token_file,
                                                 interactive_mode="Always")
        r = self.ik("verify", env={"KUBECONFIG": always})
        self.assertExit(r, "usage")
        self.assertIn("standard input is not a terminal", r.stderr)

    def test_if_available_hands_the_plugin_a_terminal_when_there_is_one(self):
        self.seed(2)
        info = os.path.join(self.inst.dir, "exec-info.json")
        kubeconfig = self.kube.write_exec_kubeconfig(os.path.join(self.inst.dir, "tty"), self.p.token_file,
                                                     interactive_mode="IfAvailable", extra_args=["--exec-info", info])
        primary, secondary = os.openpty()
        try:
            env = dict(os.environ, HOME=self.inst.dir, KUBECONFIG=kubeconfig, **BASE_ENV)
            r = subprocess.run([BIN, "--config", self.inst.config_path, "verify"], stdin=secondary,
                               capture_output=True, text=True, env=env, timeout=120)
        finally:
            os.close(primary)
            os.close(secondary)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(info) as f:
            seen = json.load(f)
        self.assertTrue(seen["stdin_tty"])
        self.assertTrue(json.loads(seen["exec_info"])["spec"]["interactive"])

    def test_context_and_namespace_options_choose_where_the_secret_is(self):
        self.seed(2)
        secret = self.p.secret()
        self.kube.put_secret("team", "infra-x", secret)
        self.kube.delete_secret("default", "infra-x")
        self.assertExit(self.ik("verify"), "provider")
        self.assertExit(self.ik("verify", "--namespace", "team"), "ok")
        self.assertExit(self.ik("verify", "--context", "no-such-context"), "usage")


# --- migration between providers ------------------------------------------------------------------
class MigrationTest(RemoteE2E):
    def make_provider(self):
        self.kms_p, self.vault_p = remote.kms_and_vault(self)
        self.kms, self.vault = self.kms_p.peer, self.vault_p.peer
        return NativeFile(self.inst.key_path)

    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=10)  # sealed under the native key file

    def migrate(self, provider, inst=None):
        self.current = provider
        return remote.migrate(inst or self.inst, provider, env=dict(self.kms_p.env, **self.vault_p.env))

    def test_native_file_to_awskms_to_vault_and_back_to_native(self):
        steps = [self.kms_p, self.vault_p, NativeFile(os.path.join(self.inst.dir, "new-root.key"))]
        for provider in steps:
            with self.subTest(provider.kind):
                r = self.migrate(provider)
                self.assertExit(r, "ok")
                self.assertIn("re-wrapped", r.stdout)
                self.assertEqual(self.inst.db_key_row()["algorithm"], provider.algorithm)
                self.assertExit(self.ik("verify", "--level", "full"), "ok")
                self.assertAllDecrypt()
        self.assertEqual(os.stat(steps[-1].path).st_mode & 0o777, 0o600)

    def test_rewrap_calls_do_not_grow_with_the_number_of_values(self):
        for target, peer in ((self.kms_p, self.kms), (self.vault_p, self.vault)):
            counts = []
            for n in (1, 100):
                inst = Installation()
                try:
                    inst.seed(values_per_column=n)
                    if target is self.vault_p and n != 1:
                        self.vault.delete_key(target.key)  # so that each run creates the transit key
                    peer.reset()
                    self.assertExit(self.migrate(target, inst), "ok")
                    counts.append(peer.stats()["total"])
                finally:
                    inst.close()
            self.assertEqual(counts[0], counts[1], f"{target.kind}: {counts}")

    def test_a_failing_target_provider_changes_nothing(self):
        before = self.state()
        self.kms.fail(status=503)
        self.assertProviderFailure(self.migrate(self.kms_p), before)


if __name__ == "__main__":
    unittest.main()
