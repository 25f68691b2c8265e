"""Hardening against an observer of the process or the machine: no core dump, no key or token
left behind in memory, no key directory others can list, no silent clear-text provider."""
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

from harness import BIN, E2E, EXIT, wait_until_stopped
from remote import Vault
from test_remote import RemoteE2E
import peerlib

# Long and unlike anything else in the process, so that every copy of it in a dump is found.
TOKEN = "hvs.CAESIKeepThisTokenOutOfEveryCoreDump0123456789"


def core_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    raise AssertionError("no core limit in /proc/PID/limits")


class VaultTokenFromFile(Vault):
    """The token from a file: an environment variable would sit in the process's own environment."""

    def __init__(self, peer, token_file):
        super().__init__(peer)
        self.token_file, self.env = token_file, {"INFRA_KEYS_HTTP_RETRY_BASE_MS": "5"}
        with open(token_file, "w") as f:
            f.write(peer.token)

    def config(self, token=None):
        return super().config(token=token or f"file:{self.token_file}")


class StoppedVaultRotation(RemoteE2E):
    """`rotate-root` on Vault stopped just before its commit: the token has been sent, the db key
    unwrapped by Vault (answered in base64) and used to verify the re-keyed values."""

    def make_provider(self):
        self.vault = self.start(peerlib.vault(token=TOKEN))
        return VaultTokenFromFile(self.vault, os.path.join(self.inst.dir, "vault-token"))

    def setUp(self):
        super().setUp()
        self.seed(3)
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        super().tearDown()

    def stop_before_commit(self, argv_prefix=()):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_SERVER_", "INFRA_KEYS_CONFIG"))}
        env.update(HOME=self.inst.dir, INFRA_KEYS_FAILPOINT="rotate-before-commit:stop", **self.p.env)
        self.proc = subprocess.Popen([*argv_prefix, BIN, "--config", self.inst.config_path, "rotate-root"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until_stopped(self.proc)
        return self.proc.pid

    def test_the_process_has_no_core_limit_and_is_not_dumpable(self):
        if os.geteuid() == 0:
            # /proc/PID of a non-dumpable process belongs to root: seen only if we run as someone else.
            shutil.chown(self.inst.dir, "nobody", "nogroup")
            for name in os.listdir(self.inst.dir):
                shutil.chown(os.path.join(self.inst.dir, name), "nobody", "nogroup")
            pid = self.stop_before_commit(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        else:
            pid = self.stop_before_commit()
        self.assertEqual(core_limit(pid), ["0", "0"])
        with open(f"/proc/{pid}/status") as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
        self.assertNotEqual(uid, "0")
        # The kernel gives the files of a non-dumpable process to root (not the directory itself).
        self.assertEqual(os.stat(f"/proc/{pid}/status").st_uid, 0, "the process is dumpable")

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("gcore"), "gcore of a non-dumpable process needs root")
    # Under ASan the image would include terabytes of shadow mappings (scripts/sanitize).
    @unittest.skipIf(os.environ.get("INFRA_KEYS_SANITIZER_REPORTS"), "no memory image of a sanitizer build")
    def test_a_memory_image_holds_no_base64_db_key_and_the_token_once(self):
        pid = self.stop_before_commit()
        core = os.path.join(self.inst.dir, "core")
        r = subprocess.run(["gcore", "-o", core, str(pid)], capture_output=True, text=True, timeout=120)
        core = f"{core}.{pid}"
        self.assertTrue(os.path.exists(core), r.stdout + r.stderr)
        with open(core, "rb") as f:
            image = f.read()
        os.unlink(core)
        self.proc.send_signal(signal.SIGCONT)
        self.assertEqual(self.proc.wait(timeout=60), EXIT["ok"], self.proc.stderr.read())
        db_key = self.p.unwrap(self.inst.db_key_row()["encrypted"])
        self.assertEqual(image.count(base64.b64encode(db_key)), 0, "the db key's base64 form is in memory")
        # The provider holds the token it still needs, once; no copy of a request may linger.
        self.assertLessEqual(image.count(TOKEN.encode()), 1, "copies of the Vault token are in memory")


class KeyDirectories(E2E):
    def test_init_makes_every_missing_directory_of_the_key_file_0700(self):
        self.inst.key_path = os.path.join(self.inst.dir, "keys", "infra", "root.key")
        self.inst.write_config()
        old = os.umask(0o022)
        try:
            self.assertExit(self.inst.run("init"), "ok")
        finally:
            os.umask(old)
        for sub in ("keys", os.path.join("keys", "infra")):
            self.assertEqual(os.stat(os.path.join(self.inst.dir, sub)).st_mode & 0o7777, 0o700, sub)
        self.assertEqual(os.stat(self.inst.key_path).st_mode & 0o7777, 0o600)


class WriteLockHeldByAnotherProgram(E2E):
    """Another program holds SQLite's write lock: a key change refuses at once (7), with or
    without --server-stopped, and writes nothing."""

    def setUp(self):
        super().setUp()
        if self.inst.db.__class__.__name__ != "SqliteDb":
            self.skipTest("SQLite locking")
        self.inst.seed(values_per_column=3)

    def hold(self, begin, write):
        statement = ("update encryption_keys set name=name where name='dbkey'" if write
                     else "select count(*) from encryption_keys")
        holder = subprocess.Popen([sys.executable, "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], "
                                   "isolation_level=None); c.execute(sys.argv[2]); c.execute(sys.argv[3]).fetchall(); "
                                   "print('ready', flush=True); time.sleep(60)", self.inst.db.path, begin, statement],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (holder.kill(), holder.wait()))
        self.assertEqual(holder.stdout.readline().strip(), "ready")
        return holder

    def assertRefusedAtOnce(self, *args):
        start = time.monotonic()
        r = self.inst.run(*args)
        elapsed = time.monotonic() - start
        self.assertExit(r, "refused")
        # Far below the 10 s the busy wait used to take, with room for a loaded machine.
        self.assertLess(elapsed, 8, f"took {elapsed:.1f} s to refuse")
        return r

    def test_a_held_lock_is_refused_at_once_with_and_without_server_stopped(self):
        # IMMEDIATE: the write lock (the begin is refused); EXCLUSIVE: readers are kept out too.
        for begin in ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"):
            with self.subTest(begin=begin):
                before = self.inst.snapshot()  # read first: an exclusive lock keeps readers out
                holder = self.hold(begin, write=True)
                self.assertRefusedAtOnce("rotate-root")
                r = self.assertRefusedAtOnce("rotate-root", "--server-stopped")
                self.assertRegex(r.stderr, "another (writer|program) holds (the )?database")
                holder.kill()
                holder.wait()
                self.assertEqual(before, self.inst.snapshot())
        self.assertExit(self.inst.run("rotate-root"), "ok")

    def test_a_reader_blocking_the_commit_is_a_refusal_that_undoes_the_staged_key(self):
        before = self.inst.snapshot()
        holder = self.hold("BEGIN", write=False)
        r = self.assertRefusedAtOnce("rotate-root", "--server-stopped")
        self.assertIn("committing: another program holds the database locked", r.stderr)
        holder.kill()
        holder.wait()
        # The key change pipeline removed what it staged: nothing is left to resume.
        self.assertEqual(before, self.inst.snapshot())
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")


class DatabaseCommitBeforeKeyRename(E2E):
    """With the database and the key file in different directories, the commit is durable
    (the database directory fsynced after the journal's unlink) before the key file moves."""

    def test_the_database_directory_is_synced_after_commit_and_before_the_key_rename(self):
        if self.inst.db.__class__.__name__ != "SqliteDb" or not shutil.which("strace"):
            self.skipTest("needs SQLite and strace")
        key_dir = os.path.join(self.inst.dir, "keys")
        os.mkdir(key_dir, 0o700)
        self.inst.key_path = os.path.join(key_dir, "root.key")
        self.inst.write_config()
        self.inst.seed(values_per_column=3)
        trace = os.path.join(self.inst.dir, "strace.log")
        r = subprocess.run(["strace", "-f", "-y", "-o", trace, "-e",
                            "trace=unlink,unlinkat,fsync,fdatasync,rename,renameat,renameat2",
                            BIN, "--config", self.inst.config_path, "rotate-root"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(trace) as f:
            calls = f.read().splitlines()
        db_dir = os.path.dirname(self.inst.db.path)
        install = next(i for i, c in enumerate(calls) if re.search(r"rename\w*\(.*root\.key\.new\", .*root\.key\"", c))
        commit = max(i for i, c in enumerate(calls[:install]) if "sqlite3.db-journal" in c and "unlink" in c)
        synced = [c for c in calls[commit:install] if re.search(r"f(?:data)?sync\(\d+<" + re.escape(db_dir) + r">\)", c)]
        self.assertTrue(synced, "no fsync of the database directory between the commit and the key rename:\n"
                        + "\n".join(calls[commit:install + 1]))


class ClearTextProviderAddress(E2E):
    def local_non_loopback_address(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            address = None
        finally:
            s.close()
        if not address or address.startswith("127."):
            self.skipTest("no non-loopback address on this machine")
        return address

    def vault_config(self, address):
        self.inst.write_config("dbEncryptionKeyProvider: vault\ndbEncryptionKey: infra-root\nkeys:\n  - kind: vault\n"
                               f"    config:\n      address: {address}\n      token: plaintext:hvs.never-sent-anywhere-real\n")

    def test_a_plain_http_address_off_this_machine_is_warned_about_once(self):
        # Port 9 on one of our own addresses: refused at once, retried, and warned about once.
        self.vault_config(f"http://{self.local_non_loopback_address()}:9")
        r = self.inst.run("verify", env={"INFRA_KEYS_HTTP_RETRY_BASE_MS": "5"})
        self.assertExit(r, "provider")
        warnings = [line for line in r.stderr.splitlines() if "plain http" in line]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertTrue(warnings[0].startswith("infra-keys: warning: vault http://"), warnings[0])
        self.assertNotIn("never-sent", r.stderr)

    def test_https_and_loopback_addresses_are_not_warned_about(self):
        for address in ("https://127.0.0.1:9", "http://127.0.0.1:9", "http://localhost:9"):
            with self.subTest(address=address):
                self.vault_config(address)
                r = self.inst.run("verify", env={"INFRA_KEYS_HTTP_RETRY_BASE_MS": "5"})
                self.assertExit(r, "provider")
                self.assertNotIn("plain http", r.stderr)


if __name__ == "__main__":
    unittest.main()
