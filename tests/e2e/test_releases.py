"""Every Infra release family: the census finds every sealed value, and every key change carries
all of them over, checked by the independent reader (infra.py) as the server would read them.

Runs on SQLite (the families that had it, up to v0.15.1) and, under e2e-postgres, on PostgreSQL
(every family)."""
import itertools
import json
import os
import select
import shutil
import unittest

import infra
import releases
import remote
from harness import BACKEND, E2E, read_file

PASSPHRASE = "correct horse battery staple"
FAMILIES = list(releases.FAMILIES) if BACKEND == "postgres" else releases.SQLITE_FAMILIES


class ReleaseFamilies(E2E):
    def fixture(self, family):
        self.inst.close()
        self.inst = type(self.inst)()
        return releases.Fixture(self.inst, family).build()

    def for_each_family(self, check, families=FAMILIES):
        for family in families:
            with self.subTest(family=family):
                check(self.fixture(family))

    def verify_json(self):
        r = self.inst.run("verify", "--level", "full", "--json")
        return r, json.loads(r.stdout)

    def rewrap_from_key(self):
        old = os.path.join(self.inst.dir, "old.key")
        shutil.copy(self.inst.key_path, old)
        with open(self.inst.key_path, "wb") as f:
            f.write(releases.helm_root_key())
        return self.inst.run("rewrap", "--from-key", old)

    def rewrap_from_config(self):
        old_key = os.path.join(self.inst.dir, "previous.key")
        os.rename(self.inst.key_path, old_key)
        old_config = os.path.join(self.inst.dir, "old.yaml")
        with open(self.inst.config_path) as f:
            text = f.read()
        with open(old_config, "w") as f:
            f.write(text.replace(self.inst.key_path, old_key))
        return self.inst.run("rewrap", "--from-config", old_config)

    def backup_then_restore_a_lost_key(self):
        pass_file = os.path.join(self.inst.dir, "passphrase")
        with open(pass_file, "w") as f:
            f.write(PASSPHRASE + "\n")
        backup = os.path.join(self.inst.dir, "keys.backup")
        self.assertExit(self.inst.run("backup", "--output", backup, "--passphrase-file", pass_file,
                                      "--scrypt-work-factor", "10"), "ok")
        key = read_file(self.inst.key_path)
        os.remove(self.inst.key_path)
        r = self.inst.run("restore", backup, "--passphrase-file", pass_file)
        self.assertEqual(read_file(self.inst.key_path), key)
        return r

    # --- the census, and every key change carrying every sealed value over ---------------------
    def test_every_family_counts_every_sealed_value_and_every_key_change_carries_all_of_them(self):
        def check(fx):
            r, report = self.verify_json()
            self.assertExit(r, "ok")
            self.assertEqual(report["release"], fx.family)
            self.assertEqual(report["values"], len(fx.sealed))
            self.assertEqual(report["failures"], [])
            sealed = {(t, c) for t, c, _ in releases.sealed_columns(fx.version)}
            self.assertEqual({(c["table"], c["column"]) for c in report["columns"] if c["sealed_by_release"]}, sealed)

            r = self.inst.run("status")
            self.assertExit(r, "ok")
            self.assertIn(f"Infra {fx.family}", r.stdout)
            census = []
            for table, column in sorted(sealed):
                count = sum(1 for (t, c, _r) in fx.sealed if (t, c) == (table, column))
                if count:
                    self.assertRegex(r.stdout, rf"{table}\.{column}\s+key id {fx.kid.hex()} \(db key\)\s+{count} values")
                    census.append({"table": table, "column": column, "key_id": fx.kid.hex(), "db_key": True,
                                   "values": count, "sealed_by_release": True})
            r = self.inst.run("status", "--json")
            self.assertExit(r, "ok")
            status = json.loads(r.stdout)
            self.assertEqual(status["release"], fx.family)
            self.assertEqual(sorted(status["census"], key=lambda e: (e["table"], e["column"])), census)

            old_key = read_file(self.inst.key_path)
            r = self.inst.run("rotate-root")
            self.assertExit(r, "ok")
            self.assertIn(f"{len(fx.sealed)} encrypted values re-keyed", r.stdout)
            self.assertNotEqual(read_file(self.inst.key_path), old_key)
            fx.check_all_open(self)
            for name, step in (("rewrap --from-key", self.rewrap_from_key),
                               ("rewrap --from-config", self.rewrap_from_config),
                               ("restore", self.backup_then_restore_a_lost_key)):
                r = step()
                self.assertExit(r, "ok")
                with self.subTest(step=name):
                    fx.check_all_open(self)
            self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.for_each_family(check)

    def test_every_family_before_v0_21_moves_from_the_native_key_to_a_remote_provider(self):
        # awskms and vault in turn, so that both backends' families see both providers.
        providers = itertools.cycle(remote.kms_and_vault(self))

        def check(fx):
            provider = next(providers)
            r = remote.migrate(self.inst, provider)
            self.assertExit(r, "ok")
            self.assertIn("re-wrapped", r.stdout)
            row = self.inst.db_key_row()
            self.assertEqual((row["algorithm"], row["root_key_id"]), (provider.algorithm, provider.key))
            # The row as the provider's own client opens it, and every value under its new key id.
            fx.check_all_open(self, unwrap=provider.unwrap)
            r = self.inst.run("verify", "--level", "full", "--json", env=provider.env)
            self.assertExit(r, "ok")
            self.assertEqual(json.loads(r.stdout)["values"], len(fx.sealed))
        self.for_each_family(check, [f for f in FAMILIES if f in releases.REMOTE_PROVIDER_FAMILIES])

    # --- values the release does not explain ---------------------------------------------------
    def test_sealed_values_in_an_unknown_table_are_named_re_keyed_or_block_the_change(self):
        def check(fx):
            fx.add_unknown_value(1)
            r, report = self.verify_json()
            self.assertExit(r, "problems")
            self.assertEqual([(f["table"], f["column"], f["row"], f["reason"]) for f in report["failures"]],
                             [("vendor_extension", "secret", "1", "unlisted")])

            fx.add_unknown_value(2, key=os.urandom(32), key_id=b"\x01\x02\x03\x04")
            _, report = self.verify_json()
            self.assertIn(("vendor_extension", "secret", "2", "other_key_id"),
                          [(f["table"], f["column"], f["row"], f["reason"]) for f in report["failures"]])
            # Refused before the commit: what it staged undone, keys and database as they were.
            before = fx.snapshot()
            r = self.inst.run("rotate-root")
            self.assertExit(r, "problems")
            self.assertIn("vendor_extension.secret row 2", r.stderr)
            self.assertIn("other_key_id", r.stderr)
            self.assertEqual(before, fx.snapshot())
            for name in os.listdir(self.inst.dir):
                if ".retired" in name or name.endswith(".new"):
                    os.remove(os.path.join(self.inst.dir, name))
            # The same for a rewrap after the key was replaced by hand.
            before = fx.snapshot(files=False)
            r = self.rewrap_from_key()
            self.assertExit(r, "problems")
            self.assertIn("vendor_extension.secret row 2", r.stderr)
            self.assertIn("other_key_id", r.stderr)
            self.assertEqual(before, fx.snapshot(files=False))

            self.inst.execute("DELETE FROM vendor_extension WHERE id = 2")
            self.assertExit(self.inst.run("rewrap", "--from-key", os.path.join(self.inst.dir, "old.key")), "ok")
            fx.check_all_open(self)
            self.assertExit(self.inst.run("rotate-root"), "ok")
            fx.check_all_open(self)
        self.for_each_family(check)

    def test_sealed_values_in_columns_of_any_declared_type_are_found_and_re_keyed(self):
        """SQLite keeps text and blobs in a `json` or `datetime` column as stored; PostgreSQL keeps a
        payload in a domain over text (or over bytea) as in text. The census reads them all."""
        fx = self.fixture(FAMILIES[-1])
        if fx.postgres:
            fx.execute_script("CREATE DOMAIN vendor_secret AS text CHECK (VALUE <> ''); "
                              "CREATE DOMAIN vendor_bytes AS bytea; "
                              'CREATE TABLE "vendor_typed" ("id" bigint PRIMARY KEY, "secret" vendor_secret, '
                              '"blob_secret" vendor_bytes, "doc" json)')
        else:
            fx.execute_script('CREATE TABLE "vendor_typed" ("id" integer PRIMARY KEY, "secret" json, '
                              '"blob_secret" datetime, "doc" json)')
        plain = {"secret": b"sealed by a fork in a typed column", "blob_secret": b"sealed as bytes"}
        stored = {c: infra.seal(fx.db_key, p, fx.kid, fx.root_key_id) for c, p in plain.items()}
        self.inst.execute('INSERT INTO vendor_typed (id, secret, blob_secret, doc) VALUES (?, ?, ?, ?)',
                          (1, stored["secret"], fx.blob(stored["blob_secret"].encode()), '{"plain": true}'))
        for column, p in plain.items():
            fx.sealed[("vendor_typed", column, "1")] = p

        r, report = self.verify_json()
        self.assertExit(r, "problems")
        self.assertEqual([(f["table"], f["column"], f["row"], f["reason"]) for f in report["failures"]],
                         [("vendor_typed", "secret", "1", "unlisted"), ("vendor_typed", "blob_secret", "1", "unlisted")])
        self.assertEqual(report["values"], len(fx.sealed))
        r = self.inst.run("rotate-root")
        self.assertExit(r, "ok")
        self.assertIn(f"{len(fx.sealed)} encrypted values re-keyed", r.stdout)
        fx.check_all_open(self)
        self.assertNotEqual(self.inst.query('SELECT secret FROM vendor_typed')[0][0], stored["secret"])
        if not fx.postgres:  # each value keeps its storage class
            self.assertEqual(self.inst.query("SELECT typeof(secret), typeof(blob_secret) FROM vendor_typed"),
                             [("text", "blob")])

    def test_a_listed_column_missing_from_the_schema_is_named(self):
        fx = self.fixture(FAMILIES[-1])
        table, column, _ = releases.sealed_columns(fx.version)[0]  # providers.client_secret
        self.inst.execute(f'ALTER TABLE "{table}" RENAME COLUMN "{column}" TO "{column}_old"')
        r, report = self.verify_json()
        self.assertExit(r, "problems")
        self.assertIn((table, column, "", "missing_column"),
                      [(f["table"], f["column"], f["row"], f["reason"]) for f in report["failures"]])

    def test_plaintext_in_a_sealed_column_is_named(self):
        fx = self.fixture(FAMILIES[-1])
        self.inst.execute("UPDATE providers SET client_secret = 'hunter2' WHERE id = 1")
        r, report = self.verify_json()
        self.assertExit(r, "problems")
        self.assertEqual([(f["table"], f["column"], f["row"], f["reason"]) for f in report["failures"]],
                         [("providers", "client_secret", "1", "unsealed")])
        self.assertIn("providers.client_secret row 1: unsealed", self.inst.run("verify", "--level", "full").stdout)
        del fx


@unittest.skipUnless(BACKEND == "postgres", "releases from v0.15.2 run on PostgreSQL only")
class PostgresOnlyReleases(E2E):
    def fixture(self, family):
        return releases.Fixture(self.inst, family).build()

    def test_pk_less_destination_credentials_are_rewritten_and_their_trigger_fires(self):
        fx = self.fixture("v0.20.0")
        listener = self.inst.db.connect()
        listener.autocommit = True
        listener.cursor().execute("LISTEN destination_credentials_1")
        try:
            r = self.inst.run("rotate-root", "--server-stopped")
            self.assertExit(r, "ok")
            sealed = sorted(row for (t, _c, row) in fx.sealed if t == "destination_credentials")
            notified = []
            while len(notified) < len(sealed) and select.select([listener], [], [], 5) != ([], [], []):
                listener.poll()
                notified += [n.payload for n in listener.notifies]
                listener.notifies.clear()
            self.assertEqual(sorted(notified), sealed)
        finally:
            listener.close()
        fx.check_all_open(self)

    def test_v0_21_refuses_a_root_key_provider_it_cannot_start_with(self):
        fx = self.fixture("v0.21.0")
        native = os.path.join(self.inst.dir, "native.yaml")
        shutil.copy(self.inst.config_path, native)
        # Unreachable: the refusal comes before any provider is asked.
        configs = {
            "vault": "dbEncryptionKeyProvider: vault\nkeys:\n  - kind: vault\n    config:\n"
                     "      address: https://127.0.0.1:1\n      token: plaintext:t\n",
            "awskms": "dbEncryptionKeyProvider: awskms\ndbEncryptionKey: alias/infra\nkeys:\n  - kind: awskms\n"
                      "    config:\n      endpoint: https://127.0.0.1:1\n      region: us-east-1\n"
                      "      accessKeyID: plaintext:AKID\n      secretAccessKey: plaintext:s\n",
        }
        for kind, config in configs.items():
            self.inst.write_config(config)
            before = fx.snapshot()
            for args in (["rotate-root"], ["rewrap", "--from-key", self.inst.key_path], ["rewrap", "--from-config", native],
                         ["rotate-data-key"]):
                with self.subTest(provider=kind, args=args):
                    r = self.inst.run(*args, env=remote.BASE_ENV)
                    self.assertExit(r, "refused")
                    self.assertIn("v0.21.0", r.stderr)
                    self.assertIn(f"native root key in a file; the configured {kind} provider", r.stderr)
                    self.assertEqual(before, fx.snapshot())

    def literal_password_config(self):
        """A role whose password looks like a secret reference to a storage that does not exist."""
        password = "vault21:" + os.urandom(8).hex()
        role = "r" + os.urandom(6).hex()
        self.inst.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        self.inst.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        with open(self.inst.config_path) as f:
            lines = [line for line in f.read().splitlines() if not line.startswith("dbUsername")]
        with open(self.inst.config_path, "w") as f:
            f.write("\n".join(lines + [f"dbUsername: {role}", f"dbPassword: {password}"]) + "\n")
        return {"PGPASSWORD": ""}

    def test_v0_21_reads_db_password_as_the_password_itself(self):
        fx = self.fixture("v0.21.0")
        env = self.literal_password_config()
        r = self.inst.run("verify", "--level", "full", env=env)
        self.assertExit(r, "ok")
        self.assertIn("only Infra v0.21", r.stderr)
        self.assertExit(self.inst.run("rotate-root", env=env), "ok")
        fx.check_all_open(self)

    def test_before_v0_21_db_password_must_resolve_as_a_secret_reference(self):
        fx = self.fixture("v0.20.0")
        env = self.literal_password_config()
        before = fx.snapshot()
        r = self.inst.run("rotate-root", env=env)
        self.assertExit(r, "usage")
        self.assertIn("vault21", r.stderr)
        self.assertEqual(before, fx.snapshot())

    def test_db_connection_string_is_honoured(self):
        fx = self.fixture("v0.18.1 – v0.18.x")
        with open(self.inst.config_path, "w") as f:
            f.write(f"dbConnectionString: {self.inst.db.conninfo}\ndbEncryptionKey: {self.inst.key_path}\n")
        r = self.inst.run("verify", "--level", "full", "--json")
        self.assertExit(r, "ok")
        self.assertEqual(json.loads(r.stdout)["values"], len(fx.sealed))
        self.assertExit(self.inst.run("rotate-root"), "ok")
        fx.check_all_open(self)

    def test_the_schema_of_the_search_path_is_the_servers_and_a_same_named_table_elsewhere_is_left_alone(self):
        """The server's tables in schema infra, found through the connection's search_path (set in
        dbConnectionString, or on the database); public.providers holds values sealed by the same db
        key (and so may public.vendor_extension), but the server never reads them: the census does not
        count them and no key change writes them."""
        for how, search_path in (("dbConnectionString", "infra"), ("ALTER DATABASE", "infra"),
                                 ("dbConnectionString", "infra,public")):
            with self.subTest(how=how, search_path=search_path):
                self.inst.close()
                self.inst = type(self.inst)()
                self.inst.execute("CREATE SCHEMA infra")
                options = f" options='-c search_path={search_path}'"
                self.inst.db.conninfo += options  # the test's own connections see what the server sees
                fx = self.fixture("v0.20.0")
                self.assertEqual(self.inst.query("SELECT relnamespace::regnamespace::text FROM pg_class "
                                                 "WHERE oid = 'providers'::regclass"), [("infra",)])
                # Shadowed by infra.providers, or (public not in the path) out of the server's sight.
                elsewhere = ["providers"] + (["vendor_extension"] if "public" not in search_path else [])
                for table in elsewhere:
                    self.inst.execute(f'CREATE TABLE public.{table} ("id" bigint PRIMARY KEY, "client_secret" text)')
                    for row in (1, 2):
                        self.inst.execute(f"INSERT INTO public.{table} VALUES (?, ?)",
                                          (row, infra.seal(fx.db_key, b"not the server's", fx.kid, fx.root_key_id)))
                public = {table: self.inst.query(f"SELECT * FROM public.{table} ORDER BY id") for table in elsewhere}
                if how == "ALTER DATABASE":
                    self.inst.execute(f"ALTER DATABASE {self.inst.db.name} SET search_path = {search_path}")
                else:
                    with open(self.inst.config_path, "w") as f:
                        f.write(f'dbConnectionString: "{self.inst.db.conninfo}"\ndbEncryptionKey: {self.inst.key_path}\n')
                r = self.inst.run("verify", "--level", "full", "--json")
                self.assertExit(r, "ok")
                report = json.loads(r.stdout)
                self.assertEqual((report["release"], report["values"], report["failures"]), (fx.family, len(fx.sealed), []))
                r = self.inst.run("rotate-root")
                self.assertExit(r, "ok")
                self.assertIn(f"{len(fx.sealed)} encrypted values re-keyed", r.stdout)
                fx.check_all_open(self)
                self.assertEqual({table: self.inst.query(f"SELECT * FROM public.{table} ORDER BY id") for table in elsewhere},
                                 public)


@unittest.skipUnless(BACKEND == "sqlite", "a SQLite file")
class SqliteWithoutSqliteRelease(E2E):
    def test_a_release_without_sqlite_is_named_when_the_config_points_at_sqlite(self):
        fx = releases.Fixture(self.inst, "v0.16.0 – v0.16.1").build()
        before = fx.snapshot()
        r = self.inst.run("verify", "--level", "full")
        self.assertExit(r, "problems")
        self.assertIn("PostgreSQL only", r.stdout)
        r = self.inst.run("rotate-root")
        self.assertExit(r, "refused")
        self.assertIn("PostgreSQL only", r.stderr)
        self.assertEqual(before, fx.snapshot())


if __name__ == "__main__":
    unittest.main()
