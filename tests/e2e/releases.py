"""Databases shaped like each Infra release family, v0.13.0 – v0.21.0, built by the test oracle.

Written by this project from the facts in docs/infra-releases.md and the README's "Supported Infra
releases" table (tables, column types, which columns each release seals, empty-string rules, the
primary-key-less destination_credentials and its UPDATE trigger, the `migrations` ids that tell
releases apart), not from the Infra server's sources. Each family gets its schema, its migrations
rows, a dbkey row and values sealed by infra.py; `Fixture.check_all_open` then proves, the way
the server would read them, that every sealed value opens under the wrapping now in the database.
"""
import os
import random
import string

import infra


def read_file(path):
    with open(path, "rb") as f:
        return f.read()

# The migration ids each release added (a database holds its own and every earlier release's).
MIGRATIONS = [
    ((0, 13, 0), ["202203231621", "202204071613", "202204111503", "202204291613"]),
    ((0, 13, 2), ["202206081027"]),
    ((0, 13, 4), ["202206151027", "202206161733"]),
    ((0, 13, 6), ["202206281027", "202207041724"]),
    ((0, 14, 0), ["202207081217"]),
    ((0, 14, 2), ["202207270000"]),
    ((0, 14, 3), ["2022-06-08T10:27-fixed", "2022-07-28T12:46"]),
    ((0, 15, 0), ["2022-07-21T18:28", "2022-07-27T15:54", "2022-08-04T17:72", "2022-08-10T13:35",
                  "2022-08-11T11:52", "2022-08-12T11:05", "2022-08-30T11:45"]),
    ((0, 15, 2), ["2022-09-01T15:00"]),
    ((0, 16, 0), ["2022-09-22T11:00", "2022-09-22T13:00:00", "2022-09-28T13:00", "2022-10-04T11:44",
                  "2022-10-05T11:12", "2022-10-05T18:00:00", "2022-10-06T14:58", "2022-10-17T12:40",
                  "2022-10-17T18:00"]),
    ((0, 17, 0), ["2022-11-01T16:39", "2022-11-02T15:30", "2022-11-03T13:00", "2022-11-07T14:00"]),
    ((0, 17, 1), ["2022-11-10T17:30"]),
    ((0, 18, 0), ["2022-11-15T10:00"]),
    ((0, 18, 1), ["2022-11-21T11:00"]),
    ((0, 19, 0), ["2022-10-26T18:00", "2022-11-17T14:00", "2022-11-22T14:00"]),
    ((0, 20, 0), ["2022-11-25T14:46", "2022-12-01T11:36", "2022-12-03T13:14", "2022-12-13T13:13"]),
    ((0, 21, 0), ["2023-01-05T17:33", "2023-01-12T17:00", "2023-01-17T11:36", "2023-01-18T10:26"]),
]

# Family name (as infra-keys reports it) -> the release whose database the fixture imitates.
FAMILIES = {
    "v0.13.0 – v0.13.1": (0, 13, 0),
    "v0.14.0 – v0.14.1": (0, 14, 0),
    "v0.16.0 – v0.16.1": (0, 16, 0),
    "v0.17.0": (0, 17, 0),
    "v0.18.1 – v0.18.x": (0, 18, 1),
    "v0.20.0": (0, 20, 0),
    "v0.21.0": (0, 21, 0),
}
SQLITE_FAMILIES = [name for name, v in FAMILIES.items() if v < (0, 15, 2)]
# v0.21.0 starts only with a native root key in a file; the releases before it also take awskms and vault.
REMOTE_PROVIDER_FAMILIES = [name for name, v in FAMILIES.items() if v < (0, 21, 0)]

TYPES = {"sqlite": {"int": "integer", "text": "text", "blob": "blob", "ts": "datetime", "id": "varchar(255)"},
         "postgres": {"int": "bigint", "text": "text", "blob": "bytea", "ts": "timestamptz", "id": "varchar(255)"}}


def sealed_columns(v):
    """(table, column, blob) the release seals with the db key."""
    cols = [("providers", "client_secret", False), ("provider_users", "access_token", False),
            ("provider_users", "refresh_token", False)]
    if v <= (0, 13, 3):
        cols += [("root_certificates", "private_key", False), ("root_certificates", "signed_cert", False)]
    if v <= (0, 20, 0):
        cols.append(("settings", "private_jwk", True))
    if v >= (0, 14, 0):
        cols.append(("providers", "private_key", False))
    if (0, 17, 0) <= v <= (0, 19, 0):
        cols.append(("device_flow_auth_requests", "access_key_token", False))
    if v >= (0, 20, 0):
        cols.append(("destination_credentials", "bearer_token", False))
    if v >= (0, 21, 0):
        cols.append(("organizations", "private_jwk", True))
    return cols


def tables(v):
    """name -> (columns [(name, type)], primary key columns); the row name column first."""
    t = {}
    t["migrations"] = ([("id", "id")], ["id"])
    t["encryption_keys"] = ([("id", "int"), ("created_at", "ts"), ("updated_at", "ts"), ("deleted_at", "ts"),
                             ("key_id", "int"), ("name", "text"), ("encrypted", "blob"), ("algorithm", "text"),
                             ("root_key_id", "text")], ["id"])
    org = [("organization_id", "int")] if v >= (0, 15, 0) else []
    t["providers"] = ([("id", "int"), ("created_at", "ts"), ("name", "text"), ("url", "text"), ("client_id", "text"),
                       ("client_secret", "text"), ("kind", "text")]
                      + ([("private_key", "text")] if v >= (0, 14, 0) else []) + org, ["id"])
    t["provider_users"] = ([("identity_id", "int"), ("provider_id", "int"), ("email", "text"), ("groups", "text"),
                            ("access_token", "text"), ("refresh_token", "text"), ("expires_at", "ts")],
                           ["identity_id", "provider_id"])
    if v <= (0, 13, 3):
        t["root_certificates"] = ([("id", "int"), ("key_algorithm", "text"), ("public_key", "text"),
                                   ("private_key", "text"), ("signed_cert", "text"), ("expires_at", "ts")], ["id"])
    if v <= (0, 20, 0):
        t["settings"] = ([("id", "int"), ("private_jwk", "blob"), ("public_jwk", "blob")] + org, ["id"])
    if v >= (0, 15, 0):
        t["organizations"] = ([("id", "int"), ("name", "text"), ("domain", "text")]
                              + ([("private_jwk", "blob"), ("public_jwk", "blob")] if v >= (0, 21, 0) else []), ["id"])
    if (0, 16, 0) <= v <= (0, 19, 0):
        t["device_flow_auth_requests"] = ([("id", "int"), ("user_code", "text"), ("device_code", "text"),
                                           ("access_key_token", "text"), ("expires_at", "ts")], ["id"])
    if v >= (0, 20, 0):
        # No primary key at v0.20.0 and v0.21.0; rows are told apart here by user_id.
        t["destination_credentials"] = ([("user_id", "int"), ("organization_id", "int"), ("destination_id", "int"),
                                         ("request_expires_at", "ts"), ("bearer_token", "text"),
                                         ("update_index", "int")], [])
    return t


def ddl(v, backend):
    types = TYPES[backend]
    out = []
    for name, (cols, pk) in tables(v).items():
        body = ", ".join(f'"{c}" {types[t]}' for c, t in cols)
        if pk:
            body += ", PRIMARY KEY (" + ", ".join(pk) + ")"
        out.append(f'CREATE TABLE "{name}" ({body});')
    if v >= (0, 20, 0) and backend == "postgres":
        # Like the server's: every UPDATE of a credential notifies the destinations waiting for it.
        out.append("""CREATE FUNCTION destination_credentials_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('destination_credentials_' || NEW.organization_id, NEW.user_id::text);
  RETURN NEW;
END $$;""")
        out.append("CREATE TRIGGER destination_credentials_notify AFTER UPDATE ON destination_credentials "
                   "FOR EACH ROW EXECUTE FUNCTION destination_credentials_notify();")
    return "\n".join(out)


def helm_root_key():
    """What the Helm chart's randAlphaNum 32 gives: 32 printable characters used as the key bytes."""
    rng = random.SystemRandom()
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32)).encode()


class Fixture:
    """One release family's database in an harness.Installation, and what the oracle sealed in it."""

    ROWS = 3

    def __init__(self, inst, family):
        self.inst = inst
        self.family = family
        self.version = FAMILIES[family]
        self.sealed = {}     # (table, column, row) -> plaintext the value must open to
        self.plaintext = {}  # (table, column, row) -> the stored text that must stay as it is
        self.unknown = []    # (table, column) holding sealed values of no release

    # --- building ------------------------------------------------------------------------------
    def build(self, root_key=None):
        inst, v = self.inst, self.version
        root_key = root_key or (helm_root_key() if v >= (0, 21, 0) else os.urandom(32))
        inst.root_key = root_key
        fd = os.open(inst.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, root_key)
        os.close(fd)
        self.db_key = os.urandom(32)
        inst.db_key = self.db_key
        self.execute_script(ddl(v, "postgres" if self.postgres else "sqlite"))
        # One connection for all the rows, closed before any test runs the binary: an open handle
        # looks like a running server.
        self.connection = inst.db.connect()
        try:
            for i in [i for rv, added in MIGRATIONS if rv <= v for i in added]:
                self.insert("migrations", {"id": i})
            wrapped = infra.seal(root_key, self.db_key, infra.EMPTY_KEY_ID, "").encode()
            self.insert("encryption_keys", {
                "id": random.randint(1, 2**62), "created_at": "2022-06-09 14:03:11.123456789+00:00",
                "updated_at": "2022-06-09 14:03:11.123456789+00:00", "key_id": random.randint(1, 2**31 - 1),
                "name": "dbkey", "encrypted": self.blob(wrapped), "algorithm": "aesgcm", "root_key_id": inst.key_path})
            self.kid = infra.key_id_of(wrapped)
            self.root_key_id = inst.key_path
            for i in range(1, self.ROWS + 1):
                self.add_rows(i)
            self.connection.commit()
        finally:
            self.connection.close()
            self.connection = None
        return self

    def execute_script(self, sql):
        c = self.inst.db.connect()
        try:
            if hasattr(c, "executescript"):
                c.executescript(sql)
            else:
                c.cursor().execute(sql)
                c.commit()
        finally:
            c.close()

    def blob(self, data):
        import sqlite3
        return bytes(data) if self.postgres else sqlite3.Binary(data)

    @property
    def postgres(self):
        return self.inst.db.__class__.__name__ == "PostgresDb"

    def seal(self, table, column, row, plain):
        """The stored form of `plain` in a sealed column, as this release writes it."""
        if plain == b"" and self.version >= (0, 18, 1):
            self.plaintext[(table, column, row)] = ""
            return ""
        self.sealed[(table, column, row)] = plain
        return infra.seal(self.db_key, plain, self.kid, self.root_key_id)

    def add_rows(self, i):
        v = self.version
        r = str(i)
        # Row 2 of each table holds empty secrets: sealed before v0.18.1, '' from then on.
        def secret(label):
            return b"" if i == 2 else f"{label}-{i}-{os.urandom(6).hex()}".encode()
        cols = {"id": i, "name": f"p{i}", "kind": "oidc",
                "client_secret": self.seal("providers", "client_secret", r, secret("client-secret"))}
        if v >= (0, 14, 0):
            cols["private_key"] = self.seal("providers", "private_key", r, secret("-----BEGIN PRIVATE KEY-----"))
        if v >= (0, 15, 0):
            cols["organization_id"] = 1
        self.insert("providers", cols)
        self.insert("provider_users", {
            "identity_id": i, "provider_id": 1, "email": f"u{i}@example.com",
            "access_token": self.seal("provider_users", "access_token", r, secret("access")),
            "refresh_token": self.seal("provider_users", "refresh_token", r, secret("refresh"))})
        if v <= (0, 13, 3):
            self.insert("root_certificates", {
                "id": i, "key_algorithm": "ed25519",
                "private_key": self.seal("root_certificates", "private_key", r, secret("root-private")),
                "signed_cert": self.seal("root_certificates", "signed_cert", r, secret("root-cert"))})
        if v <= (0, 20, 0):
            jwk = self.seal("settings", "private_jwk", r, f'{{"kty":"OKP","d":"{os.urandom(16).hex()}"}}'.encode())
            self.insert("settings", {"id": i, "private_jwk": self.blob(jwk.encode()),
                                     "public_jwk": self.blob(b'{"kty":"OKP"}'),
                                     **({"organization_id": 1} if v >= (0, 15, 0) else {})})
        if v >= (0, 15, 0):
            org = {"id": i, "name": f"org{i}", "domain": f"org{i}.example.com"}
            if v >= (0, 21, 0):
                jwk = self.seal("organizations", "private_jwk", r, f'{{"kty":"OKP","d":"{os.urandom(16).hex()}"}}'.encode())
                org.update(private_jwk=self.blob(jwk.encode()), public_jwk=self.blob(b'{"kty":"OKP"}'))
            self.insert("organizations", org)
        if (0, 16, 0) <= v <= (0, 19, 0):
            if v >= (0, 17, 0):
                token = self.seal("device_flow_auth_requests", "access_key_token", r, secret("ak"))
            else:  # v0.16.x stores the access key in plaintext
                token = f"ak{i}.{os.urandom(12).hex()}"
                self.plaintext[("device_flow_auth_requests", "access_key_token", r)] = token
            self.insert("device_flow_auth_requests", {"id": i, "user_code": f"UC{i}", "device_code": f"dc{i}",
                                                      "access_key_token": token})
        if v >= (0, 20, 0):
            self.insert("destination_credentials", {
                "user_id": i, "organization_id": 1, "destination_id": 7,
                "bearer_token": self.seal("destination_credentials", "bearer_token", r, secret("bearer")),
                "update_index": i})

    def insert(self, table, cols):
        names = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join(self.inst.db.param for _ in cols)
        self.connection.cursor().execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(cols.values()))

    def add_unknown_value(self, row, key=None, key_id=None):
        """A value in a table no release has, sealed (by default) under the db key."""
        if not self.unknown:
            self.execute_script('CREATE TABLE "vendor_extension" ("id" integer PRIMARY KEY, "note" text, "secret" text);')
            self.unknown.append(("vendor_extension", "secret"))
        plain = f"sealed by a fork of the server {row}".encode()
        value = infra.seal(key or self.db_key, plain, key_id or self.kid, self.root_key_id)
        self.inst.execute('INSERT INTO vendor_extension (id, note, secret) VALUES (?, ?, ?)', (row, "not sealed", value))
        if key is None:
            self.sealed[("vendor_extension", "secret", str(row))] = plain
        return value

    # --- reading back, as the server would ------------------------------------------------------
    ROW_NAME = {"provider_users": "identity_id", "destination_credentials": "user_id"}

    def stored(self, table, column):
        name = self.ROW_NAME.get(table, "id")
        out = {}
        for row, value in self.inst.query(f'SELECT "{name}", "{column}" FROM "{table}"'):
            if value is not None:
                out[str(row)] = value if isinstance(value, str) else bytes(value).decode()
        return out

    def current_db_key(self, root_key=None, unwrap=None):
        """The db key the dbkey row wraps, and its key id. unwrap(encrypted): how a remote provider's
        own client opens the row, instead of the root key file."""
        row = self.inst.db_key_row()
        if unwrap:
            return unwrap(row["encrypted"]), infra.key_id_of(row["encrypted"])
        root_key = root_key or read_file(self.inst.key_path)
        return infra.unseal(root_key, row["encrypted"].decode(), infra.EMPTY_KEY_ID), infra.key_id_of(row["encrypted"])

    def check_all_open(self, test, root_key=None, unwrap=None):
        """Every value sealed at build opens under the wrapping now stored; plaintext is untouched."""
        db_key, kid = self.current_db_key(root_key, unwrap)
        test.assertEqual(db_key, self.db_key)
        columns = {(t, c) for t, c, _ in self.sealed} | {(t, c) for t, c, _ in self.plaintext}
        for table, column in sorted(columns):
            stored = self.stored(table, column)
            for (t, c, row), plain in self.sealed.items():
                if (t, c) == (table, column):
                    test.assertEqual(infra.unseal(db_key, stored[row], kid), plain, (t, c, row))
            for (t, c, row), text in self.plaintext.items():
                if (t, c) == (table, column):
                    test.assertEqual(stored[row], text, (t, c, row))

    def snapshot(self, files=True):
        """Every row of every table, and the key files: what a refused command must leave alone."""
        state = {}
        for table in list(tables(self.version)) + [t for t, _ in self.unknown]:
            rows = self.inst.query(f'SELECT * FROM "{table}"')
            state[table] = sorted(repr(r) for r in rows)
        if files:
            state["files"] = {n: read_file(os.path.join(self.inst.dir, n)) for n in sorted(os.listdir(self.inst.dir))
                              if os.path.isfile(os.path.join(self.inst.dir, n)) and not n.startswith("sqlite3.db")}
        return state
