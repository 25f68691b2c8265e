#!/usr/bin/python3
"""vault_peer.py checked with hvac (Debian package python3-hvac)."""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import base64
import json
import os
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

try:
    import hvac
    import hvac.exceptions
except ImportError:
    hvac = None


def b64(data):
    return base64.b64encode(data).decode()


def raw(peer, method, path, body=None, headers=None):
    req = urllib.request.Request(peer.url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


class VaultPeerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if hvac is None:
            raise AssertionError("missing hvac for /usr/bin/python3: apt-get install python3-hvac")
        cls.peer = peerlib.vault(token="test-token")
        cls.client = hvac.Client(url=cls.peer.url, token="test-token")
        cls.transit = cls.client.secrets.transit

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()

    def setUp(self):
        self.peer.reset()

    def test_health_answers_without_a_token(self):
        health = hvac.Client(url=self.peer.url).sys.read_health_status(method="GET")
        self.assertEqual((health["initialized"], health["sealed"]), (True, False))

    def test_create_key_then_read_key_describes_an_aes256_gcm96_key(self):
        self.transit.create_key(name="created")
        data = self.transit.read_key(name="created")["data"]
        self.assertEqual(data["name"], "created")
        self.assertEqual(data["type"], "aes256-gcm96")
        self.assertEqual((data["latest_version"], data["min_decryption_version"]), (1, 1))
        self.assertEqual(list(data["keys"]), ["1"])
        self.assertFalse(data["exportable"])

    def test_encrypt_then_decrypt_round_trips_with_a_vault_v1_ciphertext(self):
        self.transit.create_key(name="rt")
        out = self.transit.encrypt_data(name="rt", plaintext=b64(b"\x00root key\xff"))["data"]
        self.assertTrue(out["ciphertext"].startswith("vault:v1:"))
        self.assertEqual(out["key_version"], 1)
        back = self.transit.decrypt_data(name="rt", ciphertext=out["ciphertext"])["data"]
        self.assertEqual(base64.b64decode(back["plaintext"]), b"\x00root key\xff")

    def test_encrypt_to_a_missing_key_creates_it(self):
        out = self.transit.encrypt_data(name="auto-made", plaintext=b64(b"x"))["data"]
        self.assertTrue(out["ciphertext"].startswith("vault:v1:"))
        self.assertEqual(self.transit.read_key(name="auto-made")["data"]["type"], "aes256-gcm96")

    def test_rotate_then_rewrap_moves_a_ciphertext_to_the_latest_version(self):
        self.transit.create_key(name="rot")
        v1 = self.transit.encrypt_data(name="rot", plaintext=b64(b"payload"))["data"]["ciphertext"]
        self.transit.rotate_key(name="rot")
        self.assertEqual(self.transit.read_key(name="rot")["data"]["latest_version"], 2)
        self.assertTrue(self.transit.encrypt_data(name="rot", plaintext=b64(b"y"))["data"]["ciphertext"]
                        .startswith("vault:v2:"))
        v2 = self.transit.rewrap_data(name="rot", ciphertext=v1)["data"]["ciphertext"]
        self.assertTrue(v2.startswith("vault:v2:"))
        for ciphertext in (v1, v2):
            self.assertEqual(base64.b64decode(self.transit.decrypt_data(name="rot", ciphertext=ciphertext)
                                              ["data"]["plaintext"]), b"payload")

    def test_min_decryption_version_makes_older_ciphertexts_undecryptable(self):
        self.transit.create_key(name="minver")
        v1 = self.transit.encrypt_data(name="minver", plaintext=b64(b"old"))["data"]["ciphertext"]
        self.transit.rotate_key(name="minver")
        self.transit.update_key_configuration(name="minver", min_decryption_version=2)
        with self.assertRaisesRegex(hvac.exceptions.InvalidRequest, "too old"):
            self.transit.decrypt_data(name="minver", ciphertext=v1)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit.update_key_configuration(name="minver", min_decryption_version=5)

    def test_a_wrong_or_missing_token_is_forbidden(self):
        for token in ("wrong", None):
            client = hvac.Client(url=self.peer.url, token=token)
            with self.assertRaises(hvac.exceptions.Forbidden):
                client.secrets.transit.encrypt_data(name="k", plaintext=b64(b"x"))
        status, body = raw(self.peer, "POST", "/v1/transit/encrypt/k", {"plaintext": "eA=="})
        self.assertEqual((status, body), (403, {"errors": ["permission denied"]}))

    def test_a_tampered_or_malformed_ciphertext_is_refused(self):
        ciphertext = self.transit.encrypt_data(name="tamper", plaintext=b64(b"x"))["data"]["ciphertext"]
        blob = bytearray(base64.b64decode(ciphertext.split(":")[2]))
        blob[-1] ^= 1
        for bad in ("vault:v1:" + b64(bytes(blob)), "nonsense", "vault:v9:" + b64(bytes(blob))):
            with self.assertRaises(hvac.exceptions.InvalidRequest):
                self.transit.decrypt_data(name="tamper", ciphertext=bad)

    def test_a_ciphertext_of_one_key_does_not_decrypt_under_another(self):
        ciphertext = self.transit.encrypt_data(name="one", plaintext=b64(b"x"))["data"]["ciphertext"]
        self.transit.create_key(name="two")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit.decrypt_data(name="two", ciphertext=ciphertext)

    def test_read_of_a_missing_key_is_404(self):
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.transit.read_key(name="never-made")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit.decrypt_data(name="never-made", ciphertext="vault:v1:AAAA")

    def test_stats_count_each_operation(self):
        ciphertext = self.transit.encrypt_data(name="counted", plaintext=b64(b"x"))["data"]["ciphertext"]
        self.transit.decrypt_data(name="counted", ciphertext=ciphertext)
        self.transit.decrypt_data(name="counted", ciphertext=ciphertext)
        self.assertEqual(self.peer.ops(), {"encrypt": 1, "decrypt": 2})

    def test_injected_outage_then_recovery(self):
        self.peer.fail(status=503, times=1, op="encrypt")
        with self.assertRaises(hvac.exceptions.VaultDown):
            self.transit.encrypt_data(name="outage", plaintext=b64(b"x"))
        self.transit.encrypt_data(name="outage", plaintext=b64(b"x"))
        self.peer.fail(status=429, times=1)
        status, body = raw(self.peer, "POST", "/v1/transit/encrypt/outage", {"plaintext": "eA=="},
                           {"X-Vault-Token": "test-token"})
        self.assertEqual(status, 429)
        self.assertIn("rate limit", body["errors"][0])
        self.assertEqual(self.peer.stats()["injected_failures"], 2)

    def test_a_deleted_key_cannot_decrypt(self):
        ciphertext = self.transit.encrypt_data(name="gone", plaintext=b64(b"x"))["data"]["ciphertext"]
        self.peer.delete_key("gone")
        with self.assertRaisesRegex(hvac.exceptions.InvalidRequest, "not found"):
            self.transit.decrypt_data(name="gone", ciphertext=ciphertext)


class VaultPeerOptionsTest(unittest.TestCase):
    def test_a_namespaced_peer_needs_the_namespace_header_or_path_prefix(self):
        with peerlib.vault(token="t", namespace="team/infra", transit_mount="/kms-transit/") as peer:
            namespaced = hvac.Client(url=peer.url, token="t", namespace="team/infra")
            out = namespaced.secrets.transit.encrypt_data(name="k", plaintext=b64(b"x"), mount_point="kms-transit")
            with self.assertRaises(hvac.exceptions.InvalidPath):
                hvac.Client(url=peer.url, token="t").secrets.transit.encrypt_data(
                    name="k", plaintext=b64(b"x"), mount_point="kms-transit")
            status, body = raw(peer, "POST", "/v1/infra/kms-transit/decrypt/k",
                               {"ciphertext": out["data"]["ciphertext"]},
                               {"X-Vault-Token": "t", "X-Vault-Namespace": "team"})
            self.assertEqual((status, body["data"]["plaintext"]), (200, "eA=="))

    def test_without_autocreate_encrypt_to_a_missing_key_fails(self):
        with peerlib.vault(token="t", autocreate=False, keys=["present"]) as peer:
            transit = hvac.Client(url=peer.url, token="t").secrets.transit
            transit.encrypt_data(name="present", plaintext=b64(b"x"))
            with self.assertRaises(hvac.exceptions.InvalidRequest):
                transit.encrypt_data(name="absent", plaintext=b64(b"x"))

    def test_over_https_hvac_verifies_the_peer_with_its_ca(self):
        with peerlib.vault(token="t", tls=True) as peer:
            self.assertTrue(peer.url.startswith("https://"))
            transit = hvac.Client(url=peer.url, token="t", verify=peer.ca_path).secrets.transit
            ciphertext = transit.encrypt_data(name="tls", plaintext=b64(b"x"))["data"]["ciphertext"]
            self.assertEqual(transit.decrypt_data(name="tls", ciphertext=ciphertext)["data"]["plaintext"], b64(b"x"))
            self.assertEqual(peer.ops(), {"encrypt": 1, "decrypt": 1})

    def test_keys_survive_a_restart_with_a_state_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            with peerlib.vault(token="t", state=os.path.join(tmp, "state.json")) as peer:
                transit = hvac.Client(url=peer.url, token="t").secrets.transit
                ciphertext = transit.encrypt_data(name="kept", plaintext=b64(b"x"))["data"]["ciphertext"]
                peer.restart()
                self.assertEqual(transit.decrypt_data(name="kept", ciphertext=ciphertext)["data"]["plaintext"],
                                 b64(b"x"))
                self.assertEqual(peer.stop(), 0)


class VaultLoginTest(unittest.TestCase):
    """auth/kubernetes/login and auth/approle/login checked with hvac; the token they hand out
    is good for transit."""

    @classmethod
    def setUpClass(cls):
        if hvac is None:
            raise AssertionError("missing hvac for /usr/bin/python3: apt-get install python3-hvac")
        cls.peer = peerlib.vault(token="root-token", kubernetes_roles={"infra-keys": "sa-jwt"},
                                 approles={"role-1": "secret-1"})

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()

    def assertTokenWorks(self, token):
        client = hvac.Client(url=self.peer.url, token=token)
        out = client.secrets.transit.encrypt_data(name="login-key", plaintext=b64(b"x"))
        self.assertTrue(out["data"]["ciphertext"].startswith("vault:v1:"))

    def test_kubernetes_login_answers_a_client_token_for_the_service_account(self):
        client = hvac.Client(url=self.peer.url)
        answer = client.auth.kubernetes.login(role="infra-keys", jwt="sa-jwt")
        token = answer["auth"]["client_token"]
        self.assertTrue(token.startswith("hvs."))
        self.assertEqual(answer["auth"]["metadata"]["role"], "infra-keys")
        self.assertTokenWorks(token)

    def test_kubernetes_login_refuses_another_jwt_or_role(self):
        client = hvac.Client(url=self.peer.url)
        with self.assertRaises(hvac.exceptions.Forbidden):
            client.auth.kubernetes.login(role="infra-keys", jwt="forged")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            client.auth.kubernetes.login(role="nobody", jwt="sa-jwt")

    def test_approle_login_answers_a_client_token(self):
        client = hvac.Client(url=self.peer.url)
        answer = client.auth.approle.login(role_id="role-1", secret_id="secret-1")
        self.assertTokenWorks(answer["auth"]["client_token"])
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            client.auth.approle.login(role_id="role-1", secret_id="wrong")


if __name__ == "__main__":
    unittest.main(verbosity=2, warnings="ignore")
