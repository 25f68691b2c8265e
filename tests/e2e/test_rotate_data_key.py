"""rotate-data-key: a new db key, every sealed value opened and sealed again under it, in one
transaction — checked by the independent reader (infra.py) as the server would read the values.
Runs on SQLite and, under e2e-postgres, on PostgreSQL; the remote providers against their peers."""
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import unittest

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import harness
import infra
import releases
import remote
from harness import BACKEND, E2E, read_file, wait_until_stopped

FAILPOINTS = ["rotate-data-key-before-commit", "rotate-data-key-after-commit"]
PASSPHRASE = "correct horse battery staple"
FAMILIES = list(releases.FAMILIES) if BACKEND == "postgres" else releases.SQLITE_FAMILIES


def opens_with(key, text):
    """Whether `key` opens the sealed text, whatever key id it carries (GCM alone decides)."""
    p = infra.parse(text)
    try:
        AESGCM(key).decrypt(p["nonce"], p["ciphertext"], None)
        return True
    except Exception:
        return False


class DataKeyCase(E2E):
    def db_key_now(self, root_key=None):
        """The db key the live dbkey row wraps, unwrapped by the root key file as the server does."""
        row = self.inst.db_key_row()
        return infra.unseal(root_key or read_file(self.inst.key_path), row["encrypted"].decode(), infra.EMPTY_KEY_ID)

    def assertAllResealed(self, stored, old_key, new_key, new_kid, root_key_id):
        """stored: {name: text}. Every value opens with the new key under its key id, none with the old."""
        self.assertTrue(stored)
        for name, text in stored.items():
            infra.unseal(new_key, text, new_kid)
            self.assertFalse(opens_with(old_key, text), name)
            self.assertEqual(infra.parse(text)["root_key_id"], root_key_id.encode(), name)

    def state_hashes(self):
        """sha256 of the database (SQLite: the file; PostgreSQL: every row) and of every key file."""
        files = {n: hashlib.sha256(read_file(os.path.join(self.inst.dir, n))).hexdigest()
                 for n in sorted(os.listdir(self.inst.dir)) if os.path.isfile(os.path.join(self.inst.dir, n))}
        return files if BACKEND == "sqlite" else (files, self.inst.snapshot())

    def assertRefusedBoth(self, name, *args, expect_in=None):
        """The dry run predicts the real run's exit code; neither changes a byte."""
        before = self.state_hashes()
        for dry in (["--dry-run"], []):
            r = self.inst.run("rotate-data-key", *dry, *args, timeout=30)
            self.assertExit(r, name)
            if expect_in:
                self.assertIn(expect_in, r.stderr)
            self.assertEqual(len([line for line in r.stderr.splitlines() if not line.startswith("infra-keys: hint:")]),
                             1, r.stderr)
            self.assertEqual(before, self.state_hashes())


class RotateDataKeyTest(DataKeyCase):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=10, empty_every=4)

    def test_a_new_db_key_re_seals_every_value_in_place(self):
        old_row, old_key = self.inst.db_key_row(), self.inst.db_key
        updated_at = "SELECT updated_at, created_at, key_id FROM encryption_keys WHERE name = 'dbkey'"
        old_times = self.inst.query(updated_at)[0]
        root_key = read_file(self.inst.key_path)
        dry = self.inst.run("rotate-data-key", "--dry-run", "--json")
        self.assertExit(dry, "ok")
        r = self.inst.run("rotate-data-key", "--json")
        self.assertExit(r, "ok")
        doc = json.loads(r.stdout)
        self.assertEqual((doc["command"], doc["ok"], doc["dry_run"], doc["values"]),
                         ("rotate-data-key", True, False, len(self.inst.plaintexts)))
        self.assertEqual(json.loads(dry.stdout)["values"], len(self.inst.plaintexts))
        self.assertTrue(json.loads(dry.stdout)["dry_run"])

        row = self.inst.db_key_row()
        self.assertEqual(row["id"], old_row["id"])  # the same row: the server loads one
        self.assertEqual((row["algorithm"], row["root_key_id"]), ("aesgcm", self.inst.key_path))
        self.assertEqual(len(self.inst.query("SELECT id FROM encryption_keys WHERE name = 'dbkey'")), 1)
        new_times = self.inst.query(updated_at)[0]
        self.assertNotEqual(new_times[0], old_times[0])  # updated_at: now
        self.assertEqual(new_times[1:], old_times[1:])   # created_at and key_id: the same row
        self.assertEqual(read_file(self.inst.key_path), root_key)  # the root key did not change
        new_key = self.db_key_now()
        self.assertNotEqual(new_key, old_key)
        new_kid = infra.key_id_of(row["encrypted"])
        self.assertNotEqual(new_kid, infra.key_id_of(old_row["encrypted"]))
        self.assertEqual(self.inst.decrypt_all(db_key=new_key), self.inst.plaintexts)
        self.assertAllResealed(self.inst.stored_values(), old_key, new_key, new_kid, self.inst.key_path)
        if BACKEND == "sqlite":
            self.assertEqual(self.inst.column_types("providers", "client_secret"), {"text"})
            self.assertEqual(self.inst.column_types("settings", "private_jwk"), {"blob"})
        else:
            self.assertEqual(self.inst.query("SELECT pg_typeof(private_jwk)::text FROM settings LIMIT 1"), [("bytea",)])
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        # Twice in a row: a second new key, nothing left under the first.
        self.assertExit(self.inst.run("rotate-data-key"), "ok")
        self.assertNotEqual(self.db_key_now(), new_key)
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_a_kill_at_each_fail_point_leaves_the_old_or_the_new_key_never_a_mix(self):
        for point in FAILPOINTS:
            with self.subTest(point=point):
                before = self.db_key_now()
                r = self.inst.run("rotate-data-key", env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
                after = self.db_key_now()
                # decrypt_all opens every value with the one key the row wraps: a mix would fail.
                self.assertEqual(self.inst.decrypt_all(db_key=after), self.inst.plaintexts)
                self.assertEqual(after == before, point.endswith("before-commit"))
                # Nothing was staged outside the transaction: the next run needs no --resume.
                self.assertExit(self.inst.run("rotate-data-key"), "ok")
                self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_a_value_that_does_not_open_refuses_and_changes_nothing(self):
        kid = infra.key_id_of(self.inst.db_key_row()["encrypted"])
        forged = infra.seal(os.urandom(32), b"not sealed by the db key", kid, self.inst.key_path)
        self.inst.execute("UPDATE providers SET client_secret = ? WHERE id = 3", (forged,))
        self.assertRefusedBoth("problems", expect_in="providers.client_secret row 3")

    def test_refuses_while_another_key_change_holds_the_lock(self):
        fd = os.open(self.inst.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.assertRefusedBoth("refused", expect_in="in progress")
        finally:
            os.close(fd)

    def test_refuses_while_the_server_uses_the_database(self):
        if BACKEND == "sqlite":
            holder = subprocess.Popen([sys.executable, "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); "
                                       "c.execute('select 1 from encryption_keys').fetchall(); print('ready', flush=True); "
                                       "time.sleep(60)", self.inst.db.path], stdout=subprocess.PIPE, text=True)
            holder.stdout.readline()
            release = lambda: (holder.kill(), holder.wait(), holder.stdout.close())  # noqa: E731
        else:
            other = self.inst.db.psycopg2.connect(self.inst.db.conninfo, application_name="infra-server")
            release = other.close
        try:
            self.assertRefusedBoth("refused", expect_in="stop the Infra server")
            self.assertExit(self.inst.run("rotate-data-key", "--server-stopped"), "ok")
        finally:
            release()
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_recipient_options_need_backup(self):
        self.assertRefusedBoth("usage", "--recipient", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")


class BackupOfTheNewKeyTest(DataKeyCase):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=3)
        self.backup = os.path.join(self.inst.dir, "new-key.backup")
        self.env = {"INFRA_KEYS_PASSPHRASE": PASSPHRASE}

    def test_backup_holds_the_new_db_key_and_opens_before_and_after(self):
        identity, recipient = self.age_recipient()
        r = self.inst.run("rotate-data-key", "--backup", self.backup, "--recipient", recipient)
        self.assertExit(r, "ok")
        self.assertEqual(os.stat(self.backup).st_mode & 0o777, 0o600)
        new_key = self.db_key_now()
        self.assertEqual(self.backed_up_db_key(identity), new_key)
        self.assertNotEqual(new_key, self.inst.db_key)
        r = self.inst.run("backup", "--check", self.backup, "-i", identity)
        self.assertExit(r, "ok")
        self.assertNotIn("not the live db key", r.stdout)
        self.assertExit(self.inst.run("restore", self.backup, "--dry-run", "-i", identity), "ok")

    def test_passphrase_backup_opens_offline_and_for_restore(self):
        r = self.inst.run("rotate-data-key", "--backup", self.backup, "--scrypt-work-factor", "10", env=self.env)
        self.assertExit(r, "ok")
        self.assertExit(self.inst.run("backup", "--check", self.backup, "--offline", env=self.env), "ok")
        self.assertExit(self.inst.run("backup", "--check", self.backup, env=self.env), "ok")
        self.assertExit(self.inst.run("restore", self.backup, "--dry-run", env=self.env), "ok")

    def test_an_existing_backup_file_is_never_replaced(self):
        with open(self.backup, "w") as f:
            f.write("an operator's file\n")
        before = self.state_hashes()
        for dry in (["--dry-run"], []):
            r = self.inst.run("rotate-data-key", *dry, "--backup", self.backup, env=self.env)
            self.assertExit(r, "refused")
            self.assertIn(self.backup, r.stderr)
        self.assertEqual(before, self.state_hashes())

    def age_recipient(self):
        identity = os.path.join(self.inst.dir, "age.key")
        subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
        return identity, subprocess.run(["age-keygen", "-y", identity], check=True, capture_output=True,
                                        text=True).stdout.strip()

    def backed_up_db_key(self, identity):
        doc = json.loads(subprocess.run(["age", "-d", "-i", identity, self.backup], check=True,
                                        capture_output=True).stdout)
        return bytes.fromhex(doc["db_key"]["key"])

    def test_a_kill_after_the_backup_before_the_commit_keeps_the_old_key(self):
        identity, recipient = self.age_recipient()
        r = self.inst.run("rotate-data-key", "--backup", self.backup, "--recipient", recipient,
                          env={"INFRA_KEYS_FAILPOINT": "rotate-data-key-before-commit"})
        self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
        self.assertEqual(self.db_key_now(), self.inst.db_key)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        # The file a kill leaves behind holds a db key that never committed (README, crash safety),
        # and `backup --check` refuses it as `restore` would.
        self.assertNotEqual(self.backed_up_db_key(identity), self.inst.db_key)
        c = self.inst.run("backup", "--check", self.backup, "-i", identity)
        self.assertExit(c, "wrong_key")
        self.assertIn("is not the one sealing", c.stdout + c.stderr)

    @unittest.skipUnless(BACKEND == "postgres", "a deferred constraint trigger that fails the COMMIT")
    def test_a_commit_that_fails_after_the_backup_removes_the_backup(self):
        _identity, recipient = self.age_recipient()
        self.inst.execute("""CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the test refuses this commit'; END $$;
            CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON encryption_keys DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION refuse_commit();""")
        before = self.state_hashes()
        r = self.inst.run("rotate-data-key", "--backup", self.backup, "--recipient", recipient)
        self.assertExit(r, "database")
        self.assertIn("the test refuses this commit", r.stderr)
        self.assertIn(f"undone: removed {self.backup}", r.stderr)
        self.assertFalse(os.path.exists(self.backup))
        self.assertEqual(before, self.state_hashes())

    @unittest.skipUnless(BACKEND == "postgres", "a session the test can terminate")
    def test_a_commit_whose_outcome_is_unknown_keeps_the_backup_and_says_how_to_tell(self):
        identity, recipient = self.age_recipient()
        env = dict(os.environ, HOME=self.inst.dir, INFRA_KEYS_FAILPOINT="rotate-data-key-before-commit:stop")
        proc = subprocess.Popen([harness.BIN, "--config", self.inst.config_path, "rotate-data-key", "--backup",
                                 self.backup, "--recipient", recipient], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until_stopped(proc)
        try:
            self.assertTrue(os.path.exists(self.backup), "the backup is written before the commit")
            for (pid,) in self.inst.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'infra-keys' "
                                          "AND datname = current_database()"):
                self.inst.query("SELECT pg_terminate_backend(?)", (pid,))
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            _out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, harness.EXIT["database"], err)
        # The connection is gone, so whether the commit happened cannot be read back: the backup stays.
        self.assertIn(f"kept {self.backup}", err)
        self.assertIn(f"backup --check {self.backup}", err)
        self.assertEqual(self.db_key_now(), self.inst.db_key)
        self.assertNotEqual(self.backed_up_db_key(identity), self.inst.db_key)
        # The commit did not happen: the check, as restore would, says its db key is not the live one.
        r = self.inst.run("backup", "--check", self.backup, "-i", identity)
        self.assertExit(r, "wrong_key")
        self.assertIn("is not the one sealing", r.stdout + r.stderr)

    def test_a_backup_that_cannot_be_written_is_refused_in_the_plan(self):
        missing = os.path.join(self.inst.dir, "no-such-directory", "new-key.backup")
        before = self.state_hashes()
        for dry in (["--dry-run"], []):
            r = self.inst.run("rotate-data-key", *dry, "--backup", missing, env=self.env)
            self.assertExit(r, "backup")
            self.assertIn("no-such-directory", r.stderr)
        self.assertEqual(before, self.state_hashes())


class ReleaseFamiliesTest(DataKeyCase):
    def test_every_family_re_seals_every_value_under_the_new_db_key(self):
        for family in FAMILIES:
            with self.subTest(family=family):
                self.inst.close()
                self.inst = type(self.inst)()
                fx = releases.Fixture(self.inst, family).build()
                fx.add_unknown_value(1)  # sealed by the db key in a table no release has: re-sealed too
                old_key = fx.db_key
                r = self.inst.run("rotate-data-key", "--json")
                self.assertExit(r, "ok")
                self.assertEqual(json.loads(r.stdout)["values"], len(fx.sealed))
                fx.db_key, fx.kid = fx.current_db_key()
                self.assertNotEqual(fx.db_key, old_key)
                fx.check_all_open(self)  # plaintexts unchanged, plain text left as it was
                stored = {}
                for table, column in {(t, c) for t, c, _ in fx.sealed}:
                    for row, text in fx.stored(table, column).items():
                        if (table, column, row) in fx.sealed:
                            stored[(table, column, row)] = text
                self.assertEqual(len(stored), len(fx.sealed))
                self.assertAllResealed(stored, old_key, fx.db_key, fx.kid, fx.root_key_id)
                r = self.inst.run("verify", "--level", "full")
                self.assertExit(r, "problems")  # the vendor_extension value is named, as before the change
                self.assertIn("vendor_extension.secret row 1: unlisted", r.stdout)


class RemoteProviders(DataKeyCase):
    """The new db key made by the provider itself, as the server makes one, against its peer."""

    def setUp(self):
        super().setUp()
        self.peers = []

    def tearDown(self):
        super().tearDown()
        for peer in self.peers:
            peer.close()

    def rotate_with(self, provider, after_seed=lambda: None):
        remote.write_config(self.inst, provider)
        self.inst.seed(values_per_column=5, wrap=provider.wrap)
        after_seed()
        old_row, old_key = self.inst.db_key_row(), self.inst.db_key
        self.assertExit(self.inst.run("rotate-data-key", "--dry-run", env=provider.env), "ok")
        self.assertEqual(self.inst.db_key_row(), old_row)
        r = self.inst.run("rotate-data-key", env=provider.env)
        self.assertExit(r, "ok")
        row = self.inst.db_key_row()
        self.assertEqual(row["id"], old_row["id"])
        self.assertEqual((row["algorithm"], row["root_key_id"]), (old_row["algorithm"], old_row["root_key_id"]))
        new_key = provider.unwrap(row["encrypted"])  # the provider's official client opens the new row
        self.assertEqual(len(new_key), 32)
        self.assertNotEqual(new_key, old_key)
        self.assertEqual(self.inst.decrypt_all(db_key=new_key), self.inst.plaintexts)
        self.assertAllResealed(self.inst.stored_values(), old_key, new_key, infra.key_id_of(row["encrypted"]),
                               row["root_key_id"])
        self.assertExit(self.inst.run("verify", "--level", "full", env=provider.env), "ok")
        return row

    def test_awskms_makes_the_new_db_key_with_generate_data_key(self):
        peer = remote.peerlib.kms(keys=("alias/infra",))
        self.peers.append(peer)
        self.rotate_with(remote.Kms(peer))
        # One new data key, from the real run only (the oracle seals with Encrypt; the dry run asks for none).
        self.assertEqual(peer.ops().get("GenerateDataKey"), 1, peer.ops())

    def test_vault_makes_the_new_db_key_through_transit_encrypt(self):
        peer = remote.peerlib.vault()
        self.peers.append(peer)
        row = self.rotate_with(remote.Vault(peer))
        self.assertTrue(row["encrypted"].startswith(b"vault:v1:"))


    def test_native_in_kubernetes_keeps_the_root_key_secret_as_it_was(self):
        peer = remote.peerlib.kube()
        self.peers.append(peer)
        provider = remote.Kube(peer, self.inst.dir)
        seeded = {}
        self.rotate_with(provider, after_seed=lambda: seeded.update(provider.secret()))
        self.assertEqual(provider.secret(), seeded)  # only the db key changed; no slot was written


if __name__ == "__main__":
    unittest.main()
