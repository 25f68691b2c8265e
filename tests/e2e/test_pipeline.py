"""The key-change pipeline: a refused or failed change leaves every byte as it was, --dry-run
predicts the refusal, a running change is "in progress" and a killed one "interrupted", key files
keep their owner and symlinks, and every subcommand's --json parses."""
import fcntl
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

import infra
from harness import BACKEND, BIN, E2E, EXIT, read_file, wait_until_stopped

JSON_FIELDS = {"schema", "command", "ok", "exit_code", "steps", "warnings"}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class PipelineTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=6)

    # --- helpers ------------------------------------------------------------------------------
    def key_dir(self):
        return os.path.dirname(os.path.realpath(self.inst.key_path))

    def fingerprint(self):
        """sha256 of every file in the key directory (and the config's), plus the database's tables."""
        files = {}
        for d in {self.inst.dir, self.key_dir()}:
            for name in sorted(os.listdir(d)):
                path = os.path.join(d, name)
                if os.path.isfile(path) and not name.endswith(("-journal", "-wal", "-shm")):
                    st = os.lstat(path)
                    files[path] = (sha256(path), st.st_uid, st.st_gid, st.st_mode)
        return {"files": files, "db": self.inst.snapshot()}

    def assertUnchanged(self, before, result):
        self.assertEqual(before, self.fingerprint(), f"changed by\nstdout: {result.stdout}\nstderr: {result.stderr}")
        self.assertEqual(glob.glob(self.inst.key_path + ".*"), [], "a staged key file was left behind")

    def assertRefusalPredicted(self, args, name, env=None):
        """The dry run exits as the real run does; both change nothing."""
        before = self.fingerprint()
        dry = self.inst.run(*args, "--dry-run", env=env)
        self.assertExit(dry, name)
        self.assertUnchanged(before, dry)
        real = self.inst.run(*args, env=env)
        self.assertExit(real, name)
        self.assertUnchanged(before, real)
        return real

    def move_key_to(self, directory):
        path = os.path.join(directory, "root.key")
        shutil.copyfile(self.inst.key_path, path)
        os.chmod(path, 0o600)
        os.unlink(self.inst.key_path)
        self.inst.key_path = path
        self.inst.write_config()
        # The row names the key file it was wrapped by; keep it truthful.
        self.inst.execute("UPDATE encryption_keys SET root_key_id = ? WHERE name = 'dbkey'", (path,))

    # --- refusals and failures change nothing ------------------------------------------------
    def test_a_value_that_does_not_decrypt_blocks_the_rotation_with_exit_1_and_nothing_written(self):
        self.inst.execute("UPDATE providers SET client_secret = 'garbage' WHERE id = 3")
        r = self.assertRefusalPredicted(["rotate-root"], "problems")
        self.assertIn("providers.client_secret row 3", r.stderr)
        self.assertIn("verify --level full", r.stderr)
        # The next command is not stuck on a half-made rotation: it reports the real problem.
        v = self.inst.run("verify", "--level", "full")
        self.assertExit(v, "problems")
        self.assertIn("providers.client_secret row 3", v.stdout)
        self.assertExit(self.inst.run("status"), "ok")

    def assertDamagedValueBlocksRotationAndRewrap(self, value, reason):
        """providers.client_secret row 2 set to `value`: rotate-root and rewrap --from-key refuse, naming
        it and why (`reason`), and change nothing."""
        self.inst.execute("UPDATE providers SET client_secret = ? WHERE id = 2", (value,))
        v = self.inst.run("verify", "--level", "full")
        self.assertExit(v, "problems")
        self.assertIn(f"providers.client_secret row 2: {reason}", v.stdout)
        for args in (["rotate-root"], ["rewrap", "--from-key", self.inst.key_path]):
            if args[0] == "rewrap":  # the root key replaced by hand; the old one given to rewrap
                self.inst.key_path = os.path.join(self.inst.dir, "new-root.key")
                self.inst.write_config()
            r = self.assertRefusalPredicted(args, "problems")
            self.assertIn("providers.client_secret row 2", r.stderr)
            self.assertIn(f"({reason}: ", r.stderr)
        self.assertFalse(os.path.exists(self.inst.key_path), "rewrap created a root key it did not use")

    def test_a_value_under_another_key_id_blocks_rotation_and_rewrap(self):
        self.assertDamagedValueBlocksRotationAndRewrap(infra.seal(os.urandom(32), b"x", b"\x01\x02\x03\x04", ""),
                                                       "wrong_key")

    def test_a_corrupt_value_under_the_db_keys_id_blocks_rotation_and_rewrap(self):
        # One base64 character of the ciphertext changed: the key id says db key, GCM says no.
        (text,) = self.inst.query("SELECT client_secret FROM providers WHERE id = 2")[0]
        corrupt = text[:10] + ("B" if text[10] == "A" else "A") + text[11:]
        self.assertEqual(infra.parse(corrupt)["key_id"], infra.key_id_of(self.inst.db_key_row()["encrypted"]))
        self.assertDamagedValueBlocksRotationAndRewrap(corrupt, "authentication")

    def spoil_what_infra_keys_writes(self, row):
        """A trigger that, inside the key change's own transaction, replaces what infra-keys writes into
        providers.client_secret of `row` by a copy that does not open (one base64 character of its
        ciphertext changed, key id kept): only the read-back before the commit can catch it."""
        spoiled = ("substr(NEW.client_secret, 1, 10) || CASE WHEN substr(NEW.client_secret, 11, 1) = 'A' "
                   "THEN 'B' ELSE 'A' END || substr(NEW.client_secret, 12)")
        if BACKEND == "sqlite":  # no BEFORE trigger can change NEW here: the row is updated again after
            self.inst.execute(f"CREATE TRIGGER spoil AFTER UPDATE OF client_secret ON providers "
                              f"WHEN NEW.id = {row} AND NEW.client_secret <> OLD.client_secret "
                              f"BEGIN UPDATE providers SET client_secret = {spoiled} WHERE id = NEW.id; END")
        else:
            self.inst.execute(f"""CREATE FUNCTION spoil() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.id = {row} AND NEW.client_secret <> OLD.client_secret THEN
                    NEW.client_secret := {spoiled};
                  END IF;
                  RETURN NEW;
                END $$;
                CREATE TRIGGER spoil BEFORE UPDATE ON providers FOR EACH ROW EXECUTE FUNCTION spoil();""")

    def test_a_value_spoiled_inside_the_transaction_fails_the_read_back_and_everything_rolls_back(self):
        self.spoil_what_infra_keys_writes(row=4)
        for command in ("rotate-root", "rotate-data-key"):
            with self.subTest(command=command):
                before = self.fingerprint()
                r = self.inst.run(command)
                self.assertExit(r, "database")
                self.assertIn("after re-keying, providers.client_secret row 4", r.stderr)
                self.assertIn("does not open under the new dbkey row (authentication); nothing committed", r.stderr)
                if command == "rotate-root":  # the new key and the copy of the old one it had staged
                    self.assertIn("keys and database are as they were", r.stderr)
                self.assertUnchanged(before, r)
        self.inst.execute("DROP TRIGGER spoil" + (" ON providers" if BACKEND == "postgres" else ""))
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_a_key_change_writes_only_the_columns_it_re_keys(self):
        """The rewrite reads every column that can hold a sealed value, but its UPDATE names only the
        columns it changes, as the server's own writes do: a trigger on providers.name, which holds
        no sealed value, never fires (naming it would run it, and fail here)."""
        if BACKEND == "sqlite":
            self.inst.execute("CREATE TRIGGER guard BEFORE UPDATE OF name ON providers "
                              "BEGIN SELECT RAISE(ABORT, 'providers.name written'); END")
        else:
            self.inst.execute("""CREATE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'providers.name written'; END $$;
                CREATE TRIGGER guard BEFORE UPDATE OF name ON providers FOR EACH ROW EXECUTE FUNCTION guard();""")
        for command in ("rotate-root", "rotate-data-key"):
            with self.subTest(command=command):
                r = self.inst.run(command)
                self.assertExit(r, "ok")
                self.assertIn("values in providers.client_secret", r.stdout)  # counted as the pass carried them
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def test_a_running_server_is_refused_by_dry_run_and_real_run_alike(self):
        if BACKEND != "sqlite":
            self.skipTest("SQLite detection through /proc")
        holder = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); "
                                   "print('ready', flush=True); time.sleep(60)", self.inst.db.path],
                                  stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            r = self.assertRefusalPredicted(["rotate-root"], "refused")
            self.assertIn(f"pid {holder.pid}", r.stderr)
            # restore goes through the same check.
            self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        finally:
            holder.kill()
            holder.wait()

    def test_a_held_key_directory_lock_is_refused_naming_the_holder(self):
        fd = os.open(self.key_dir(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            r = self.assertRefusalPredicted(["rotate-root"], "refused")
            self.assertIn(f"pid {os.getpid()}", r.stderr)
            self.assertIn("in progress", r.stderr)
        finally:
            os.close(fd)

    def test_a_full_key_directory_is_refused_before_anything_is_written(self):
        d = self.mount_tmpfs("16k")
        self.move_key_to(d)
        fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        r = self.assertRefusalPredicted(["rotate-root"], "provider")
        self.assertIn(d, r.stderr)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_a_read_only_key_directory_is_refused_before_anything_is_written(self):
        d = self.mount_tmpfs("64k")
        self.move_key_to(d)
        subprocess.run(["mount", "-o", "remount,ro", d], check=True)
        r = self.assertRefusalPredicted(["rotate-root"], "provider")
        self.assertIn("Read-only", r.stderr)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_a_read_only_database_changes_nothing(self):
        if BACKEND != "sqlite":
            self.inst.execute(f"ALTER DATABASE {self.inst.db.name} SET default_transaction_read_only = on")
        else:
            d = self.mount_tmpfs("4m")
            shutil.copyfile(self.inst.db.path, os.path.join(d, "sqlite3.db"))
            os.unlink(self.inst.db.path)
            self.inst.db.path = os.path.join(d, "sqlite3.db")
            self.inst.write_config()
            subprocess.run(["mount", "-o", "remount,ro", d], check=True)
        before = self.fingerprint()
        r = self.inst.run("rotate-root")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(r.returncode, (EXIT["database"], EXIT["refused"]), r.stderr)
        self.assertUnchanged(before, r)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_a_provider_error_after_staging_is_undone_in_the_same_run(self):
        # Stopped with K.new written and the old key retained; K.new is then broken underneath.
        env = dict(os.environ, HOME=self.inst.dir, INFRA_KEYS_FAILPOINT="rotate-after-retain:stop")
        before = self.fingerprint()
        p = subprocess.Popen([BIN, "--config", self.inst.config_path, "rotate-root"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until_stopped(p)
        with open(self.inst.key_path + ".new", "wb") as f:
            f.write(b"not a key")
        p.send_signal(signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, EXIT["provider"], err)
        self.assertIn("undone", err)
        self.assertEqual(before, self.fingerprint())
        self.assertEqual(glob.glob(self.inst.key_path + ".*"), [])
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_a_provider_error_before_staging_changes_nothing(self):
        with open(self.inst.key_path, "wb") as f:
            f.write(b"short")
        r = self.assertRefusalPredicted(["rotate-root"], "provider")
        self.assertIn("32 bytes", r.stderr)
        self.assertExit(self.inst.run("verify", "--level", "full"), "provider")

    # --- in progress, interrupted, --abort ----------------------------------------------------
    def test_other_commands_say_in_progress_while_a_rotation_runs_and_interrupted_after_a_kill(self):
        before = self.fingerprint()
        env = dict(os.environ, HOME=self.inst.dir, INFRA_KEYS_FAILPOINT="rotate-after-write-new-key:stop")
        p = subprocess.Popen([BIN, "--config", self.inst.config_path, "rotate-root"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until_stopped(p)
            # Step lines reach stdout as they happen (line-buffered), not at the end.
            for args in (["verify"], ["verify", "--level", "full"], ["status"], ["rotate-root", "--resume"],
                         ["rotate-root", "--abort"], ["rewrap"]):
                with self.subTest(args=args):
                    r = self.inst.run(*args)
                    self.assertExit(r, "refused")
                    self.assertIn("in progress", r.stderr)
                    self.assertIn(f"pid {p.pid}", r.stderr)
                    self.assertNotIn("interrupted", r.stderr)
        finally:
            p.kill()
            p.wait()
        for args in (["verify"], ["status"]):
            r = self.inst.run(*args)
            self.assertExit(r, "interrupted")
            self.assertIn("--resume", r.stderr)
            self.assertIn("--abort", r.stderr)
        a = self.inst.run("rotate-root", "--abort")
        self.assertExit(a, "ok")
        self.assertEqual(before, self.fingerprint())
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_abort_drops_a_rotation_killed_before_its_commit_and_refuses_one_that_committed(self):
        before = self.fingerprint()
        for point in ("rotate-after-write-new-key", "rotate-after-retain", "rotate-before-commit"):
            with self.subTest(point=point):
                r = self.inst.run("rotate-root", env={"INFRA_KEYS_FAILPOINT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL)
                self.assertExit(self.inst.run("rotate-root", "--abort", "--dry-run"), "ok")
                self.assertExit(self.inst.run("rotate-root", "--abort"), "ok")
                self.assertEqual(before, self.fingerprint())
        r = self.inst.run("rotate-root", env={"INFRA_KEYS_FAILPOINT": "rotate-after-commit"})
        self.assertEqual(r.returncode, -signal.SIGKILL)
        a = self.inst.run("rotate-root", "--abort")
        self.assertExit(a, "refused")
        self.assertIn("--resume", a.stderr)
        self.assertExit(self.inst.run("rotate-root", "--resume"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_a_garbage_new_key_is_named_as_such_and_abort_clears_it(self):
        with open(self.inst.key_path + ".new", "wb") as f:
            f.write(b"garbage")
        v = self.inst.run("verify")
        self.assertExit(v, "interrupted")
        self.assertIn("not a root key", v.stderr)
        self.assertNotIn("was interrupted", v.stderr)
        self.assertIn("rotate-root --abort", v.stderr)
        self.assertExit(self.inst.run("rotate-root", "--abort"), "ok")
        self.assertFalse(os.path.exists(self.inst.key_path + ".new"))
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_status_lists_stale_temp_files_and_the_next_key_change_sweeps_them(self):
        stale = self.inst.key_path + ".tmp-0badc0de"
        with open(stale, "wb") as f:
            f.write(os.urandom(32))
        s = self.inst.run("status")
        self.assertExit(s, "ok")
        self.assertIn(stale, s.stdout)
        r = self.inst.run("rotate-root")
        self.assertExit(r, "ok")
        self.assertFalse(os.path.exists(stale))

    # --- ownership and symlinks ----------------------------------------------------------------
    def chown_key(self, uid, gid, mode):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        os.chown(self.inst.key_path, uid, gid)
        os.chmod(self.inst.key_path, mode)

    def test_rotation_keeps_the_key_files_owner_group_and_mode(self):
        import grp
        import pwd
        for uid, gid in ((pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid), (1000, 1000)):
            with self.subTest(uid=uid):
                self.chown_key(uid, gid, 0o640)
                r = self.inst.run("rotate-root")
                self.assertExit(r, "ok")
                st = os.stat(self.inst.key_path)
                self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (uid, gid, 0o640))
                self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_restore_force_keeps_the_key_files_owner_group_and_mode(self):
        pw = {"INFRA_KEYS_PASSPHRASE": "correct horse battery staple"}
        backup = os.path.join(self.inst.dir, "b.backup")
        self.assertExit(self.inst.run("backup", "-o", backup, env=pw), "ok")
        self.chown_key(1000, 1000, 0o640)
        with open(self.inst.key_path, "wb") as f:
            f.write(os.urandom(32))
        self.assertExit(self.inst.run("restore", backup, "--force", env=pw), "ok")
        st = os.stat(self.inst.key_path)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (1000, 1000, 0o640))
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_a_symlinked_key_is_written_through_to_its_target(self):
        secrets = os.path.join(self.inst.dir, "secrets")
        os.mkdir(secrets, 0o700)
        target = os.path.join(secrets, "real.key")
        os.rename(self.inst.key_path, target)
        os.symlink("secrets/real.key", self.inst.key_path)
        r = self.inst.run("rotate-root")
        self.assertExit(r, "ok")
        self.assertIn("symlink", r.stdout)
        self.assertTrue(os.path.islink(self.inst.key_path))
        self.assertEqual(os.readlink(self.inst.key_path), "secrets/real.key")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(root_key=read_file(target)), self.inst.plaintexts)

    # --- restore takes the same locks and checks -----------------------------------------------
    def test_restore_force_is_refused_while_the_database_is_in_use_or_the_lock_held(self):
        pw = {"INFRA_KEYS_PASSPHRASE": "correct horse battery staple"}
        backup = os.path.join(self.inst.dir, "b.backup")
        self.assertExit(self.inst.run("backup", "-o", backup, env=pw), "ok")
        with open(self.inst.key_path, "wb") as f:
            f.write(os.urandom(32))
        before = self.fingerprint()
        fd = os.open(self.key_dir(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            r = self.inst.run("restore", backup, "--force", env=pw)
            self.assertExit(r, "refused")
            self.assertIn("in progress", r.stderr)
        finally:
            os.close(fd)
        self.assertEqual(before, self.fingerprint())
        if BACKEND == "sqlite":
            holder = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); "
                                       "print('ready', flush=True); time.sleep(60)", self.inst.db.path],
                                      stdout=subprocess.PIPE, text=True)
            try:
                holder.stdout.readline()
                for args in ([], ["--dry-run"]):
                    r = self.inst.run("restore", backup, "--force", *args, env=pw)
                    self.assertExit(r, "refused")
                    self.assertIn(f"pid {holder.pid}", r.stderr)
                self.assertEqual(before, self.fingerprint())
            finally:
                holder.kill()
                holder.wait()

    # --- --json of every subcommand ----------------------------------------------------------
    def assertJson(self, result, name, command):
        self.assertExit(result, name)
        doc = json.loads(result.stdout)
        self.assertTrue(JSON_FIELDS <= set(doc), doc)
        self.assertEqual(doc["schema"], 1)
        self.assertEqual(doc["command"], command)
        self.assertEqual(doc["exit_code"], EXIT[name])
        self.assertEqual(doc["ok"], name == "ok")
        if name != "ok":
            self.assertEqual(doc["error"]["exit_code"], EXIT[name])
            self.assertTrue(doc["error"]["message"])
        return doc

    def test_every_subcommand_prints_one_json_document_on_success_and_on_error(self):
        pw = {"INFRA_KEYS_PASSPHRASE": "correct horse battery staple"}
        backup = os.path.join(self.inst.dir, "b.backup")
        self.assertJson(self.inst.run("init", "--json"), "ok", "init")
        doc = self.assertJson(self.inst.run("status", "--json"), "ok", "status")
        self.assertTrue(doc["checks"])
        doc = self.assertJson(self.inst.run("rotate-root", "--dry-run", "--json"), "ok", "rotate-root")
        self.assertTrue(doc["dry_run"])
        self.assertEqual(doc["values"], len(self.inst.plaintexts))
        self.assertJson(self.inst.run("rotate-root", "--json"), "ok", "rotate-root")
        self.assertJson(self.inst.run("rewrap", "--json"), "ok", "rewrap")
        self.assertJson(self.inst.run("backup", "-o", backup, "--json", env=pw), "ok", "backup")
        self.assertJson(self.inst.run("backup", "--check", backup, "--json", env=pw), "ok", "backup")
        self.assertJson(self.inst.run("restore", backup, "--json", env=pw), "ok", "restore")
        v = json.loads(self.inst.run("verify", "--json").stdout)
        self.assertEqual(v["exit_code"], 0)
        # Each error class: usage, provider, refused, interrupted, problems, backup.
        self.assertJson(self.inst.run("rotate-root", "--to-key-id", "x", "--json"), "usage", "rotate-root")
        self.assertJson(self.inst.run("restore", backup, "--json", env={"INFRA_KEYS_PASSPHRASE": "wrong one, sorry"}),
                        "backup", "restore")
        self.assertJson(self.inst.run("backup", "-o", backup, "--json", env=pw), "refused", "backup")
        with open(self.inst.key_path + ".new", "wb") as f:
            f.write(b"junk")
        self.assertJson(self.inst.run("status", "--json"), "interrupted", "status")
        self.assertJson(self.inst.run("rotate-root", "--abort", "--json"), "ok", "rotate-root")
        self.inst.execute("UPDATE providers SET client_secret = 'garbage' WHERE id = 1")
        self.assertJson(self.inst.run("rotate-root", "--json"), "problems", "rotate-root")
        self.assertJson(self.inst.run("rewrap", "--json"), "ok", "rewrap")
        os.unlink(self.inst.key_path)
        self.assertJson(self.inst.run("rotate-root", "--json"), "provider", "rotate-root")
        self.assertJson(self.inst.run("rewrap", "--json"), "wrong_key", "rewrap")


if __name__ == "__main__":
    unittest.main()
