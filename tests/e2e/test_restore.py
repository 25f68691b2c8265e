"""restore across rotations: a backup restores any database whose values its db key seals, whichever
of the two is older; one that holds another db key is refused with nothing changed."""
import datetime
import glob
import hashlib
import json
import os
import subprocess
import tempfile
import unittest

from harness import BACKEND, E2E, read_file

PASSPHRASE = "correct horse battery staple"
FAST_KDF = ["--scrypt-work-factor", "10"]
RESTORE_POINTS = ["restore-after-keep-replaced", "restore-after-install-key", "restore-before-commit",
                  "restore-after-commit"]


def sha256_tree(directory):
    """Every file under `directory` (the key directory, and the SQLite database in it) by its sha256."""
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            out[name] = hashlib.sha256(read_file(path)).hexdigest()
    return out


class RestoreCase(E2E):
    """A seeded installation, a passphrase file, and what the tests below share."""

    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=5, empty_every=4)
        self.pass_file = os.path.join(self.inst.dir, "passphrase")
        with open(self.pass_file, "w") as f:
            f.write(PASSPHRASE + "\n")

    # --- helpers ----------------------------------------------------------------------------
    def backup(self, name, inst=None, extra=()):
        inst = inst or self.inst
        path = os.path.join(self.inst.dir, name)
        r = inst.run("backup", "--output", path, "--passphrase-file", self.pass_file, *FAST_KDF, *extra)
        self.assertExit(r, "ok")
        return path

    def restore(self, path, *extra, env=None):
        return self.inst.run("restore", path, "--passphrase-file", self.pass_file, *extra, env=env)

    def save_database(self):
        """The dbkey row and every sealed value as they are: a database dump, on either backend."""
        rows = self.inst.query("SELECT id, encrypted, algorithm, root_key_id, updated_at FROM encryption_keys")
        values = {}
        for table, column in [("providers", "client_secret"), ("provider_users", "access_token"),
                              ("provider_users", "refresh_token"), ("root_certificates", "private_key"),
                              ("root_certificates", "signed_cert"), ("destination_credentials", "bearer_token"),
                              ("settings", "private_jwk")]:
            name = self.inst.db.row_name(table)
            values[(table, column, name)] = self.inst.query(f"SELECT {name}, {column} FROM {table}")
        return rows, values

    def load_database(self, saved):
        """Puts a saved dump back, as an operator restoring the database from it would."""
        rows, values = saved
        for rid, encrypted, algorithm, root_key_id, updated_at in rows:
            self.inst.execute("UPDATE encryption_keys SET encrypted = ?, algorithm = ?, root_key_id = ?, updated_at = ? "
                              "WHERE id = ?", (encrypted, algorithm, root_key_id, updated_at, rid))
        for (table, column, name), contents in values.items():
            for row, value in contents:
                self.inst.execute(f"UPDATE {table} SET {column} = ? WHERE {name} = ?", (value, row))

    def rotate_after_dump(self):
        """A dump of the database, then rotate-root and a backup: (dump, new root key, backup)."""
        dump = self.save_database()
        self.assertExit(self.inst.run("rotate-root"), "ok")
        return dump, read_file(self.inst.key_path), self.backup("after.backup")

    def foreign_backup(self):
        """A backup of another installation: another root key and another db key."""
        other = type(self.inst)()
        try:
            other.seed(values_per_column=2)
            return self.backup("other.backup", inst=other)
        finally:
            other.close()

    def lose_the_key_directory(self):
        for path in glob.glob(self.inst.key_path + "*"):
            os.remove(path)

    def assertOpens(self, root_key):
        self.assertEqual(read_file(self.inst.key_path), root_key)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)  # the Python reader, as the server reads

    def assertRefusedUnchanged(self, path, *words):
        before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
        for extra in (["--dry-run"], [], ["--force"]):
            r = self.restore(path, *extra)
            self.assertExit(r, "wrong_key")
            for word in ("cannot restore", "is not the one sealing", "Nothing changed", *words):
                self.assertIn(word, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 2, r.stderr)  # one line, one hint
            self.assertEqual(before, self.inst.snapshot())
            self.assertEqual(files, sha256_tree(self.inst.dir))



class RestoreAcrossRotationTest(RestoreCase):
    # --- backup before rotate-root, database after it ---------------------------------------
    def test_a_backup_from_before_rotate_root_restores_the_rotated_database(self):
        old_key = read_file(self.inst.key_path)
        before_rotation = self.backup("before.backup")
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.lose_the_key_directory()  # the disk with the new key died; the database dump is recent
        self.assertExit(self.inst.run("verify"), "provider")

        before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
        r = self.restore(before_rotation, "--dry-run", "--json")
        self.assertExit(r, "ok")
        self.assertIn("the database was rotated after the backup", r.stdout)
        self.assertIn("newer than the backup", r.stdout)
        self.assertEqual(json.loads(r.stdout)["case"], "database_newer")
        self.assertEqual(before, self.inst.snapshot())
        self.assertEqual(files, sha256_tree(self.inst.dir))

        r = self.restore(before_rotation)
        self.assertExit(r, "ok")
        self.assertIn("re-wrapped", r.stdout)
        self.assertOpens(old_key)
        self.assertExit(self.restore(before_rotation), "ok")  # and again: nothing to do
        r = self.inst.run("backup", "--check", before_rotation, "--passphrase-file", self.pass_file)
        self.assertExit(r, "ok")

    def test_an_old_backup_proves_itself_against_the_rotated_database_with_backup_check(self):
        before_rotation = self.backup("before.backup")
        self.assertExit(self.inst.run("rotate-root"), "ok")
        r = self.inst.run("backup", "--check", before_rotation, "--passphrase-file", self.pass_file)
        self.assertExit(r, "ok")
        self.assertIn("newer than the backup", r.stdout)

    def test_with_the_rotated_key_still_in_place_there_is_nothing_to_restore(self):
        before_rotation = self.backup("before.backup")
        self.assertExit(self.inst.run("rotate-root"), "ok")
        new_key = read_file(self.inst.key_path)
        before = self.inst.snapshot()
        r = self.restore(before_rotation)
        self.assertExit(r, "ok")
        self.assertIn("nothing to do: the configured root key already opens", r.stdout)
        self.assertEqual(before, self.inst.snapshot())
        self.assertOpens(new_key)

    # --- backup after rotate-root, database from before it ----------------------------------
    def test_a_backup_from_after_rotate_root_restores_an_older_database(self):
        dump, new_key, after_rotation = self.rotate_after_dump()
        self.load_database(dump)  # the database restored from a dump taken before the rotation
        for retired in glob.glob(self.inst.key_path + ".*.retired"):
            os.remove(retired)
        self.assertExit(self.inst.run("verify"), "wrong_key")

        before = self.inst.snapshot()
        r = self.restore(after_rotation, "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn("the database is older than the backup", r.stdout)
        self.assertIn("would re-wrap dbkey row", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

        r = self.restore(after_rotation)  # the backup's root key is the one installed: no --force needed
        self.assertExit(r, "ok")
        self.assertOpens(new_key)

    def test_an_older_database_on_a_new_disk_gets_the_backups_root_key(self):
        dump, new_key, after_rotation = self.rotate_after_dump()
        self.load_database(dump)
        self.lose_the_key_directory()
        self.assertExit(self.restore(after_rotation), "ok")
        self.assertOpens(new_key)

    # --- a backup of another db key ---------------------------------------------------------
    def test_a_backup_holding_another_db_key_is_refused_with_nothing_changed(self):
        foreign = self.foreign_backup()
        # The configured key opens the row (it holds another db key), then with the key lost
        # (the census decides: the backup's db key opens none of the values).
        self.assertRefusedUnchanged(foreign, "older than the backup")
        self.lose_the_key_directory()
        self.assertRefusedUnchanged(foreign, "opens none of the values", "older than the backup")

    def test_the_hint_points_to_a_newer_backup_when_the_database_is_newer(self):
        foreign = self.foreign_backup()
        later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
        self.inst.execute("UPDATE encryption_keys SET updated_at = ?",
                          (later.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"),))
        self.assertRefusedUnchanged(foreign, "newer than the backup", "use a backup made since")
        r = self.inst.run("backup", "--check", foreign, "--passphrase-file", self.pass_file)
        self.assertExit(r, "wrong_key")
        self.assertIn("newer than the backup", r.stdout + r.stderr)

    # --- exact match ------------------------------------------------------------------------
    def test_dry_run_names_an_exact_match(self):
        path = self.backup("now.backup")
        os.remove(self.inst.key_path)
        r = self.restore(path, "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn("case: exact match", r.stdout)
        self.assertIn("would install the backup's root key", r.stdout)

    # --- killed half-way: verify passes, or running restore again converges -----------------
    def test_a_restore_across_rotation_killed_at_each_failpoint_converges(self):
        old_key = read_file(self.inst.key_path)
        before_rotation = self.backup("before.backup")
        self.assertExit(self.inst.run("rotate-root"), "ok")
        rotated = self.save_database()
        for point in RESTORE_POINTS:
            with self.subTest(point=point):
                self.load_database(rotated)
                self.lose_the_key_directory()
                with open(self.inst.key_path, "wb") as f:  # a stray key where the lost one was
                    f.write(os.urandom(32))
                r = self.restore(before_rotation, "--force", env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -9, r.stdout + r.stderr)
                if self.inst.run("verify", "--level", "full").returncode != 0:
                    r = self.restore(before_rotation, "--force")
                    self.assertExit(r, "ok")
                self.assertOpens(old_key)

    def test_a_refusal_before_the_commit_undoes_the_installed_key(self):
        before_rotation = self.backup("before.backup")
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.lose_the_key_directory()
        before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
        # A value that does not open under the db key blocks the re-key before anything is written.
        self.inst.execute("UPDATE providers SET client_secret = ? WHERE id = 1",
                          (self.inst.stored_values()[("providers", "client_secret", "2")][:-4] + "AAAA",))
        damaged = self.inst.snapshot()
        r = self.restore(before_rotation)
        self.assertExit(r, "problems")
        self.assertIn("providers.client_secret row 1", r.stderr)
        self.assertEqual(damaged, self.inst.snapshot())
        self.assertNotEqual(before, damaged)
        self.assertEqual(set(files) - {"sqlite3.db"}, set(sha256_tree(self.inst.dir)) - {"sqlite3.db"})


class RotateRootBackupTest(RestoreCase):
    """rotate-root --backup FILE: the new key is never in one place only."""

    def rotate_with_backup(self, path, *extra, env=None):
        return self.inst.run("rotate-root", "--backup", path, "--passphrase-file", self.pass_file, *FAST_KDF, *extra,
                             env=env)

    def test_the_backup_opens_with_the_new_key_and_restores_it(self):
        path = os.path.join(self.inst.dir, "rotation.backup")
        r = self.rotate_with_backup(path)
        self.assertExit(r, "ok")
        self.assertIn(f"backup of the new keys written to {path} and re-opened", r.stdout)
        self.assertNotIn("existing key backups still restore", r.stdout)
        self.assertLess(r.stdout.index("re-opened"), r.stdout.index("re-wrapped by the new root key"))
        new_key = read_file(self.inst.key_path)
        r = self.inst.run("backup", "--check", path, "--passphrase-file", self.pass_file)
        self.assertExit(r, "ok")
        self.assertNotIn("check: note", r.stdout)  # the very row that committed
        self.assertExit(self.inst.run("backup", "--check", path, "--offline", "--passphrase-file", self.pass_file), "ok")
        self.lose_the_key_directory()
        self.assertExit(self.restore(path), "ok")
        self.assertOpens(new_key)

    def test_a_backup_to_a_public_key_needs_no_passphrase_and_opens_with_age(self):
        identity = os.path.join(self.inst.dir, "backup-key.txt")
        subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", identity], check=True, capture_output=True,
                                   text=True).stdout.strip()
        path = os.path.join(self.inst.dir, "rotation.backup")
        r = self.inst.run("rotate-root", "--backup", path, "--recipient", recipient,
                          env={"INFRA_KEYS_PASSPHRASE": ""})
        self.assertExit(r, "ok")
        self.assertIn("backup opens with", r.stdout)
        new_key = read_file(self.inst.key_path)
        document = json.loads(subprocess.run(["age", "-d", "-i", identity, path], check=True,
                                             capture_output=True).stdout)
        current = [k for k in document["root_keys"] if k["role"] == "current"]
        self.assertEqual(bytes.fromhex(current[0]["key"]), new_key)
        self.assertEqual(len([k for k in document["root_keys"] if k["role"] == "retained"]), 1)
        self.lose_the_key_directory()
        self.assertExit(self.inst.run("restore", path, "--identity", identity), "ok")
        self.assertOpens(new_key)

    def test_without_backup_rotate_root_says_existing_backups_still_restore(self):
        r = self.inst.run("rotate-root")
        self.assertExit(r, "ok")
        self.assertIn("existing key backups still restore", r.stdout)
        self.assertIn("take a fresh one", r.stdout)

    def test_a_backup_into_a_missing_directory_is_refused_in_the_plan(self):
        before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
        for extra in (["--dry-run"], []):
            r = self.rotate_with_backup(os.path.join(self.inst.dir, "missing", "rotation.backup"), *extra)
            self.assertExit(r, "backup")
            self.assertIn("cannot write the backup", r.stderr)
            self.assertNotIn("new root key written", r.stdout)
            self.assertEqual(before, self.inst.snapshot())
            self.assertEqual(files, sha256_tree(self.inst.dir))

    @unittest.skipUnless(BACKEND == "postgres", "a deferred constraint trigger that fails the COMMIT")
    def test_a_commit_that_fails_after_the_backup_removes_it_with_the_staged_key(self):
        self.inst.execute("""CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the test refuses this commit'; END $$;
            CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON encryption_keys DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION refuse_commit();""")
        path = os.path.join(self.inst.dir, "rotation.backup")
        before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
        r = self.rotate_with_backup(path)
        self.assertExit(r, "database")
        self.assertIn("the test refuses this commit", r.stderr)
        self.assertIn(f"undone: removed {path}", r.stderr)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(before, self.inst.snapshot())
        self.assertEqual(files, sha256_tree(self.inst.dir))

    @unittest.skipUnless(os.geteuid() == 0, "mounting a full tmpfs needs root")
    def test_a_backup_on_a_full_disk_changes_nothing(self):
        full = tempfile.mkdtemp(prefix="infra-keys-full-")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", full], capture_output=True).returncode:
            os.rmdir(full)
            self.skipTest("cannot mount a tmpfs here")
        try:
            fd = os.open(os.path.join(full, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"x" * 512):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
            r = self.rotate_with_backup(os.path.join(full, "rotation.backup"))
            self.assertExit(r, "backup")
            self.assertIn("No space left on device", r.stderr)
            self.assertIn("undone", r.stderr)
            self.assertEqual(before, self.inst.snapshot())
            self.assertEqual(files, sha256_tree(self.inst.dir))
            self.assertEqual(sorted(os.listdir(full)), ["filler"])
        finally:
            subprocess.run(["umount", full], check=True)
            os.rmdir(full)

    def test_an_existing_backup_file_is_refused_before_anything_is_written(self):
        path = os.path.join(self.inst.dir, "rotation.backup")
        with open(path, "w") as f:
            f.write("an older backup\n")
        before, files = self.inst.snapshot(), sha256_tree(self.inst.dir)
        for extra in (["--dry-run"], []):
            r = self.rotate_with_backup(path, *extra)
            self.assertExit(r, "refused")
            self.assertIn("already exists", r.stderr)
            self.assertEqual(before, self.inst.snapshot())
            self.assertEqual(files, sha256_tree(self.inst.dir))

    def test_the_backup_options_need_backup(self):
        r = self.inst.run("rotate-root", "--passphrase-file", self.pass_file)
        self.assertExit(r, "usage")
        self.assertIn("--backup", r.stderr)

    def test_killed_after_writing_the_backup_resume_converges_and_the_backup_restores(self):
        path = os.path.join(self.inst.dir, "rotation.backup")
        r = self.rotate_with_backup(path, env={"INFRA_KEYS_FAILPOINT": "backup-after-write"})
        self.assertEqual(r.returncode, -9, r.stdout + r.stderr)
        self.assertExit(self.inst.run("rotate-root", "--resume"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        new_key = read_file(self.inst.key_path)
        self.assertExit(self.inst.run("backup", "--check", path, "--passphrase-file", self.pass_file), "ok")
        self.lose_the_key_directory()
        self.assertExit(self.restore(path), "ok")
        self.assertOpens(new_key)


if __name__ == "__main__":
    unittest.main()
