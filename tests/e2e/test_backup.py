"""backup and restore: every bad backup is refused and nothing changes; good ones round-trip."""
import glob
import os
import stat
import subprocess
import unittest

from harness import BIN, E2E, ROOT, read_file

PASSPHRASE = "correct horse battery staple"
FAST_KDF = ["--scrypt-work-factor", "10"]
# Written by infra-keys 0.1.0 (tests/fixtures/README.md): root key 5eed…, db key d6…
V1_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "backup-v1-0.1.0.testdata")
V1_ROOT_KEY, V1_DB_KEY, V1_PASSPHRASE = bytes.fromhex("5eed" * 16), bytes.fromhex("d6" * 32), "infra-keys test passphrase"


class BackupTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=5)
        self.pass_file = os.path.join(self.inst.dir, "passphrase")
        with open(self.pass_file, "w") as f:
            f.write(PASSPHRASE + "\n")
        self.backup_path = os.path.join(self.inst.dir, "keys.backup")

    def backup(self, *extra, kdf=FAST_KDF, env=None):
        return self.inst.run("backup", "--output", self.backup_path, "--passphrase-file", self.pass_file, *kdf, *extra,
                             env=env)

    def restore(self, *extra, path=None, env=None):
        return self.inst.run("restore", path or self.backup_path, "--passphrase-file", self.pass_file, *extra, env=env)

    def test_round_trip_init_backup_delete_restore_verify(self):
        r = self.backup(kdf=[])  # the real scrypt work factor, once
        self.assertExit(r, "ok")
        self.assertIn("verified", r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(self.backup_path).st_mode), 0o600)
        key = read_file(self.inst.key_path)
        os.remove(self.inst.key_path)
        self.assertExit(self.inst.run("verify"), "provider")
        r = self.restore()
        self.assertExit(r, "ok")
        self.assertEqual(read_file(self.inst.key_path), key)
        self.assertEqual(stat.S_IMODE(os.stat(self.inst.key_path).st_mode), 0o600)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_backup_check_reports_metadata_and_proves_the_backup(self):
        self.assertExit(self.backup(), "ok")
        before = self.inst.snapshot()
        r = self.inst.run("backup", "--check", self.backup_path, "--passphrase-file", self.pass_file)
        self.assertExit(r, "ok")
        for word in ("created", "native", "key id", "database", "age v1", "fingerprint", "check: ok"):
            self.assertIn(word, r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_backup_refuses_to_overwrite_without_force(self):
        self.assertExit(self.backup(), "ok")
        first = read_file(self.backup_path)
        self.assertExit(self.backup(), "refused")
        self.assertEqual(first, read_file(self.backup_path))
        self.assertExit(self.backup("--force"), "ok")
        self.assertNotEqual(first, read_file(self.backup_path))

    def test_backup_refuses_a_short_passphrase_unless_allowed(self):
        with open(self.pass_file, "w") as f:
            f.write("short\n")
        self.assertExit(self.backup(), "usage")
        self.assertFalse(os.path.exists(self.backup_path))
        self.assertExit(self.backup("--allow-weak-passphrase"), "ok")

    def test_passphrase_is_never_a_command_line_argument(self):
        r = self.inst.run("backup", "--help", config=False)
        self.assertNotRegex(r.stdout, r"--passphrase[ =]")
        self.assertExit(self.inst.run("backup", "--passphrase", PASSPHRASE, "--output", self.backup_path), "usage")
        self.assertFalse(os.path.exists(self.backup_path))

    def test_passphrase_from_a_file_descriptor_and_the_environment(self):
        r = subprocess.run([BIN, "--config", self.inst.config_path, "backup", "--output", self.backup_path,
                            "--passphrase-fd", "0", *FAST_KDF], input=PASSPHRASE + "\n", capture_output=True,
                           text=True, env=dict(os.environ, HOME=self.inst.dir))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.inst.run("backup", "--check", self.backup_path, env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE})
        self.assertExit(r, "ok")

    def test_output_to_stdout(self):
        r = subprocess.run([BIN, "--config", self.inst.config_path, "backup", "--output", "-", "--passphrase-file",
                            self.pass_file, *FAST_KDF], capture_output=True, env=dict(os.environ, HOME=self.inst.dir))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"age-encryption.org/v1\n-> scrypt "))

    def test_wrong_passphrase_is_rejected_and_nothing_changes(self):
        self.assertExit(self.backup(), "ok")
        os.remove(self.inst.key_path)
        with open(self.pass_file, "w") as f:
            f.write("a different passphrase\n")
        before = self.inst.snapshot()
        r = self.restore()
        self.assertExit(r, "backup")
        self.assertIn("passphrase", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(before, self.inst.snapshot())

    def test_every_flipped_byte_is_rejected_and_nothing_changes(self):
        self.assertExit(self.backup(), "ok")
        good = read_file(self.backup_path)
        os.remove(self.inst.key_path)
        before = self.inst.snapshot()
        bad = os.path.join(self.inst.dir, "bad.backup")
        header_end = good.index(b"\n---") + 48
        # Every byte of the header and the payload nonce, then every 7th byte and the whole final tag.
        offsets = sorted(set(range(header_end + 16)) | set(range(header_end, len(good), 7)) |
                         set(range(len(good) - 16, len(good))))
        for i in offsets:
            flipped = bytearray(good)
            flipped[i] ^= 0x01
            with open(bad, "wb") as f:
                f.write(flipped)
            r = self.restore(path=bad)
            self.assertEqual(r.returncode, 6, f"byte {i} flipped: {r.returncode} {r.stderr}")
            self.assertFalse(os.path.exists(self.inst.key_path), f"byte {i}")
        os.remove(bad)
        self.assertEqual(before, self.inst.snapshot())

    def test_truncation_at_every_offset_is_rejected_and_nothing_changes(self):
        self.assertExit(self.backup(), "ok")
        good = read_file(self.backup_path)
        os.remove(self.inst.key_path)
        before = self.inst.snapshot()
        bad = os.path.join(self.inst.dir, "bad.backup")
        for n in sorted(set(range(0, len(good), 5)) | set(range(len(good) - 40, len(good)))):
            with open(bad, "wb") as f:
                f.write(good[:n])
            r = self.restore(path=bad)
            self.assertEqual(r.returncode, 6, f"truncated to {n} bytes: {r.stderr}")
            self.assertFalse(os.path.exists(self.inst.key_path))
        os.remove(bad)
        self.assertEqual(before, self.inst.snapshot())

    def test_another_format_and_a_newer_version_are_rejected(self):
        other = os.path.join(self.inst.dir, "other")
        v1 = read_file(V1_FIXTURE)
        for content, words in ((b"hello world\n", "not an infra-keys backup"),
                               (v1.replace(b"infra-keys backup v1", b"infra-keys backup v9", 1), "newer")):
            with open(other, "wb") as f:
                f.write(content)
            before = self.inst.snapshot()
            r = self.restore(path=other)
            self.assertExit(r, "backup")
            self.assertIn(words, r.stderr)
            self.assertEqual(before, self.inst.snapshot())

    def test_a_v1_backup_written_by_0_1_0_still_restores(self):
        self.inst.close()
        self.inst = type(self.inst)()
        self.inst.seed(values_per_column=3, root_key=V1_ROOT_KEY, db_key=V1_DB_KEY)
        os.remove(self.inst.key_path)
        self.pass_file = os.path.join(self.inst.dir, "passphrase")
        with open(self.pass_file, "w") as f:
            f.write(V1_PASSPHRASE + "\n")
        r = self.inst.run("backup", "--info", V1_FIXTURE, config=False)
        self.assertExit(r, "ok")
        self.assertIn("infra-keys backup v1", r.stdout)
        self.assertIn("Argon2id", r.stdout)
        r = self.restore(path=V1_FIXTURE)
        self.assertExit(r, "ok")
        self.assertEqual(read_file(self.inst.key_path), V1_ROOT_KEY)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_info_needs_no_secret_and_no_database(self):
        self.assertExit(self.backup(), "ok")
        self.remove_database()
        os.remove(self.inst.key_path)
        r = self.inst.run("backup", "--info", self.backup_path, config=False, env={"INFRA_KEYS_PASSPHRASE": ""})
        self.assertExit(r, "ok")
        self.assertIn("age v1", r.stdout)
        self.assertIn("passphrase (scrypt, work factor 10)", r.stdout)
        self.assertEqual(r.stderr, "")

    def test_check_offline_opens_and_self_checks_without_a_database(self):
        self.assertExit(self.backup(), "ok")
        fingerprint = self.status_fingerprint()
        self.remove_database()
        r = self.inst.run("backup", "--check", self.backup_path, "--offline", "--passphrase-file", self.pass_file,
                          config=False)
        self.assertExit(r, "ok")
        self.assertIn("check: ok (offline)", r.stdout)
        self.assertIn("its root key unwraps its dbkey row", r.stdout)
        self.assertIn(f"fingerprint {fingerprint}", r.stdout)
        self.assertEqual(r.stderr, "")

    def remove_database(self):
        """Neither the SQLite file nor the PostgreSQL database exists any more."""
        path = getattr(self.inst.db, "path", None)
        if path:
            os.remove(path)
        else:
            self.inst.db.drop()

    def status_fingerprint(self):
        r = self.inst.run("status")
        self.assertExit(r, "ok")
        line = [l for l in r.stdout.splitlines() if l.startswith("root key")][0]
        fingerprint = line.split("fingerprint ")[1].strip()
        self.assertRegex(fingerprint, r"^[0-9a-f]{8}(-[0-9a-f]{8}){3}$")
        self.assertNotIn(self.inst.root_key.hex()[:8], fingerprint)
        return fingerprint

    def test_fingerprints_agree_between_status_backup_and_restore_dry_run(self):
        fingerprint = self.status_fingerprint()
        r = self.backup()
        self.assertExit(r, "ok")
        self.assertIn(f"root key fingerprint {fingerprint}", r.stdout)
        r = self.restore("--dry-run")
        self.assertExit(r, "ok")
        self.assertEqual(r.stdout.count(fingerprint), 2, r.stdout)  # the backup's and the installed key's

    def test_restore_onto_a_database_wrapped_by_another_root_key_is_refused(self):
        self.assertExit(self.backup(), "ok")
        other = type(self.inst)()
        try:
            other.seed(values_per_column=2)
            before = other.snapshot()
            r = other.run("restore", self.backup_path, "--passphrase-file", self.pass_file, "--force")
            self.assertExit(r, "wrong_key")
            self.assertIn("is not the one sealing", r.stderr)
            self.assertEqual(before, other.snapshot())
        finally:
            other.close()

    def test_restore_refuses_to_replace_a_different_key_without_force_and_keeps_it_with_force(self):
        self.assertExit(self.backup(), "ok")
        good_key = read_file(self.inst.key_path)
        stray = os.urandom(32)
        with open(self.inst.key_path, "wb") as f:
            f.write(stray)
        before = self.inst.snapshot()
        r = self.restore()
        self.assertExit(r, "refused")
        self.assertIn("--force", r.stderr)
        self.assertEqual(before, self.inst.snapshot())

        r = self.restore("--dry-run", "--force")
        self.assertExit(r, "ok")
        self.assertIn("would keep the replaced root key", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

        r = self.restore("--force")
        self.assertExit(r, "ok")
        kept = glob.glob(self.inst.key_path + ".replaced-*")
        self.assertEqual(len(kept), 1)
        self.assertIn(kept[0], r.stdout)
        self.assertEqual(open(kept[0], "rb").read(), stray)
        self.assertEqual(stat.S_IMODE(os.stat(kept[0]).st_mode), 0o600)
        self.assertEqual(read_file(self.inst.key_path), good_key)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_restoring_the_key_already_there_is_a_no_op(self):
        self.assertExit(self.backup(), "ok")
        before = self.inst.snapshot()
        r = self.restore()
        self.assertExit(r, "ok")
        self.assertIn("already installed", r.stdout)
        self.assertIn("nothing to do", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_restore_with_db_key_into_a_database_that_lost_its_key_rows(self):
        self.assertExit(self.backup(), "ok")
        self.inst.execute("DELETE FROM encryption_keys")
        os.remove(self.inst.key_path)
        before = self.inst.snapshot()
        r = self.restore()
        self.assertExit(r, "refused")
        self.assertIn("--with-db-key", r.stderr)
        self.assertEqual(before, self.inst.snapshot())
        self.assertExit(self.restore("--with-db-key"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    # --- killed half-way: a re-run converges, nothing is lost ---------------------------------
    def test_a_restore_killed_at_any_step_can_be_run_again(self):
        cases = [("restore-after-keep-replaced", "--force"), ("restore-after-install-key", "--force"),
                 ("restore-after-install-key", "--with-db-key"), ("restore-before-commit", "--with-db-key")]
        self.assertExit(self.backup(), "ok")
        good_key = read_file(self.inst.key_path)
        rows = self.inst.query("SELECT id, name, encrypted, algorithm, root_key_id FROM encryption_keys")
        for point, mode in cases:
            with self.subTest(point=point, mode=mode):
                for kept in glob.glob(self.inst.key_path + ".replaced-*"):
                    os.remove(kept)
                if mode == "--force":  # a stray key in place of the good one
                    with open(self.inst.key_path, "wb") as f:
                        f.write(os.urandom(32))
                else:  # a rebuilt machine: no key file, no key rows
                    self.inst.execute("DELETE FROM encryption_keys")
                    os.remove(self.inst.key_path)
                r = self.restore(mode, env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -9, r.stderr)
                r = self.restore(mode)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(read_file(self.inst.key_path), good_key)
                self.assertEqual(sorted(rows), sorted(self.inst.query(
                    "SELECT id, name, encrypted, algorithm, root_key_id FROM encryption_keys")))
                self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
                self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_a_backup_killed_after_writing_leaves_a_complete_backup_or_none(self):
        r = self.backup(env={"INFRA_KEYS_FAILPOINT": "backup-after-write"})
        self.assertEqual(r.returncode, -9, r.stderr)
        self.assertEqual(glob.glob(os.path.join(self.inst.dir, "*.tmp-*")), [])
        self.assertExit(self.inst.run("backup", "--check", self.backup_path, "--passphrase-file", self.pass_file), "ok")


    def test_backup_and_restore_remove_the_temp_copies_killed_runs_left(self):
        stale_backup = self.backup_path + ".tmp-0badc0de"
        stale_key = self.inst.key_path + ".tmp-0badc0de"
        not_ours = self.backup_path + ".tmp-notours"
        for path in (stale_backup, stale_key, not_ours):
            with open(path, "wb") as f:
                f.write(os.urandom(32))
        r = self.backup()
        self.assertExit(r, "ok")
        self.assertIn(f"removed the stale temp file {stale_backup}", r.stdout)
        self.assertFalse(os.path.exists(stale_backup))
        self.assertTrue(os.path.exists(not_ours))
        self.assertTrue(os.path.exists(stale_key), "backup writes no key, so it leaves the key directory alone")
        os.remove(self.inst.key_path)
        r = self.restore()
        self.assertExit(r, "ok")
        self.assertIn("removed the stale temp file", r.stdout)
        self.assertFalse(os.path.exists(stale_key))
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

if __name__ == "__main__":
    unittest.main()
