"""rotate-root and rewrap: crash-safe at every step, proven by killing the process there."""
import fcntl
import glob
import hashlib
import os
import shutil
import random
import signal
import subprocess
import sys
import time
import unittest

import infra
from harness import BACKEND, BIN, E2E, EXIT, read_file

ROTATE_POINTS = ["rotate-after-write-new-key", "rotate-after-retain", "rotate-before-commit",
                 "rotate-after-commit", "rotate-after-install"]
REWRAP_POINTS = ["rewrap-after-create-root-key", "rewrap-before-commit", "rewrap-after-commit"]


class RotationTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=20, empty_every=7)

    # --- invariants -------------------------------------------------------------------------
    def key_candidates(self):
        return [self.inst.key_path, self.inst.key_path + ".new"] + glob.glob(self.inst.key_path + ".*.retired")

    def keys_that_unwrap(self):
        row = self.inst.db_key_row()
        found = []
        for path in self.key_candidates():
            if not os.path.exists(path):
                continue
            try:
                infra.unseal(read_file(path), row["encrypted"].decode(), infra.EMPTY_KEY_ID)
                found.append(path)
            except Exception:
                pass
        return found

    def assertConverged(self):
        r = self.inst.run("verify", "--level", "full")
        self.assertExit(r, "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)
        self.assertFalse(os.path.exists(self.inst.key_path + ".new"))
        self.assertEqual(os.stat(self.inst.key_path).st_mode & 0o777, 0o600)

    # --- the happy path ---------------------------------------------------------------------
    def test_rotate_root_replaces_the_key_and_retains_the_old_one(self):
        old_key = read_file(self.inst.key_path)
        old_row = self.inst.db_key_row()
        r = self.inst.run("rotate-root")
        self.assertExit(r, "ok")
        self.assertIn("did not change", r.stdout)
        self.assertNotEqual(old_key, read_file(self.inst.key_path))
        retired = glob.glob(self.inst.key_path + ".*.retired")
        self.assertEqual(len(retired), 1)
        self.assertEqual(open(retired[0], "rb").read(), old_key)
        self.assertEqual(os.stat(retired[0]).st_mode & 0o777, 0o600)
        row = self.inst.db_key_row()
        self.assertEqual(row["id"], old_row["id"])
        self.assertNotEqual(row["encrypted"], old_row["encrypted"])
        self.assertConverged()
        status = self.inst.run("status")
        self.assertIn(retired[0], status.stdout)

    def test_values_keep_their_text_and_blob_types_after_rotation(self):
        self.assertExit(self.inst.run("rotate-root"), "ok")
        if self.inst.column_types("providers", "client_secret"):
            self.assertEqual(self.inst.column_types("providers", "client_secret"), {"text"})
            self.assertEqual(self.inst.column_types("settings", "private_jwk"), {"blob"})

    def test_dry_run_prints_the_plan_and_touches_nothing(self):
        before = self.inst.snapshot()
        r = self.inst.run("rotate-root", "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn(".new", r.stdout)
        self.assertIn("retain", r.stdout)
        self.assertIn("values in providers.client_secret", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_retire_old_removes_retained_keys_only_after_full_verification(self):
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.assertEqual(len(glob.glob(self.inst.key_path + ".*.retired")), 1)
        self.assertExit(self.inst.run("rotate-root", "--retire-old"), "ok")
        self.assertEqual(glob.glob(self.inst.key_path + ".*.retired"), [])
        self.assertConverged()

    def test_retire_old_refuses_when_verification_fails(self):
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.inst.execute("UPDATE providers SET client_secret = 'garbage' WHERE id = 1")
        self.assertExit(self.inst.run("rotate-root", "--retire-old"), "refused")
        self.assertEqual(len(glob.glob(self.inst.key_path + ".*.retired")), 1)

    def test_rotation_refuses_a_database_with_an_undecryptable_value_and_changes_nothing(self):
        self.inst.execute("UPDATE providers SET client_secret = 'garbage' WHERE id = 3")
        before = self.inst.snapshot()
        r = self.inst.run("rotate-root")
        self.assertExit(r, "problems")
        self.assertIn("providers.client_secret row 3", r.stderr)
        # Refused before the commit: the keys it staged removed, the database unchanged, the next command not stuck.
        self.assertEqual(before, self.inst.snapshot())
        self.assertEqual(self.keys_that_unwrap(), [self.inst.key_path])
        self.assertExit(self.inst.run("verify", "--level", "full"), "problems")

    # --- crash safety -----------------------------------------------------------------------
    def test_a_kill_at_every_rotation_step_is_recoverable(self):
        for point in ROTATE_POINTS:
            with self.subTest(point=point):
                r = self.inst.run("rotate-root", env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                self.assertTrue(self.keys_that_unwrap(), "no key on disk unwraps the dbkey row")
                v = self.inst.run("verify")
                if point == "rotate-after-install":
                    self.assertExit(v, "ok")
                else:
                    self.assertExit(v, "interrupted")
                    self.assertIn("infra-keys rotate-root --resume", v.stderr)
                    self.assertExit(self.inst.run("rewrap"), "interrupted")
                self.assertExit(self.inst.run("rotate-root", "--resume"), "ok")
                self.assertConverged()

    def test_resume_without_an_interrupted_rotation_does_nothing(self):
        before = self.inst.snapshot()
        r = self.inst.run("rotate-root", "--resume")
        self.assertExit(r, "ok")
        self.assertIn("nothing to resume", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_random_kills_during_fifty_rotations_never_lose_the_database(self):
        self.inst.add_values(400, start=1000)  # thousands of encrypted values in all
        rng = random.Random(int(os.environ.get("INFRA_KEYS_TEST_SEED", "4242")))
        env = dict(os.environ, HOME=self.inst.dir)
        for i in range(50):
            p = subprocess.Popen([BIN, "--config", self.inst.config_path, "rotate-root"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, 0.25))
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.assertTrue(self.keys_that_unwrap(), f"iteration {i}: no key unwraps the dbkey row")
            self.assertExit(self.inst.run("rotate-root", "--resume"), "ok")
            self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts, f"iteration {i}")
        self.assertConverged()

    # --- mutual exclusion and the running server --------------------------------------------
    def test_a_rotation_fails_at_once_while_another_holds_the_lock(self):
        # The lock is on the directory holding the key; a waiting run would hit run()'s timeout.
        fd = os.open(self.inst.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            before = self.inst.snapshot()
            r = self.inst.run("rotate-root", timeout=30)
            self.assertExit(r, "refused")
            self.assertIn("in progress", r.stderr)
            self.assertIn(f"pid {os.getpid()}", r.stderr)
            self.assertEqual(before, self.inst.snapshot())
        finally:
            os.close(fd)

    def test_two_concurrent_rotations_never_mix(self):
        env = dict(os.environ, HOME=self.inst.dir)
        for _ in range(5):
            procs = [subprocess.Popen([BIN, "--config", self.inst.config_path, "rotate-root"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            codes = sorted(p.wait() for p in procs)
            self.assertTrue(codes in ([0, 0], [0, EXIT["refused"]]), codes)
            self.assertConverged()

    def test_rotation_refuses_while_another_process_has_the_database_open(self):
        if self.inst.db.__class__.__name__ != "SqliteDb":
            self.skipTest("SQLite detection")
        holder = subprocess.Popen([sys.executable, "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); "
                                   "c.execute('select 1 from encryption_keys').fetchall(); print('ready', flush=True); "
                                   "time.sleep(60)", self.inst.db.path], stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            before = self.inst.snapshot()
            r = self.inst.run("rotate-root")
            self.assertExit(r, "refused")
            self.assertIn(f"pid {holder.pid}", r.stderr)
            self.assertIn("stop the Infra server", r.stderr)
            self.assertEqual(before, self.inst.snapshot())
            self.assertExit(self.inst.run("rotate-root", "--server-stopped"), "ok")
        finally:
            holder.kill()
            holder.wait()


class RewrapTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=10)
        self.old_key_path = self.inst.key_path

    def move_to_new_key_file(self):
        """Points the config at a key file that does not exist yet: a migration native → native."""
        self.inst.key_path = os.path.join(self.inst.dir, "new-root.key")
        self.inst.write_config()

    def test_rewrap_twice_is_a_no_op_the_second_time(self):
        self.move_to_new_key_file()
        r = self.inst.run("rewrap", "--from-key", self.old_key_path)
        self.assertExit(r, "ok")
        self.assertIn("re-wrapped", r.stdout)
        before = self.inst.snapshot()
        r = self.inst.run("rewrap", "--from-key", self.old_key_path)
        self.assertExit(r, "ok")
        self.assertIn("nothing to do", r.stdout)
        self.assertEqual(before, self.inst.snapshot())
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_migration_to_another_key_file_via_from_key(self):
        self.move_to_new_key_file()
        self.assertExit(self.inst.run("verify"), "provider")
        r = self.inst.run("rewrap", "--from-key", self.old_key_path)
        self.assertExit(r, "ok")
        self.assertEqual(os.stat(self.inst.key_path).st_mode & 0o777, 0o600)
        self.assertEqual(self.inst.db_key_row()["root_key_id"], self.inst.key_path)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_rewrap_after_a_key_was_replaced_by_hand_uses_the_retained_key(self):
        self.assertExit(self.inst.run("rotate-root"), "ok")
        retired = glob.glob(self.inst.key_path + ".*.retired")[0]
        # An operator puts the old key back by hand: the row no longer opens with it...
        os.replace(self.inst.key_path, os.path.join(self.inst.dir, "rotated.key"))
        os.link(retired, self.inst.key_path)
        os.rename(os.path.join(self.inst.dir, "rotated.key"), self.inst.key_path + ".20000101T000000.000000Z.retired")
        v = self.inst.run("verify")
        self.assertExit(v, "wrong_key")
        self.assertIn("infra-keys rewrap", v.stderr)
        # ...and rewrap finds the retained key that does.
        self.assertExit(self.inst.run("rewrap"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_rewrap_without_any_opening_key_changes_nothing(self):
        self.move_to_new_key_file()
        before = self.inst.snapshot()
        r = self.inst.run("rewrap")
        self.assertExit(r, "wrong_key")
        self.assertIn("--from-key", r.stderr)
        self.assertEqual(before, self.inst.snapshot())

    def test_rewrap_dry_run_touches_nothing(self):
        self.move_to_new_key_file()
        before = self.inst.snapshot()
        r = self.inst.run("rewrap", "--from-key", self.old_key_path, "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn("would re-wrap", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_a_kill_at_every_rewrap_step_is_recoverable(self):
        for point in REWRAP_POINTS:
            with self.subTest(point=point):
                self.inst.close()
                self.setUp()
                self.move_to_new_key_file()
                r = self.inst.run("rewrap", "--from-key", self.old_key_path, env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                row = self.inst.db_key_row()
                opened = 0
                for path in (self.old_key_path, self.inst.key_path):
                    try:
                        infra.unseal(read_file(path), row["encrypted"].decode(), infra.EMPTY_KEY_ID)
                        opened += 1
                    except Exception:
                        pass
                self.assertGreaterEqual(opened, 1)
                self.assertExit(self.inst.run("rewrap", "--from-key", self.old_key_path), "ok")
                self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
                self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)


@unittest.skipIf(BACKEND != "sqlite", "the journal's free disk is checked on SQLite only (PostgreSQL: the server's disk)")
class JournalRoomTest(E2E):
    """A rewrite needs free disk about the database's size beside it, for the rollback journal."""

    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=300)

    def move_database_to_tmpfs(self, free_fraction):
        """The database on a tmpfs of its own size plus free_fraction of it (whole 4 KiB pages)."""
        size = os.path.getsize(self.inst.db.path)
        pages = (size + int(size * free_fraction)) // 4096 + 1
        mount = self.mount_tmpfs(pages * 4096)
        moved = os.path.join(mount, "sqlite3.db")
        shutil.copyfile(self.inst.db.path, moved)
        self.inst.db.path = moved
        self.inst.write_config()
        return moved

    def sha256(self, path):
        return hashlib.sha256(read_file(path)).hexdigest()

    def test_a_rewrite_without_room_for_the_journal_is_refused_before_anything_is_written(self):
        db = self.move_database_to_tmpfs(0.5)
        before, digest = self.inst.snapshot(), self.sha256(db)
        for args in (["rotate-root", "--dry-run"], ["rotate-root"]):
            r = self.inst.run(*args)
            self.assertExit(r, "database")
            self.assertIn("not enough free disk for the journal", r.stderr)
            self.assertIn(os.path.dirname(db), r.stderr)
            self.assertEqual(before, self.inst.snapshot())
            self.assertEqual(digest, self.sha256(db))
        self.assertEqual(glob.glob(self.inst.key_path + ".*"), [])
        os.rename(self.inst.key_path, self.inst.key_path + ".old")
        with open(self.inst.key_path, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(os.urandom(32))
        before = self.inst.snapshot()
        for args in (["rewrap", "--from-key", self.inst.key_path + ".old", "--dry-run"],
                     ["rewrap", "--from-key", self.inst.key_path + ".old"]):
            r = self.inst.run(*args)
            self.assertExit(r, "database")
            self.assertIn("not enough free disk for the journal", r.stderr)
            self.assertEqual(before, self.inst.snapshot())
            self.assertEqual(digest, self.sha256(db))

    def test_a_rewrite_with_room_for_the_journal_goes_ahead(self):
        self.move_database_to_tmpfs(1.5)
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)


if __name__ == "__main__":
    unittest.main()
