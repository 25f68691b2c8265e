"""init and verify, run the way an operator runs them."""
import json
import os
import stat
import unittest

import infra
from harness import E2E, BACKEND, BLOB_COLUMNS, TEXT_COLUMNS, read_file


class InitTest(E2E):
    def test_init_on_an_empty_directory_creates_a_working_installation(self):
        r = self.inst.run("init")
        self.assertExit(r, "ok")
        st = os.stat(self.inst.key_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_size, 32)
        row = self.inst.db_key_row()
        self.assertEqual(row["algorithm"], "aesgcm")
        self.assertEqual(row["root_key_id"], self.inst.key_path)
        db_key = infra.unseal(read_file(self.inst.key_path), row["encrypted"].decode(), infra.EMPTY_KEY_ID)
        self.assertEqual(len(db_key), 32)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_init_twice_changes_nothing_the_second_time_and_says_so(self):
        self.assertExit(self.inst.run("init"), "ok")
        before = self.inst.snapshot()
        r = self.inst.run("init")
        self.assertExit(r, "ok")
        self.assertIn("nothing to do", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_init_dry_run_prints_the_plan_and_writes_nothing(self):
        before = sorted(os.listdir(self.inst.dir))
        r = self.inst.run("init", "--dry-run")
        self.assertExit(r, "ok")
        self.assertIn("would create root key", r.stdout)
        self.assertIn("would create db key", r.stdout)
        if BACKEND == "sqlite":
            self.assertEqual(before, sorted(os.listdir(self.inst.dir)))

    def test_init_keeps_an_existing_installation(self):
        self.inst.seed(3)
        before = self.inst.snapshot()
        r = self.inst.run("init")
        self.assertExit(r, "ok")
        self.assertIn("nothing to do", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_init_refuses_a_db_key_the_configured_root_key_cannot_unwrap(self):
        self.inst.seed(3)
        with open(self.inst.key_path, "wb") as f:
            f.write(os.urandom(32))
        before = self.inst.snapshot()
        r = self.inst.run("init")
        self.assertExit(r, "wrong_key")
        self.assertIn("refusing to re-initialise", r.stderr)
        self.assertEqual(before, self.inst.snapshot())

    def test_init_refuses_when_the_root_key_of_an_existing_db_key_is_missing(self):
        self.inst.seed(3)
        os.remove(self.inst.key_path)
        before = self.inst.snapshot()
        self.assertExit(self.inst.run("init"), "provider")
        self.assertFalse(os.path.exists(self.inst.key_path))
        self.assertEqual(before, self.inst.snapshot())

    def test_init_refuses_to_create_a_db_key_for_values_sealed_by_a_lost_one(self):
        self.inst.seed(3)
        self.inst.execute("DELETE FROM encryption_keys")
        before = self.inst.snapshot()
        r = self.inst.run("init")
        self.assertExit(r, "refused")
        self.assertIn("no dbkey row", r.stderr)
        self.assertEqual(before, self.inst.snapshot())


class VerifyTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=4, empty_every=3)

    def test_verify_passes_at_every_level(self):
        for level in ("config", "keys", "full"):
            with self.subTest(level=level):
                r = self.inst.run("verify", "--level", level)
                self.assertExit(r, "ok")
                self.assertIn("verify: ok", r.stdout)

    def test_verify_defaults_to_keys(self):
        r = self.inst.run("verify")
        self.assertExit(r, "ok")
        self.assertIn("level keys", r.stdout)

    def test_verify_full_counts_values_per_column_in_json(self):
        r = self.inst.run("verify", "--level", "full", "--json")
        self.assertExit(r, "ok")
        report = json.loads(r.stdout)
        self.assertTrue(report["ok"])
        self.assertEqual(report["failed"], 0)
        self.assertEqual(report["values"], len(self.inst.plaintexts))
        names = {(c["table"], c["column"]) for c in report["columns"]}
        self.assertEqual(names, set(TEXT_COLUMNS + BLOB_COLUMNS))
        for c in report["columns"]:
            self.assertEqual(c["values"], 3, c)  # one in three is stored empty

    def test_verify_full_names_the_row_whose_value_was_tampered_with(self):
        value = self.inst.query("SELECT client_secret FROM providers WHERE id = 2")[0][0]
        raw = bytearray(infra.b64decode(value))
        raw[10] ^= 0x01  # inside the ciphertext
        self.inst.execute("UPDATE providers SET client_secret = ? WHERE id = 2", (infra.b64encode(bytes(raw)),))
        before = self.inst.snapshot()
        r = self.inst.run("verify", "--level", "full")
        self.assertExit(r, "problems")
        self.assertIn("providers.client_secret row 2", r.stdout)
        self.assertIn("authentication failed", r.stdout)
        self.assertEqual(before, self.inst.snapshot())

    def test_verify_full_tells_wrong_key_from_malformed(self):
        row = self.inst.db_key_row()
        other = infra.seal(os.urandom(32), b"x", b"\x01\x02\x03\x04", row["root_key_id"])
        self.inst.execute("UPDATE provider_users SET access_token = ? WHERE identity_id = 1", (other,))
        self.inst.execute("UPDATE root_certificates SET signed_cert = ? WHERE id = 2", ("not*base64",))
        r = self.inst.run("verify", "--level", "full", "--json")
        self.assertExit(r, "problems")
        failures = {(f["table"], f["column"], f["row"]): f["reason"] for f in json.loads(r.stdout)["failures"]}
        self.assertEqual(failures, {("provider_users", "access_token", "identity_id=1,provider_id=1"): "wrong_key",
                                    ("root_certificates", "signed_cert", "2"): "unsealed"})

    def test_parallel_and_single_threaded_scans_report_the_same_failures(self):
        self.inst.add_values(3000, start=100)
        rows = self.inst.query("SELECT id FROM providers WHERE length(client_secret) > 0 ORDER BY id")
        for (rid,) in rows[::97]:
            self.inst.execute("UPDATE providers SET client_secret = 'x' || client_secret WHERE id = ?", (rid,))
        for (rid,) in rows[5::131]:
            self.inst.execute("UPDATE destination_credentials SET bearer_token = 'AAAA' WHERE id = ?", (rid,))
        reports = [json.loads(self.inst.run("verify", "--level", "full", "--json", "--jobs", str(jobs)).stdout)
                   for jobs in (1, 2, 4)]
        self.assertGreater(reports[0]["failed"], 50)
        for other in reports[1:]:
            self.assertEqual(reports[0]["failures"], other["failures"])
            self.assertEqual(reports[0]["columns"], other["columns"])

    def test_failures_are_named_in_key_order_whatever_order_the_rows_are_stored_in(self):
        # Damaged from the highest ids down: on PostgreSQL an UPDATE puts the rows' new versions at the
        # end of the table, so the table's own order is no longer the key's. 2,100 damaged
        # values in one column are more than a worker keeps before trimming (2 x 1000 named).
        self.inst.add_values(3000, start=100)
        rows = [rid for (rid,) in self.inst.query(
            "SELECT id FROM providers WHERE length(client_secret) > 0 ORDER BY id")]
        damaged = rows[:2100]
        for chunk in (damaged[1400:], damaged[700:1400], damaged[:700]):
            self.inst.execute("UPDATE providers SET client_secret = 'x' || client_secret WHERE id BETWEEN ? AND ? "
                              "AND length(client_secret) > 0",
                              (chunk[0], chunk[-1]))
        for jobs in (1, 4):
            r = self.inst.run("verify", "--level", "full", "--json", "--jobs", str(jobs))
            self.assertExit(r, "problems")
            report = json.loads(r.stdout)
            named = [int(f["row"]) for f in report["failures"]
                     if (f["table"], f["column"]) == ("providers", "client_secret")]
            self.assertEqual(named, damaged[:1000], f"--jobs {jobs}")
            self.assertEqual(report["failed"], 2100)

    def test_verify_with_the_wrong_root_key_fails_and_writes_nothing(self):
        with open(self.inst.key_path, "wb") as f:
            f.write(os.urandom(32))
        before = self.inst.snapshot()
        r = self.inst.run("verify", "--level", "full")
        self.assertExit(r, "wrong_key")
        self.assertIn("does not unwrap", r.stderr)
        self.assertEqual(before, self.inst.snapshot())

    def test_verify_reports_a_missing_key_file(self):
        os.remove(self.inst.key_path)
        r = self.inst.run("verify")
        self.assertExit(r, "provider")
        self.assertIn(self.inst.key_path, r.stderr)

    def test_verify_rejects_a_key_file_of_31_bytes(self):
        with open(self.inst.key_path, "wb") as f:
            f.write(os.urandom(31))
        r = self.inst.run("verify")
        self.assertExit(r, "provider")
        self.assertIn("31 bytes", r.stderr)

    def test_verify_warns_about_a_world_readable_key_file(self):
        os.chmod(self.inst.key_path, 0o644)
        r = self.inst.run("verify")
        self.assertExit(r, "ok")
        self.assertIn("warning", r.stderr)

    def test_verify_json_reports_a_stopping_error(self):
        os.remove(self.inst.key_path)
        r = self.inst.run("verify", "--json")
        self.assertExit(r, "provider")
        report = json.loads(r.stdout)
        self.assertFalse(report["ok"])
        self.assertEqual(report["error"]["exit_code"], 3)


class ConfigErrorsTest(E2E):
    def test_malformed_yaml_names_file_and_line(self):
        with open(self.inst.config_path, "w") as f:
            f.write("dbFile: /tmp/x\nkeys:\n  - kind: native\n   bad: [\n")
        r = self.inst.run("verify", "--level", "config")
        self.assertExit(r, "usage")
        self.assertIn(self.inst.config_path, r.stderr)
        self.assertIn("line", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_unknown_provider_kind_is_a_usage_error(self):
        self.inst.write_config("keys:\n  - kind: awskmss\n")
        r = self.inst.run("verify", "--level", "config")
        self.assertExit(r, "usage")
        self.assertIn("awskmss", r.stderr)

    def test_missing_config_file(self):
        r = self.inst.run("--config", os.path.join(self.inst.dir, "nope.yaml"), "verify", config=False)
        self.assertExit(r, "usage")
        self.assertIn("nope.yaml", r.stderr)

    def test_missing_secret_reference(self):
        self.inst.write_config("dbPassword: env:INFRA_KEYS_TEST_UNSET_VARIABLE\n")
        r = self.inst.run("verify", "--level", "config")
        self.assertExit(r, "usage")
        self.assertIn("INFRA_KEYS_TEST_UNSET_VARIABLE", r.stderr)

    def test_config_from_environment_variable(self):
        self.inst.seed(1)
        r = self.inst.run("verify", config=False, env={"INFRA_KEYS_CONFIG": self.inst.config_path})
        self.assertExit(r, "ok")


class CliTest(E2E):
    def test_version_and_help(self):
        r = self.inst.run("--version", config=False)
        self.assertExit(r, "ok")
        self.assertRegex(r.stdout, r"^infra-keys \d+\.\d+\.\d+")
        for sub in ("init", "verify"):
            r = self.inst.run(sub, "--help", config=False)
            self.assertExit(r, "ok")
            self.assertIn("--dry-run" if sub == "init" else "--level", r.stdout)

    def test_unknown_flag_is_a_usage_error(self):
        self.assertExit(self.inst.run("verify", "--frobnicate"), "usage")

    def test_quiet_prints_nothing_on_success(self):
        self.inst.seed(1)
        r = self.inst.run("--quiet", "verify")
        self.assertExit(r, "ok")
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    unittest.main()
