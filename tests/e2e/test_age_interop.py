"""Backups are age files: Debian's `age` opens what infra-keys writes and infra-keys opens what `age`
writes, for a passphrase, X25519 and ssh-ed25519 keys; bad files and wrong keys change nothing."""
import json
import os
import pty
import shutil
import subprocess
import unittest

from harness import E2E, read_file

PASSPHRASE = "correct horse battery staple"
FAST = ["--scrypt-work-factor", "10"]


def run_with_tty(argv, passphrase):
    """Runs `argv` on a pseudo-terminal, answering every passphrase prompt (age reads it only from a tty)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    output, answered = b"", 0
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        while output.lower().count(b"passphrase") > answered:
            os.write(fd, passphrase.encode() + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


@unittest.skipUnless(shutil.which("age") and shutil.which("ssh-keygen"), "needs Debian's age and openssh-client")
class AgeInteropTest(E2E):
    def setUp(self):
        super().setUp()
        self.inst.seed(values_per_column=3)
        self.backup_path = os.path.join(self.inst.dir, "keys.backup")
        self.pass_file = os.path.join(self.inst.dir, "passphrase")
        with open(self.pass_file, "w") as f:
            f.write(PASSPHRASE + "\n")
        self.x25519_identity = os.path.join(self.inst.dir, "age.key")
        subprocess.run(["age-keygen", "-o", self.x25519_identity], check=True, capture_output=True)
        self.x25519_recipient = subprocess.run(["age-keygen", "-y", self.x25519_identity], check=True,
                                               capture_output=True, text=True).stdout.strip()
        self.ssh_identity = os.path.join(self.inst.dir, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "backup@test", "-f", self.ssh_identity],
                       check=True)
        self.ssh_recipient = read_file(self.ssh_identity + ".pub").decode().strip()

    # --- helpers --------------------------------------------------------------------------------
    def age_decrypt(self, *identity_args, path=None):
        r = subprocess.run(["age", "-d", *identity_args, path or self.backup_path], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def check_document(self, doc):
        """The plaintext is the documented JSON and holds this installation's keys."""
        self.assertEqual(doc["format"], "infra-keys backup")
        self.assertEqual(doc["format_version"], 2)
        self.assertEqual(bytes.fromhex(doc["db_key"]["key"]), self.inst.db_key)
        self.assertEqual(doc["root_keys"][0]["role"], "current")
        self.assertEqual(bytes.fromhex(doc["root_keys"][0]["key"]), self.inst.root_key)
        self.assertEqual(doc["root_keys"][0]["fingerprint"], doc["root_key_fingerprint"])
        self.assertEqual(doc["provider"]["kind"], "native")
        self.assertEqual([row["name"] for row in doc["key_rows"]], ["dbkey"])
        for field in ("created_at", "tool_version"):
            self.assertTrue(doc[field])
        self.assertIn("database", doc["installation"])

    def restore_proves_the_file(self, *secret_args, path=None):
        """From a machine that lost its root key: restore, then every value opens."""
        os.remove(self.inst.key_path)
        r = self.inst.run("restore", path or self.backup_path, *secret_args)
        self.assertExit(r, "ok")
        self.assertEqual(read_file(self.inst.key_path), self.inst.root_key)
        self.assertExit(self.inst.run("verify", "--level", "full"), "ok")
        self.assertEqual(self.inst.decrypt_all(), self.inst.plaintexts)

    def age_encrypt(self, doc, *recipient_args):
        """What `age` writes for the same document, at the backup's path."""
        plain = os.path.join(self.inst.dir, "plain.json")
        with open(plain, "w") as f:
            json.dump(doc, f)
        os.remove(self.backup_path)
        subprocess.run(["age", *recipient_args, "-o", self.backup_path, plain], check=True, capture_output=True)
        os.remove(plain)

    # --- infra-keys writes, age reads; age writes, infra-keys reads ------------------------------
    def test_x25519_both_ways(self):
        r = self.inst.run("backup", "-o", self.backup_path, "--recipient", self.x25519_recipient)
        self.assertExit(r, "ok")
        self.assertIn(f"opens with X25519 {self.x25519_recipient}", r.stdout)
        doc = self.age_decrypt("-i", self.x25519_identity)
        self.check_document(doc)
        self.restore_proves_the_file("--identity", self.x25519_identity)

        self.age_encrypt(doc, "-r", self.x25519_recipient)
        self.restore_proves_the_file("--identity", self.x25519_identity)

    def test_ssh_ed25519_both_ways(self):
        r = self.inst.run("backup", "-o", self.backup_path, "--recipient", self.ssh_recipient)
        self.assertExit(r, "ok")
        doc = self.age_decrypt("-i", self.ssh_identity)
        self.check_document(doc)
        r = self.inst.run("backup", "--info", self.backup_path, config=False)
        self.assertExit(r, "ok")
        self.assertIn("ssh-ed25519 key with tag", r.stdout)
        self.restore_proves_the_file("--identity", self.ssh_identity)

        self.age_encrypt(doc, "-R", self.ssh_identity + ".pub")
        self.restore_proves_the_file("--identity", self.ssh_identity)

    def test_passphrase_both_ways(self):
        r = self.inst.run("backup", "-o", self.backup_path, "--passphrase-file", self.pass_file, *FAST)
        self.assertExit(r, "ok")
        out = os.path.join(self.inst.dir, "out.json")
        code, transcript = run_with_tty(["age", "-d", "-o", out, self.backup_path], PASSPHRASE)
        self.assertEqual(code, 0, transcript)
        doc = json.loads(read_file(out))
        os.remove(out)
        self.check_document(doc)
        self.restore_proves_the_file("--passphrase-file", self.pass_file)

        plain = os.path.join(self.inst.dir, "plain.json")
        with open(plain, "w") as f:
            json.dump(doc, f)
        os.remove(self.backup_path)
        code, transcript = run_with_tty(["age", "-p", "-o", self.backup_path, plain], PASSPHRASE)
        self.assertEqual(code, 0, transcript)
        self.restore_proves_the_file("--passphrase-file", self.pass_file)

    def test_armored_files_from_age_open(self):
        self.assertExit(self.inst.run("backup", "-o", self.backup_path, "-r", self.x25519_recipient), "ok")
        doc = self.age_decrypt("-i", self.x25519_identity)
        self.age_encrypt(doc, "--armor", "-r", self.x25519_recipient)
        self.assertTrue(read_file(self.backup_path).startswith(b"-----BEGIN AGE ENCRYPTED FILE-----"))
        self.restore_proves_the_file("--identity", self.x25519_identity)

    def test_a_recipients_file_lets_any_one_key_restore(self):
        recipients = os.path.join(self.inst.dir, "recipients.txt")
        with open(recipients, "w") as f:
            f.write(f"# the backup operators\n{self.x25519_recipient}\n\n{self.ssh_recipient}\n")
        self.assertExit(self.inst.run("backup", "-o", self.backup_path, "--recipients-file", recipients), "ok")
        r = self.inst.run("backup", "--info", self.backup_path, config=False)
        self.assertEqual(r.stdout.count("recipient   "), 2, r.stdout)
        for identity in (self.x25519_identity, self.ssh_identity):
            self.age_decrypt("-i", identity)
            self.assertExit(self.inst.run("backup", "--check", self.backup_path, "--identity", identity), "ok")
        self.restore_proves_the_file("--identity", self.ssh_identity)

    def test_retained_keys_are_in_the_backup_until_retired(self):
        self.assertExit(self.inst.run("rotate-root"), "ok")
        self.assertExit(self.inst.run("backup", "-o", self.backup_path, "-r", self.x25519_recipient), "ok")
        doc = self.age_decrypt("-i", self.x25519_identity)
        self.assertEqual([k["role"] for k in doc["root_keys"]], ["current", "retained"])
        self.assertEqual(bytes.fromhex(doc["root_keys"][1]["key"]), self.inst.root_key)
        self.assertEqual(bytes.fromhex(doc["db_key"]["key"]), self.inst.db_key)

    # --- refusals: exit 6 and every byte as before ----------------------------------------------
    def assertRefusedUnchanged(self, path, *secret_args, words=None):
        before = self.inst.snapshot()
        r = self.inst.run("restore", path, *secret_args)
        self.assertExit(r, "backup")
        self.assertLessEqual(len(r.stderr.strip().splitlines()), 2, r.stderr)  # the message and maybe a hint
        if words:
            self.assertIn(words, r.stderr)
        self.assertEqual(before, self.inst.snapshot())

    def test_wrong_identity_wrong_passphrase_tampered_and_truncated_files_change_nothing(self):
        self.assertExit(self.inst.run("backup", "-o", self.backup_path, "-r", self.x25519_recipient), "ok")
        os.remove(self.inst.key_path)
        self.assertRefusedUnchanged(self.backup_path, "--identity", self.ssh_identity, words="no given identity")
        self.assertRefusedUnchanged(self.backup_path, "--passphrase-file", self.pass_file)
        good = read_file(self.backup_path)
        bad = os.path.join(self.inst.dir, "bad.backup")
        for name, content in (("tampered header", good.replace(b"X25519", b"X25518", 1)),
                              ("tampered payload", good[:-5] + bytes([good[-5] ^ 1]) + good[-4:]),
                              ("truncated", good[:-20]), ("extended", good + b"\0")):
            with self.subTest(name):
                with open(bad, "wb") as f:
                    f.write(content)
                self.assertRefusedUnchanged(bad, "--identity", self.x25519_identity)


    def test_a_wrong_passphrase_changes_nothing(self):
        self.assertExit(self.inst.run("backup", "-o", self.backup_path, "--passphrase-file", self.pass_file, *FAST), "ok")
        os.remove(self.inst.key_path)
        with open(self.pass_file, "w") as f:
            f.write("not the passphrase at all\n")
        self.assertRefusedUnchanged(self.backup_path, "--passphrase-file", self.pass_file, words="wrong passphrase")

    def test_a_newer_document_version_is_refused(self):
        self.assertExit(self.inst.run("backup", "-o", self.backup_path, "-r", self.x25519_recipient), "ok")
        doc = self.age_decrypt("-i", self.x25519_identity)
        doc["format_version"] = 3
        self.age_encrypt(doc, "-r", self.x25519_recipient)
        os.remove(self.inst.key_path)
        self.assertRefusedUnchanged(self.backup_path, "--identity", self.x25519_identity, words="newer")


if __name__ == "__main__":
    unittest.main()
