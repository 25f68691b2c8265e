"""What operators feed the tool: config files, passphrases, databases, terminals. Strict where a
mistake would otherwise be read silently, and every refusal leaves every byte as it was."""
import glob
import hashlib
import json
import os
import pty
import sqlite3
import subprocess
import unittest

from harness import BIN, E2E, EXIT, SANITIZER_REPORTS

PASSPHRASE = "correct horse battery staple"
FAST_KDF = ["--scrypt-work-factor", "10"]


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def digests(directory):
    """sha256 of every file under `directory`: what a refusal must leave as it was."""
    return {os.path.relpath(p, directory): sha256_of(p)
            for p in sorted(glob.glob(os.path.join(directory, "**"), recursive=True)) if os.path.isfile(p)}


class ConfigInputTest(E2E):
    def test_a_directory_as_config_is_refused_and_nothing_is_created(self):
        config_dir = os.path.join(self.inst.dir, "configmap")
        os.mkdir(config_dir)
        before = digests(self.inst.dir)
        r = self.inst.run("--config", config_dir, "init", config=False)
        self.assertExit(r, "usage")
        self.assertIn(f"config {config_dir} is a directory", r.stderr)
        self.assertIn(os.path.join(config_dir, "infra.yaml"), r.stderr)  # the hint names the likely file
        self.assertFalse(os.path.exists(os.path.join(self.inst.dir, ".infra")))  # no defaults applied
        self.assertEqual(before, digests(self.inst.dir))

    def test_an_empty_or_comment_only_config_warns_that_the_defaults_apply(self):
        for text in ("", "# mounted from an empty ConfigMap\n"):
            with open(self.inst.config_path, "w") as f:
                f.write(text)
            r = self.inst.run("verify", "--level", "config")
            self.assertExit(r, "ok")
            self.assertIn(f"warning: config {self.inst.config_path} is empty", r.stderr)
            self.assertIn("the server's defaults apply", r.stderr)
            r = self.inst.run("verify", "--level", "config", "--json")
            self.assertTrue(any("is empty" in w for w in json.loads(r.stdout)["warnings"]), r.stdout)

    def test_a_misspelt_option_is_named_with_its_line_and_the_nearest_option(self):
        self.inst.seed(1)
        self.inst.write_config("dbEncrpytionKeyProvider: awskms\n")
        line = len(self.inst.db.config_lines()) + 2  # after the db lines and dbEncryptionKey
        r = self.inst.run("verify")
        self.assertExit(r, "ok")  # the server ignores the key too: native, as before
        self.assertIn(f"config {self.inst.config_path} line {line}: dbEncrpytionKeyProvider is not an Infra server "
                      "option; the server ignores it (did you mean dbEncryptionKeyProvider?)", r.stderr)

    def test_an_option_given_twice_is_named_with_both_lines(self):
        self.inst.seed(1)
        first = len(self.inst.db.config_lines()) + 1
        self.inst.write_config(f"DBENCRYPTIONKEY: {self.inst.key_path}\n")
        r = self.inst.run("verify", "--level", "config")
        self.assertExit(r, "ok")
        self.assertIn(f"line {first + 1}: DBENCRYPTIONKEY is given twice (also on line {first}); the last one is used",
                      r.stderr)

    def test_a_missing_secret_names_the_option_that_refers_to_it(self):
        self.inst.write_config("dbPassword: env:INFRA_KEYS_TEST_UNSET_VARIABLE\n")
        r = self.inst.run("verify", "--level", "config")
        self.assertExit(r, "usage")
        self.assertIn("dbPassword: secret env:INFRA_KEYS_TEST_UNSET_VARIABLE not found", r.stderr)
        self.inst.write_config("dbEncryptionKeyProvider: vault\nkeys:\n  - kind: vault\n    config:\n"
                               "      address: https://127.0.0.1:1\n      token: env:INFRA_KEYS_TEST_UNSET_TOKEN\n")
        r = self.inst.run("verify", "--level", "config")
        self.assertExit(r, "usage")
        self.assertIn("the vault entry of keys: (line", r.stderr)
        self.assertIn("INFRA_KEYS_TEST_UNSET_TOKEN not found", r.stderr)

    def test_options_in_another_case_are_accepted_silently_as_the_server_accepts_them(self):
        self.inst.seed(1)
        with open(self.inst.config_path) as f:
            text = f.read()
        with open(self.inst.config_path, "w") as f:
            f.write(text.replace("dbFile:", "DBFILE:").replace("dbEncryptionKey:", "dbencryptionkey:") +
                    "addr: {http: ':80'}\nenableSignup: true\n")
        r = self.inst.run("verify")
        self.assertExit(r, "ok")
        self.assertNotIn("warning", r.stderr)


@unittest.skipIf(os.environ.get("INFRA_KEYS_TEST_DB") == "postgres", "a SQLite file")
class NotAnInfraDatabaseTest(E2E):
    def test_init_refuses_a_sqlite_file_without_infra_tables_and_leaves_it_unchanged(self):
        c = sqlite3.connect(self.inst.db.path)
        c.executescript("CREATE TABLE invoices (id integer primary key, total text);"
                        "INSERT INTO invoices VALUES (1, '12.50');")
        c.close()
        before = digests(self.inst.dir)
        r = self.inst.run("init")
        self.assertExit(r, "database")
        self.assertIn(f"sqlite {self.inst.db.path} is not an Infra database", r.stderr)
        self.assertIn("dbFile", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))
        self.assertFalse(os.path.exists(self.inst.key_path))  # no root key created either


class PassphraseTest(E2E):
    """One rule for every source: exactly one trailing "\\n" or "\\r\\n" is removed; one line only."""

    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=2)
        self.backup_path = os.path.join(self.inst.dir, "keys.backup")

    def write(self, name, data):
        path = os.path.join(self.inst.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def make_backup(self, *source, env=None, input=None):
        return self.inst.run("backup", "--output", self.backup_path, *FAST_KDF, *source, env=env, input=input)

    def check(self, *source, env=None):
        return self.inst.run("backup", "--check", self.backup_path, *source, env=env)

    def test_a_trailing_newline_in_the_environment_is_removed_as_from_a_file(self):
        # A CronJob's env from a Secret made with --from-file keeps the file's newline.
        self.assertExit(self.make_backup(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + "\n"}), "ok")
        bare = self.write("pass", PASSPHRASE.encode())
        self.assertExit(self.check("--passphrase-file", bare), "ok")
        crlf = self.write("pass-crlf", PASSPHRASE.encode() + b"\r\n")
        self.assertExit(self.check("--passphrase-file", crlf), "ok")
        self.assertExit(self.check(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE}), "ok")
        self.assertExit(self.check(env={"INFRA_KEYS_PASSPHRASE_FILE": crlf}), "ok")
        self.assertExit(self.check("--passphrase-command", f"printf '%s\\n' '{PASSPHRASE}'"), "ok")

    def test_only_one_line_ending_is_removed(self):
        self.assertExit(self.make_backup(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + " \r"}), "ok")
        # A bare "\r" is not a line ending: it stays part of the passphrase.
        self.assertExit(self.check(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + " "}), "backup")
        self.assertExit(self.check(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + " \r"}), "ok")
        # "\r\n" is one line ending, removed whole.
        self.assertExit(self.make_backup("--force", env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + " "}), "ok")
        self.assertExit(self.check(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + " \r\n"}), "ok")
        self.assertExit(self.check(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE + " \n\n"}), "usage")

    def test_a_passphrase_of_two_lines_is_refused_from_every_source(self):
        two = self.write("two-lines", (PASSPHRASE + "\nsecond line\n").encode())
        before = digests(self.inst.dir)
        for source, env in ((["--passphrase-file", two], None), ([], {"INFRA_KEYS_PASSPHRASE_FILE": two}),
                            ([], {"INFRA_KEYS_PASSPHRASE": PASSPHRASE + "\n\n"}),
                            (["--passphrase-command", f"cat {two}"], None)):
            with self.subTest(source=source, env=env):
                r = self.make_backup(*source, env=env)
                self.assertExit(r, "usage")
                self.assertIn("has more than one line", r.stderr)
                self.assertNotIn("second line", r.stderr + r.stdout)
                self.assertEqual(before, digests(self.inst.dir))

    def test_passphrase_file_from_the_environment_and_passphrase_command(self):
        path = self.write("pass", (PASSPHRASE + "\n").encode())
        self.assertExit(self.make_backup(env={"INFRA_KEYS_PASSPHRASE_FILE": path}), "ok")
        self.assertExit(self.check("--passphrase-command", f"cat {path}"), "ok")
        r = self.check("--passphrase-command", "exit 3")
        self.assertExit(r, "usage")
        self.assertIn("--passphrase-command failed (exit status 3)", r.stderr)

    def test_an_option_beats_the_environment(self):
        path = self.write("pass", (PASSPHRASE + "\n").encode())
        self.assertExit(self.make_backup("--passphrase-file", path, env={"INFRA_KEYS_PASSPHRASE": "something else!"}),
                        "ok")
        self.assertExit(self.check("--passphrase-file", path), "ok")

    def test_conflicting_passphrase_sources_are_refused(self):
        path = self.write("pass", (PASSPHRASE + "\n").encode())
        before = digests(self.inst.dir)
        r = self.make_backup("--passphrase-file", path, "--passphrase-fd", "0", input=PASSPHRASE + "\n")
        self.assertExit(r, "usage")
        self.assertIn("--passphrase-file and --passphrase-fd cannot be used together", r.stderr)
        r = self.make_backup("--passphrase-fd", "0", "--passphrase-command", "true", input=PASSPHRASE + "\n")
        self.assertExit(r, "usage")
        r = self.make_backup(env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE, "INFRA_KEYS_PASSPHRASE_FILE": path})
        self.assertExit(r, "usage")
        self.assertIn("both INFRA_KEYS_PASSPHRASE and INFRA_KEYS_PASSPHRASE_FILE are set", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))

    def test_an_unreadable_passphrase_file_is_a_usage_error(self):
        directory = os.path.join(self.inst.dir, "not-a-file")
        os.mkdir(directory)
        before = digests(self.inst.dir)
        r = self.make_backup("--passphrase-file", directory)
        self.assertExit(r, "usage")
        self.assertIn(f"passphrase file {directory}", r.stderr)
        r = self.make_backup("--passphrase-file", os.path.join(self.inst.dir, "missing"))
        self.assertExit(r, "usage")
        self.assertIn("does not exist", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))

    def test_restore_from_stdin_refuses_the_passphrase_from_stdin_too(self):
        path = self.write("pass", (PASSPHRASE + "\n").encode())
        self.assertExit(self.make_backup("--passphrase-file", path), "ok")
        with open(self.backup_path, "rb") as f:
            backup = f.read()
        restore = lambda *source: subprocess.run(  # noqa: E731
            [BIN, "--config", self.inst.config_path, "restore", "-", *source], input=backup, capture_output=True,
            env=dict(os.environ, HOME=self.inst.dir))
        before = digests(self.inst.dir)
        r = restore("--passphrase-fd", "0")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"--passphrase-fd 0 reads stdin, which already carries the backup", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))
        r = restore("--passphrase-file", path)
        self.assertEqual(r.returncode, 0, r.stderr)  # the same key: nothing to replace

    def test_restore_of_a_directory_is_a_usage_error(self):
        path = self.write("pass", (PASSPHRASE + "\n").encode())
        before = digests(self.inst.dir)
        r = self.inst.run("restore", self.inst.dir, "--passphrase-file", path)
        self.assertExit(r, "usage")
        self.assertIn(f"{self.inst.dir} is a directory, not a backup file", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))

    def test_backup_to_stdout_reports_on_stderr_without_warning_and_quiet_hides_it(self):
        path = self.write("pass", (PASSPHRASE + "\n").encode())
        run = lambda *extra: subprocess.run(  # noqa: E731
            [BIN, "--config", self.inst.config_path, *extra, "backup", "--output", "-", "--passphrase-file", path,
             *FAST_KDF], capture_output=True, env=dict(os.environ, HOME=self.inst.dir))
        r = run()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"age-encryption.org/v1\n"))
        self.assertNotIn(b"warning", r.stderr)
        self.assertIn(b"verified", r.stderr)
        r = run("--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")


class CommandLineTest(E2E):
    def test_a_mistyped_command_gets_did_you_mean(self):
        r = self.inst.run("verfy")
        self.assertExit(r, "usage")
        self.assertIn('unknown command "verfy" (did you mean verify?)', r.stderr)
        r = self.inst.run("--quiet", "rotate-roots", "--dry-run")
        self.assertExit(r, "usage")
        self.assertIn("did you mean rotate-root?", r.stderr)

    def test_help_lists_the_commands_and_help_command_shows_its_options(self):
        r = self.inst.run("help", config=False)
        self.assertExit(r, "ok")
        for command in ("init", "verify", "rotate-root", "backup", "restore"):
            self.assertIn(command, r.stdout)
        r = self.inst.run("help", "verify", config=False)
        self.assertExit(r, "ok")
        self.assertIn("--level", r.stdout)
        self.assertEqual(r.stdout, self.inst.run("verify", "--help", config=False).stdout)
        r = self.inst.run("help", "verfy", config=False)
        self.assertExit(r, "usage")
        self.assertIn("did you mean verify?", r.stderr)

    def test_options_that_do_not_apply_together_are_refused(self):
        self.inst.seed(1)
        backup = os.path.join(self.inst.dir, "keys.backup")
        before = digests(self.inst.dir)
        for args in (["rotate-root", "--retire-old", "--to-key-id", "alias/other"],
                     ["backup", "--check", backup, "--output", os.path.join(self.inst.dir, "other.backup")],
                     ["backup", "--check", backup, "--force"]):
            with self.subTest(args=args):
                r = self.inst.run(*args, env={"INFRA_KEYS_PASSPHRASE": PASSPHRASE})
                self.assertExit(r, "usage")
                self.assertIn("excludes", r.stderr)
                self.assertEqual(before, digests(self.inst.dir))

    def test_backup_help_states_the_kdf_default(self):
        r = self.inst.run("backup", "--help", config=False)
        self.assertNotIn("default in the README", r.stdout)
        self.assertIn("scrypt's N (default 16)", r.stdout)

    def test_verbose_says_what_is_read_and_from_where_on_stderr(self):
        self.inst.seed(1)
        r = self.inst.run("--verbose", "verify")
        self.assertExit(r, "ok")
        self.assertIn(f"infra-keys: config: {self.inst.config_path}", r.stderr)
        self.assertIn("infra-keys: root key: ", r.stderr)
        self.assertIn(self.inst.key_path, r.stderr)
        self.assertIn("infra-keys: database: ", r.stderr)
        self.assertRegex(r.stderr, r"infra-keys: verify: finished in \d+\.\d\d s")
        quiet = self.inst.run("verify")
        self.assertNotIn("infra-keys: config:", quiet.stderr)

    def test_an_infra_server_override_is_shown_on_the_config_line(self):
        self.inst.seed(1)
        r = self.inst.run("verify", "--json", env={"INFRA_SERVER_DB_ENCRYPTION_KEY": self.inst.key_path})
        self.assertExit(r, "ok")
        config = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "config")
        self.assertIn("overridden by INFRA_SERVER_DB_ENCRYPTION_KEY", config["detail"])


@unittest.skipIf(os.environ.get("INFRA_KEYS_TEST_DB") == "postgres", "a SQLite file path")
class NonUtf8PathTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(1)
        self.odd = os.path.join(self.inst.dir.encode(), b"root-\xe9.key")
        os.rename(self.inst.key_path, self.odd)
        with open(self.inst.config_path) as f:
            text = f.read()
        with open(self.inst.config_path, "wb") as f:
            f.write(text.replace(self.inst.key_path, "@KEY@").encode().replace(b"@KEY@", self.odd))

    def run_bytes(self, *args):
        return subprocess.run([BIN, "--config", self.inst.config_path, *args], capture_output=True,
                              env=dict(os.environ, HOME=self.inst.dir))

    def test_json_of_every_command_with_a_path_that_is_not_utf8_is_valid_json(self):
        for args in (["verify", "--json"], ["status", "--json"], ["rewrap", "--dry-run", "--json"]):
            with self.subTest(args=args):
                r = self.run_bytes(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                report = json.loads(r.stdout.decode("utf-8"))  # valid UTF-8 and valid JSON
                self.assertTrue(report["ok"])

    def test_backup_names_the_value_it_cannot_carry(self):
        passphrase = os.path.join(self.inst.dir, "passphrase")
        with open(passphrase, "w") as f:
            f.write("correct horse battery staple\n")
        out = os.path.join(self.inst.dir, "keys.backup")
        r = self.run_bytes("backup", "-o", out, "--passphrase-file", passphrase, "--scrypt-work-factor", "10")
        self.assertEqual(r.returncode, EXIT["backup"], r.stderr)
        stderr = r.stderr.decode("utf-8")  # the odd byte is shown escaped, so the message is UTF-8
        self.assertIn("the root key id (provider.root_key_id)", stderr)
        self.assertIn("root-\\xe9.key", stderr)
        self.assertFalse(os.path.exists(out))


class RootKeyDiagnosisTest(E2E):
    """The common ways a 32-byte key gets mangled are recognised, with the command that fixes it."""

    def setUp(self):
        super().setUp()
        self.inst.seed(1)
        with open(self.inst.key_path, "rb") as f:
            self.key = f.read()

    def diagnose(self, content):
        with open(self.inst.key_path, "wb") as f:
            f.write(content)
        before = digests(self.inst.dir)
        r = self.inst.run("verify")
        self.assertExit(r, "provider")
        self.assertIn(f"is {len(content)} bytes; a root key must be exactly 32 bytes", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))
        for text in (content, content.strip()):
            if len(text) >= 8:
                self.assertNotIn(text.decode("latin-1"), r.stderr)  # never a byte of the key
        return r.stderr

    def apply_fix(self, stderr):
        """Runs the command of the hint, as an operator would paste it, and checks the key works again."""
        hint = next(line for line in stderr.splitlines() if line.startswith("infra-keys: hint: "))
        command = hint[len("infra-keys: hint: "):].split(";")[0]
        subprocess.run(["/bin/sh", "-c", command], check=True)
        with open(self.inst.key_path, "rb") as f:
            self.assertEqual(self.key, f.read())
        self.assertExit(self.inst.run("verify"), "ok")

    def test_a_trailing_newline(self):
        err = self.diagnose(self.key + b"\n")
        self.assertIn("32 bytes and a trailing line ending", err)
        self.assertIn(f"truncate -s 32 {self.inst.key_path}", err)
        self.apply_fix(err)

    def test_base64_text_with_and_without_a_newline(self):
        import base64
        for content in (base64.b64encode(self.key), base64.b64encode(self.key) + b"\n"):
            with self.subTest(size=len(content)):
                err = self.diagnose(content)
                self.assertIn("the base64 text of a 32-byte key", err)
                self.assertIn("base64 -d", err)
                self.apply_fix(err)

    def test_hex_text_with_and_without_a_newline(self):
        for content in (self.key.hex().encode(), self.key.hex().encode() + b"\n"):
            with self.subTest(size=len(content)):
                err = self.diagnose(content)
                self.assertIn("the hex text of a 32-byte key", err)
                self.assertIn("xxd -r -p", err)
                self.apply_fix(err)

    def test_the_malformed_key_fails_the_root_key_check_and_json_lists_it(self):
        with open(self.inst.key_path, "wb") as f:
            f.write(self.key + b"\n")
        r = self.inst.run("verify")
        self.assertExit(r, "provider")
        self.assertNotRegex(r.stdout, r"root key +ok")
        self.assertRegex(r.stdout, r"root key +FAIL .*33 bytes")
        r = self.inst.run("verify", "--json")
        report = json.loads(r.stdout)
        failing = [c for c in report["checks"] if not c["ok"]]
        self.assertEqual([c["name"] for c in failing], ["root key"], report["checks"])
        self.assertIn("33 bytes", failing[0]["detail"])
        self.assertEqual(report["error"]["exit_code"], 3)

    def test_other_sizes_get_no_guess(self):
        err = self.diagnose(os.urandom(31))
        self.assertNotIn("text of a", err)


class ExitCodeTableTest(E2E):
    """One case per row of the README's exit code table, provoked as an operator would meet it."""

    def setUp(self):
        super().setUp()
        self.inst.seed(2)
        self.pass_file = os.path.join(self.inst.dir, "pass")
        with open(self.pass_file, "w") as f:
            f.write(PASSPHRASE + "\n")

    def test_0_ok(self):
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")

    def test_1_a_value_that_does_not_decrypt(self):
        value = self.inst.query("SELECT client_secret FROM providers WHERE id = 1")[0][0]
        self.inst.execute("UPDATE providers SET client_secret = ? WHERE id = 1", (value[:-4] + "AAAA",))
        self.assertExit(self.inst.run("verify", "--level", "full"), "problems")

    def test_2_usage(self):
        self.assertExit(self.inst.run("verify", "--level", "everything"), "usage")

    def test_3_root_key_missing(self):
        os.remove(self.inst.key_path)
        self.assertExit(self.inst.run("verify"), "provider")

    def test_4_no_dbkey_row(self):
        self.inst.execute("DELETE FROM encryption_keys")
        self.assertExit(self.inst.run("verify"), "database")

    def test_5_wrong_root_key_names_the_database(self):
        with open(self.inst.key_path, "wb") as f:
            f.write(os.urandom(32))
        r = self.inst.run("verify")
        self.assertExit(r, "wrong_key")
        row = self.inst.db_key_row()
        self.assertIn(f"dbkey row {row['id']} in ", r.stderr)
        self.assertIn(self.inst.db.path if hasattr(self.inst.db, "path") else self.inst.db.name, r.stderr)

    def test_5_a_native_config_against_a_vault_wrapped_row_names_the_mismatch(self):
        self.inst.execute("UPDATE encryption_keys SET encrypted = ?, algorithm = 'aes256-gcm96', root_key_id = 'infra' "
                          "WHERE name = 'dbkey'", (b"vault:v1:" + b"A" * 60,))
        before = digests(self.inst.dir)
        r = self.inst.run("verify")
        self.assertExit(r, "wrong_key")
        self.assertIn("was wrapped by the vault provider (algorithm aes256-gcm96), but the config uses the native "
                      "provider", r.stderr)
        self.assertIn("dbEncryptionKeyProvider: vault", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))

    def test_6_backup_with_the_wrong_passphrase(self):
        backup = os.path.join(self.inst.dir, "keys.backup")
        self.assertExit(self.inst.run("backup", "-o", backup, "--passphrase-file", self.pass_file, *FAST_KDF), "ok")
        r = self.inst.run("backup", "--check", backup, env={"INFRA_KEYS_PASSPHRASE": "not the passphrase at all"})
        self.assertExit(r, "backup")

    def test_5_a_backup_of_another_installation_checked_against_this_one(self):
        other = type(self.inst)()
        try:
            other.seed(1)
            backup = os.path.join(other.dir, "keys.backup")
            self.assertExit(other.run("backup", "-o", backup, "--passphrase-file", self.pass_file, *FAST_KDF), "ok")
            before = digests(self.inst.dir)
            r = self.inst.run("backup", "--check", backup, "--passphrase-file", self.pass_file)
            self.assertExit(r, "wrong_key")  # what restore says of the same backup
            self.assertIn("check: FAILED", r.stdout)
            self.assertEqual(before, digests(self.inst.dir))
        finally:
            other.close()

    @unittest.skipIf(SANITIZER_REPORTS, "AddressSanitizer reserves terabytes of address space: no ulimit -v applies")
    def test_2_kdf_memory_the_host_cannot_give_is_a_clear_error(self):
        backup = os.path.join(self.inst.dir, "keys.backup")
        before = digests(self.inst.dir)
        # scrypt at work factor 22 needs 4 GiB: under a 1 GiB address-space limit.
        r = subprocess.run(["/bin/sh", "-c", 'ulimit -v 1048576 && exec "$@"', "sh", BIN, "--config",
                            self.inst.config_path, "backup", "-o", backup, "--passphrase-file", self.pass_file,
                            "--scrypt-work-factor", "22"],
                           capture_output=True, text=True, env=dict(os.environ, HOME=self.inst.dir))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not enough memory", r.stderr)
        self.assertIn("--scrypt-work-factor", r.stderr)
        self.assertEqual(before, digests(self.inst.dir))

    def test_7_refused_to_overwrite_a_backup(self):
        backup = os.path.join(self.inst.dir, "keys.backup")
        self.assertExit(self.inst.run("backup", "-o", backup, "--passphrase-file", self.pass_file, *FAST_KDF), "ok")
        digest = sha256_of(backup)
        self.assertExit(self.inst.run("backup", "-o", backup, "--passphrase-file", self.pass_file, *FAST_KDF),
                        "refused")
        self.assertEqual(digest, sha256_of(backup))

    def test_8_an_interrupted_rotation(self):
        r = self.inst.run("rotate-root", env={"INFRA_KEYS_FAILPOINT": "rotate-after-write-new-key"})
        self.assertEqual(r.returncode, -9, r.stderr)
        r = self.inst.run("verify")
        self.assertExit(r, "interrupted")
        self.assertIn("rotate-root --resume", r.stderr)


class ProgressTest(E2E):
    """The bar needs a terminal that redraws a line; stderr is given a real pseudo-terminal here."""

    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=3)

    def stderr_on_a_terminal(self, *args, term="xterm"):
        master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_SERVER_", "INFRA_KEYS_CONFIG"))}
        env.update(HOME=self.inst.dir, TERM=term)
        p = subprocess.Popen([BIN, "--config", self.inst.config_path, *args], stdout=subprocess.PIPE,
                             stderr=slave, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        p.wait(timeout=60)
        p.stdout.close()
        os.close(master)
        self.assertEqual(p.returncode, 0)
        return b"".join(chunks)

    def test_a_terminal_gets_a_bar_drawn_with_carriage_returns_and_no_escape_sequences(self):
        err = self.stderr_on_a_terminal("verify", "--level", "full")
        self.assertIn(b"\r", err)
        self.assertIn(b"verify [", err)
        self.assertNotIn(b"\x1b", err)  # no colour, no ESC[K: NO_COLOR has nothing to turn off

    def test_term_dumb_gets_no_bar(self):
        self.assertNotIn(b"verify [", self.stderr_on_a_terminal("verify", "--level", "full", term="dumb"))

    def test_no_progress_turns_the_bar_off(self):
        self.assertNotIn(b"verify [", self.stderr_on_a_terminal("--no-progress", "verify", "--level", "full"))
        self.assertNotIn(b"verify [", self.stderr_on_a_terminal("verify", "--level", "full", "--no-progress"))


if __name__ == "__main__":
    unittest.main()
