"""What only PostgreSQL has: other sessions, dropped connections, authentication, --db-url.

The rest of the end-to-end suite runs against PostgreSQL too (tests/e2e/meson.build, e2e-postgres);
these cases need a server to misbehave or a second session to exist.
"""
import glob
import os
import signal
import subprocess
import unittest

from harness import BACKEND, BIN, E2E, read_file, wait_until_stopped

PASSWORD = os.environ.get("INFRA_KEYS_TEST_PG_PASSWORD", "")


@unittest.skipUnless(BACKEND == "postgres", "needs INFRA_KEYS_TEST_DB=postgres (tests/pg/with-postgres)")
class PostgresTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=30, empty_every=7)

    def assertNoPassword(self, result):
        self.assertTrue(PASSWORD, "with-postgres exports the password")
        self.assertNotIn(PASSWORD, result.stdout + result.stderr)

    def rotate_stopped_at(self, point, *args):
        env = dict(os.environ, HOME=self.inst.dir, INFRA_KEYS_FAILPOINT=point + ":stop")
        proc = subprocess.Popen([BIN, "--config", self.inst.config_path, "rotate-root", *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until_stopped(proc)
        return proc

    def infra_keys_backends(self):
        return self.inst.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'infra-keys' "
                               "AND datname = current_database()")

    # --- a dropped connection in the middle of a rotation -----------------------------------
    def test_a_backend_terminated_during_rotation_commits_nothing_and_resume_converges(self):
        before_rows = self.inst.query("SELECT id, encrypted, root_key_id FROM encryption_keys ORDER BY id")
        before_values = self.inst.stored_values()
        old_key = read_file(self.inst.key_path)
        proc = self.rotate_stopped_at("rotate-before-commit")
        try:
            pids = self.infra_keys_backends()
            self.assertTrue(pids, "the stopped rotation holds a session")
            for (pid,) in pids:
                self.inst.query("SELECT pg_terminate_backend(?)", (pid,))
        finally:
            proc.send_signal(signal.SIGCONT)
            out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, f"stdout: {out}\nstderr: {err}")
        self.assertIn("postgres", err)
        self.assertIn(self.inst.db.name, err)
        self.assertTrue(err.startswith("infra-keys: "), err)
        self.assertNotIn(PASSWORD, out + err)
        # Nothing half-written: the old key still opens the untouched rows and values.
        self.assertEqual(before_rows, self.inst.query("SELECT id, encrypted, root_key_id FROM encryption_keys ORDER BY id"))
        self.assertEqual(before_values, self.inst.stored_values())
        self.assertEqual(old_key, read_file(self.inst.key_path))
        # The new key written before the commit is what every command points at.
        r = self.inst.run("verify")
        self.assertExit(r, "interrupted")
        self.assertIn("rotate-root --resume", r.stderr)
        self.assertExit(self.inst.run("rotate-root", "--resume"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)
        self.assertNotEqual(old_key, read_file(self.inst.key_path))

    # --- another session on the database ----------------------------------------------------
    def test_rotation_refuses_while_another_session_uses_the_database(self):
        other = self.inst.db.psycopg2.connect(self.inst.db.conninfo, application_name="infra-server")
        try:
            before = self.inst.snapshot()
            r = self.inst.run("rotate-root")
            self.assertExit(r, "refused")
            self.assertIn("infra-server", r.stderr)
            self.assertIn("stop the Infra server", r.stderr)
            self.assertEqual(before, self.inst.snapshot())
            self.assertExit(self.inst.run("rotate-root", "--server-stopped"), "ok")
            self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
            self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)
        finally:
            other.close()

    def test_a_second_writer_fails_at_once_while_the_first_holds_the_database(self):
        proc = self.rotate_stopped_at("rotate-before-commit")
        try:
            # Another operator with its own copy of the key and config, on the same database.
            other_dir = os.path.join(self.inst.dir, "other")
            os.mkdir(other_dir, 0o700)
            other_key = os.path.join(other_dir, "root.key")
            fd = os.open(other_key, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, self.inst.root_key)
            os.close(fd)
            other_config = os.path.join(other_dir, "infra.yaml")
            with open(other_config, "w") as f:
                f.write("\n".join(self.inst.db.config_lines() + [f"dbEncryptionKey: {other_key}"]) + "\n")
            before = sorted(os.listdir(other_dir))
            (session,) = self.infra_keys_backends()[0]
            r = self.inst.run("--config", other_config, "rotate-root", "--server-stopped", config=False, timeout=60)
            self.assertExit(r, "refused")
            self.assertIn("a key change is in progress", r.stderr)
            self.assertIn(f"session {session} of user", r.stderr)
            # Its key directory is not the rotation's: the database's lock alone shows the change.
            for args in (["verify"], ["status"]):
                r = self.inst.run("--config", other_config, *args, config=False, timeout=60)
                self.assertExit(r, "refused")
                self.assertIn(f"session {session} of user", r.stderr)
                self.assertNotIn("interrupted", r.stderr)
            self.assertEqual(before, sorted(os.listdir(other_dir)))
            self.assertEqual(self.inst.root_key, read_file(other_key))
        finally:
            proc.send_signal(signal.SIGCONT)
            proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    # --- connection problems: exit 4, named target, never the password ------------------------
    def test_a_wrong_password_is_a_database_error_that_names_the_target(self):
        before = self.inst.snapshot()
        r = self.inst.run("verify", env={"PGPASSWORD": "not-the-password"})
        self.assertExit(r, "database")
        self.assertIn(self.inst.db.name, r.stderr)
        self.assertIn("127.0.0.1", r.stderr)
        self.assertNoPassword(r)
        self.assertEqual(before, self.inst.snapshot())

    def test_a_password_from_the_config_secret_reference_is_used_and_never_printed(self):
        self.inst.write_config("dbPassword: env:INFRA_TEST_DB_PASSWORD\n")
        env = {"PGPASSWORD": "", "INFRA_TEST_DB_PASSWORD": PASSWORD}
        r = self.inst.run("verify", "--level", "full", env=env)
        self.assertExit(r, "ok")
        self.assertNoPassword(r)
        r = self.inst.run("verify", env={"PGPASSWORD": "", "INFRA_TEST_DB_PASSWORD": "wrong"})
        self.assertExit(r, "database")
        self.assertNoPassword(r)

    def test_a_missing_database_is_a_database_error(self):
        lines = [line.replace(self.inst.db.name, "no_such_db") for line in self.inst.db.config_lines()]
        with open(self.inst.config_path, "w") as f:
            f.write("\n".join(lines + [f"dbEncryptionKey: {self.inst.key_path}"]) + "\n")
        r = self.inst.run("verify")
        self.assertExit(r, "database")
        self.assertIn("no_such_db", r.stderr)

    def test_a_server_that_is_not_there_is_a_database_error(self):
        with open(self.inst.config_path, "w") as f:
            f.write(f"dbHost: 127.0.0.1\ndbPort: 1\ndbName: x\ndbUsername: x\ndbEncryptionKey: {self.inst.key_path}\n")
        r = self.inst.run("verify", timeout=60)
        self.assertExit(r, "database")
        self.assertIn("127.0.0.1", r.stderr)

    def test_a_database_without_the_key_table_is_refused_politely(self):
        self.inst.execute("DROP TABLE encryption_keys")
        r = self.inst.run("verify")
        self.assertExit(r, "database")
        self.assertIn("is this an Infra database?", r.stderr)

    def test_db_url_overrides_the_config(self):
        with open(self.inst.config_path, "w") as f:
            f.write(f"dbHost: 127.0.0.1\ndbPort: 1\ndbName: x\ndbUsername: x\ndbEncryptionKey: {self.inst.key_path}\n")
        r = self.inst.run("--db-url", self.inst.db.conninfo, "verify", "--level", "full")
        self.assertExit(r, "ok")

    def test_rotation_keeps_bytea_and_text_types(self):
        self.assertExit(self.inst.run("rotate-root"), "ok")
        types = dict(self.inst.query("SELECT column_name, data_type FROM information_schema.columns "
                                     "WHERE table_name IN ('settings', 'encryption_keys') "
                                     "AND column_name IN ('private_jwk', 'encrypted')"))
        self.assertEqual(types, {"private_jwk": "bytea", "encrypted": "bytea"})
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)
        self.assertEqual(len(glob.glob(self.inst.key_path + ".*.retired")), 1)


if __name__ == "__main__":
    unittest.main()
