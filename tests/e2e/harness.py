"""Builds throwaway Infra installations and runs the built infra-keys binary against them.

Backend: SQLite by default; PostgreSQL when INFRA_KEYS_TEST_DB=postgres (tests/pg/with-postgres
exports INFRA_KEYS_TEST_PG). The same test files run on both.
"""
import os
import re
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest
import uuid

import infra

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("INFRA_KEYS_BIN", os.path.join(ROOT, "build", "infra-keys"))
VECTORS = os.environ.get("INFRA_KEYS_VECTORS", os.path.join(ROOT, "tests", "vectors"))
BACKEND = os.environ.get("INFRA_KEYS_TEST_DB", "sqlite")

TEXT_COLUMNS = [("providers", "client_secret"), ("provider_users", "access_token"),
                ("provider_users", "refresh_token"), ("root_certificates", "private_key"),
                ("root_certificates", "signed_cert"), ("destination_credentials", "bearer_token")]
BLOB_COLUMNS = [("settings", "private_jwk")]
EXIT = {"ok": 0, "problems": 1, "usage": 2, "provider": 3, "database": 4, "wrong_key": 5, "backup": 6,
        "refused": 7, "interrupted": 8}

infra.self_check(VECTORS)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def wait_until_stopped(proc, timeout=60):
    """Waits for a child stopped by a `:stop` failpoint (state T in /proc/PID/stat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before its failpoint: {proc.stderr.read()}")
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.05)
    raise AssertionError("never reached its failpoint")



class SqliteDb:
    param = "?"

    def __init__(self, directory):
        self.path = os.path.join(directory, "sqlite3.db")

    def config_lines(self):
        return [f"dbFile: {self.path}"]

    def connect(self):
        return sqlite3.connect(self.path)

    def create_schema(self):
        with open(os.path.join(ROOT, "tests", "fixtures", "infra-schema.sqlite.sql")) as f:
            c = self.connect()  # closed at once: an open handle looks like a running server
            c.executescript(f.read())
            c.close()

    def row_name(self, table):
        return "identity_id || ',' || provider_id" if table == "provider_users" else "id"

    def drop(self):
        pass


class PostgresDb:
    param = "%s"

    def __init__(self, directory):
        import psycopg2
        self.psycopg2 = psycopg2
        self.admin = os.environ["INFRA_KEYS_TEST_PG"]
        self.name = "t_" + uuid.uuid4().hex[:12]
        self._admin_execute(f"CREATE DATABASE {self.name}")
        self.conninfo = f"{self.admin} dbname={self.name}"

    def _admin_execute(self, sql):
        # Closed at once: psycopg2's `with` ends the transaction but keeps the connection.
        c = self.psycopg2.connect(self.admin)
        try:
            c.autocommit = True
            c.cursor().execute(sql)
        finally:
            c.close()

    def config_lines(self):
        kv = dict(part.split("=", 1) for part in self.admin.split())
        return [f"dbHost: {kv['host']}", f"dbPort: {kv['port']}", f"dbName: {self.name}",
                f"dbUsername: {kv['user']}"]

    def connect(self):
        return self.psycopg2.connect(self.conninfo)

    def create_schema(self):
        with open(os.path.join(ROOT, "tests", "fixtures", "infra-schema.postgres.sql")) as f:
            c = self.connect()
            c.cursor().execute(f.read())
            c.commit()
            c.close()

    def row_name(self, table):
        return "identity_id || ',' || provider_id" if table == "provider_users" else "id"

    def drop(self):
        self._admin_execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: ", "SUMMARY: UndefinedBehaviorSanitizer")
SANITIZER_REPORTS = os.environ.get("INFRA_KEYS_SANITIZER_REPORTS")  # set by scripts/sanitize


def assert_no_sanitizer_report(stderr):
    """A sanitizer build (scripts/sanitize) reports on stderr or in log files: either fails the test."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    if stderr and any(mark in stderr for mark in SANITIZER_MARKS):
        raise AssertionError("sanitizer report from infra-keys:\n" + stderr)
    if SANITIZER_REPORTS and os.path.isdir(SANITIZER_REPORTS):
        files = sorted(os.listdir(SANITIZER_REPORTS))
        if files:
            with open(os.path.join(SANITIZER_REPORTS, files[0]), errors="replace") as f:
                raise AssertionError(f"sanitizer report {files[0]}:\n" + f.read(4000))


class Installation:
    """A temp dir with a config, a native root key file and a database."""

    def __init__(self, backend=BACKEND):
        self.dir = tempfile.mkdtemp(prefix="infra-keys-e2e-")
        self.key_path = os.path.join(self.dir, "root.key")
        self.config_path = os.path.join(self.dir, "infra.yaml")
        self.db = PostgresDb(self.dir) if backend == "postgres" else SqliteDb(self.dir)
        self.plaintexts = {}  # (table, column, row) -> bytes
        self.write_config()

    def close(self):
        self.db.drop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_config(self, extra=""):
        lines = self.db.config_lines()
        # A provider's config names its own root key; an option given twice is warned about.
        if not re.search(r"(?m)^dbEncryptionKey:", extra):
            lines.append(f"dbEncryptionKey: {self.key_path}")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)

    # --- running the binary ---------------------------------------------------------------
    def run(self, *args, env=None, input=None, config=True, timeout=120):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_SERVER_", "INFRA_KEYS_CONFIG"))}
        full_env["HOME"] = self.dir
        full_env.update(env or {})
        argv = [BIN] + (["--config", self.config_path] if config else []) + list(args)
        result = subprocess.run(argv, capture_output=True, text=True, env=full_env, input=input, timeout=timeout)
        assert_no_sanitizer_report(result.stderr)
        return result

    # --- database ---------------------------------------------------------------------------
    def query(self, sql, params=()):
        c = self.db.connect()
        try:
            cur = c.cursor()
            cur.execute(sql.replace("?", self.db.param), params)
            # psycopg2 gives bytea as memoryview, whose repr is an address: compare bytes.
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cur.fetchall()]
        finally:
            c.close()

    def execute(self, sql, params=()):
        c = self.db.connect()
        try:
            c.cursor().execute(sql.replace("?", self.db.param), params)
            c.commit()
        finally:
            c.close()

    def db_key_row(self):
        rows = self.query("SELECT id, encrypted, algorithm, root_key_id FROM encryption_keys "
                          "WHERE name = 'dbkey' AND deleted_at IS NULL")
        if not rows:
            return None
        rid, enc, alg, rkid = rows[0]
        return {"id": rid, "encrypted": bytes(enc) if not isinstance(enc, str) else enc.encode(),
                "algorithm": alg, "root_key_id": rkid}

    def snapshot(self):
        """Everything infra-keys could change: key rows, encrypted values, key files."""
        state = {"rows": self.query("SELECT id, name, encrypted, algorithm, root_key_id, deleted_at "
                                    "FROM encryption_keys ORDER BY id")}
        for table, column in TEXT_COLUMNS + BLOB_COLUMNS:
            if self.has_table(table):
                state[f"{table}.{column}"] = self.query(f"SELECT {column} FROM {table} ORDER BY 1")
        state["files"] = {name: read_file(os.path.join(self.dir, name))
                          for name in sorted(os.listdir(self.dir)) if os.path.isfile(os.path.join(self.dir, name))
                          and not name.startswith("sqlite3.db")}
        return repr(state)

    def has_table(self, table):
        if BACKEND == "postgres":
            return bool(self.query("SELECT 1 FROM information_schema.tables WHERE table_name = ?", (table,)))
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)))

    # --- building a populated installation --------------------------------------------------
    def seed(self, values_per_column=5, empty_every=0, root_key=None, db_key=None, wrap=None):
        """Schema + root key file + dbkey row + sealed values, all written by the oracle.

        wrap(db_key) -> (encrypted, algorithm, root_key_id) wraps the db key some other way
        (a remote provider, a Kubernetes secret) instead of with a root key file."""
        db_key = db_key or os.urandom(32)
        self.db_key = db_key
        if wrap is None:
            root_key = root_key or os.urandom(32)
            self.root_key = root_key
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, root_key)
            os.close(fd)
            wrapped, algorithm, root_key_id = (infra.seal(root_key, db_key, infra.EMPTY_KEY_ID, "").encode(), "aesgcm",
                                               self.key_path)
        else:
            wrapped, algorithm, root_key_id = wrap(db_key)
        self.db.create_schema()
        self.execute("INSERT INTO encryption_keys (id, created_at, updated_at, key_id, name, encrypted, algorithm, "
                     "root_key_id) VALUES (?, ?, ?, ?, 'dbkey', ?, ?, ?)",
                     (random.randint(1, 2**62), "2022-06-09 14:03:11.123456789+00:00",
                      "2022-06-09 14:03:11.123456789+00:00", random.randint(1, 2**31 - 1), wrapped, algorithm,
                      root_key_id))
        self.add_values(values_per_column, empty_every)

    def add_values(self, values_per_column, empty_every=0, start=1):
        row = self.db_key_row()
        kid = infra.key_id_of(row["encrypted"])
        c = self.db.connect()
        cur = c.cursor()
        p = self.db.param
        for i in range(start, start + values_per_column):
            def value(table, column):
                if empty_every and i % empty_every == 0:
                    return ""
                plain = f"{table}.{column}.{i}:{os.urandom(8).hex()}".encode()
                return plain
            secrets = {tc: value(*tc) for tc in TEXT_COLUMNS + BLOB_COLUMNS}
            sealed = {tc: (infra.seal(self.db_key, v, kid, row["root_key_id"]) if v else "")
                      for tc, v in secrets.items()}
            cur.execute(f"INSERT INTO providers (id, name, client_secret) VALUES ({p},{p},{p})",
                        (i, f"p{i}", sealed[("providers", "client_secret")]))
            cur.execute(f"INSERT INTO provider_users (identity_id, provider_id, access_token, refresh_token) "
                        f"VALUES ({p},{p},{p},{p})",
                        (i, 1, sealed[("provider_users", "access_token")], sealed[("provider_users", "refresh_token")]))
            cur.execute(f"INSERT INTO root_certificates (id, private_key, signed_cert) VALUES ({p},{p},{p})",
                        (i, sealed[("root_certificates", "private_key")], sealed[("root_certificates", "signed_cert")]))
            cur.execute(f"INSERT INTO destination_credentials (id, bearer_token) VALUES ({p},{p})",
                        (i, sealed[("destination_credentials", "bearer_token")]))
            jwk = sealed[("settings", "private_jwk")].encode()
            cur.execute(f"INSERT INTO settings (id, private_jwk) VALUES ({p},{p})",
                        (i, jwk if BACKEND == "postgres" else sqlite3.Binary(jwk)))
            for (table, column), plain in secrets.items():
                if plain:
                    name = f"{i},1" if table == "provider_users" else str(i)
                    self.plaintexts[(table, column, name)] = plain
        c.commit()
        c.close()

    def stored_values(self):
        out = {}
        for table, column in TEXT_COLUMNS + BLOB_COLUMNS:
            for name, value in self.query(f"SELECT {self.db.row_name(table)}, {column} FROM {table}"):
                if value is None or len(value) == 0:
                    continue
                out[(table, column, str(name))] = value if isinstance(value, str) else bytes(value).decode()
        return out

    def decrypt_all(self, root_key=None, db_key=None):
        """Opens every value the way the Infra server would; returns {(table, column, row): plaintext}.
        db_key: the db key as a remote provider unwrapped it, instead of unwrapping with a root key."""
        row = self.db_key_row()
        if db_key is None:
            root_key = root_key or read_file(self.key_path)
            db_key = infra.unseal(root_key, row["encrypted"].decode(), infra.EMPTY_KEY_ID)
        kid = infra.key_id_of(row["encrypted"])
        return {k: infra.unseal(db_key, v, kid) for k, v in self.stored_values().items()}

    def column_types(self, table, column):
        if BACKEND == "postgres":
            return set()
        return {t for (t,) in self.query(f"SELECT DISTINCT typeof({column}) FROM {table} WHERE length({column}) > 0")}


class E2E(unittest.TestCase):
    """Gives each test a fresh installation and asserts nothing it did not mean to change."""

    def setUp(self):
        self.inst = Installation()

    def tearDown(self):
        self.inst.close()
        assert_no_sanitizer_report("")  # reports of commands started without Installation.run

    def mount_tmpfs(self, size):
        """A tmpfs of `size` (bytes, or "64k") on a new temp dir, for full-disk tests; unmounted after
        the test. Skips the test where mounting is not allowed (not root)."""
        d = tempfile.mkdtemp(prefix="infra-keys-tmpfs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            os.rmdir(d)
            self.skipTest(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
        self.addCleanup(os.rmdir, d)  # cleanups run last first: unmount, then remove the directory
        self.addCleanup(subprocess.run, ["umount", "-l", d], capture_output=True)
        return d

    def assertExit(self, result, name):
        self.assertEqual(result.returncode, EXIT[name],
                         f"expected exit {name}; got {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
