#!/usr/bin/python3
"""kms_peer.py checked with Debian's awscli (/usr/bin/aws, package awscli) and a hand-made SigV4 signer."""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import base64
import datetime
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

AWS = "/usr/bin/aws"


def sign_and_send(peer, op, body, secret_key=None, amz_date=None, access_key=None, region=None, drop_auth=False):
    """Minimal SigV4 signer, independent of the peer's code, to reach cases awscli cannot produce."""
    payload = json.dumps(body).encode()
    host = "127.0.0.1:%d" % peer.port
    amz_date = amz_date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    region = region or peer.region
    headers = {"content-type": "application/x-amz-json-1.1", "host": host, "x-amz-date": amz_date,
               "x-amz-target": "TrentService." + op}
    signed = ";".join(sorted(headers))
    creq = "\n".join(["POST", "/", "", "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)),
                      signed, hashlib.sha256(payload).hexdigest()])
    scope = "%s/%s/kms/aws4_request" % (amz_date[:8], region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + (secret_key or peer.secret_key)).encode()
    for part in (amz_date[:8], region, "kms", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    send = {k: v for k, v in headers.items() if k != "host"}
    if not drop_auth:
        send["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            access_key or peer.access_key, scope, signed, signature)
    req = urllib.request.Request(peer.url + "/", data=payload, headers=send, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class KmsPeerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        peerlib.require_program(AWS, "awscli")
        cls.peer = peerlib.kms(access_key="AKIDTEST", secret_key="test-secret", keys=["alias/infra", "alias/other"])
        cls.tmp = tempfile.mkdtemp(prefix="kms-peer-test-")

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.peer.reset()

    def aws(self, *args, check=True, secret_key=None, env_extra=None):
        env = self.peer.aws_env(secret_key=secret_key)
        env.update(env_extra or {})
        proc = subprocess.run([AWS, "--endpoint-url", self.peer.url, "--region", self.peer.region,
                               "--output", "json", "kms", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        if check and proc.returncode != 0:
            self.fail("aws kms %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr))
        return proc

    def file_with(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return "fileb://" + path

    def encrypt(self, key_id, plaintext):
        out = json.loads(self.aws("encrypt", "--key-id", key_id, "--plaintext",
                                  self.file_with("pt", plaintext)).stdout)
        return base64.b64decode(out["CiphertextBlob"]), out

    def decrypt(self, blob, *extra, check=True):
        return self.aws("decrypt", "--ciphertext-blob", self.file_with("ct", blob), *extra, check=check)

    def test_create_key_then_describe_key_reports_an_enabled_symmetric_key(self):
        created = json.loads(self.aws("create-key", "--description", "made by test").stdout)["KeyMetadata"]
        described = json.loads(self.aws("describe-key", "--key-id", created["Arn"]).stdout)["KeyMetadata"]
        self.assertEqual(described["KeyId"], created["KeyId"])
        self.assertEqual(described["KeyState"], "Enabled")
        self.assertTrue(described["Enabled"])
        self.assertEqual(described["Description"], "made by test")
        self.assertTrue(described["Arn"].startswith("arn:aws:kms:us-east-1:"))

    def test_encrypt_then_decrypt_returns_the_plaintext_and_the_key_arn(self):
        blob, out = self.encrypt("alias/infra", b"root key bytes")
        self.assertEqual(out["KeyId"], self.peer.keys["alias/infra"])
        decrypted = json.loads(self.decrypt(blob, "--key-id", "alias/infra").stdout)
        self.assertEqual(base64.b64decode(decrypted["Plaintext"]), b"root key bytes")
        self.assertEqual(decrypted["KeyId"], self.peer.keys["alias/infra"])
        self.assertEqual(decrypted["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT")

    def test_decrypt_accepts_key_arn_bare_key_id_or_no_key_id(self):
        blob, _ = self.encrypt("alias/infra", b"x")
        arn = self.peer.keys["alias/infra"]
        for extra in (["--key-id", arn], ["--key-id", arn.split("/")[-1]], []):
            out = json.loads(self.decrypt(blob, *extra).stdout)
            self.assertEqual(base64.b64decode(out["Plaintext"]), b"x")

    def test_generate_data_key_aes_256_gives_32_bytes_that_the_blob_decrypts_to(self):
        out = json.loads(self.aws("generate-data-key", "--key-id", "alias/infra", "--key-spec", "AES_256").stdout)
        plaintext = base64.b64decode(out["Plaintext"])
        self.assertEqual(len(plaintext), 32)
        decrypted = json.loads(self.decrypt(base64.b64decode(out["CiphertextBlob"]),
                                            "--key-id", "alias/infra").stdout)
        self.assertEqual(base64.b64decode(decrypted["Plaintext"]), plaintext)

    def test_generate_data_key_honours_aes_128_and_number_of_bytes(self):
        out = json.loads(self.aws("generate-data-key", "--key-id", "alias/infra", "--key-spec", "AES_128").stdout)
        self.assertEqual(len(base64.b64decode(out["Plaintext"])), 16)
        out = json.loads(self.aws("generate-data-key", "--key-id", "alias/infra", "--number-of-bytes", "7").stdout)
        self.assertEqual(len(base64.b64decode(out["Plaintext"])), 7)

    def test_re_encrypt_moves_the_blob_to_the_destination_key(self):
        blob, _ = self.encrypt("alias/infra", b"move me")
        out = json.loads(self.aws("re-encrypt", "--ciphertext-blob", self.file_with("ct", blob),
                                  "--destination-key-id", "alias/other").stdout)
        self.assertEqual(out["SourceKeyId"], self.peer.keys["alias/infra"])
        self.assertEqual(out["KeyId"], self.peer.keys["alias/other"])
        moved = base64.b64decode(out["CiphertextBlob"])
        self.assertEqual(base64.b64decode(json.loads(self.decrypt(moved, "--key-id", "alias/other").stdout)["Plaintext"]),
                         b"move me")
        wrong = self.decrypt(moved, "--key-id", "alias/infra", check=False)
        self.assertNotEqual(wrong.returncode, 0)
        self.assertIn("IncorrectKeyException", wrong.stderr)

    def test_a_wrong_secret_key_is_refused_with_invalid_signature_exception(self):
        proc = self.aws("describe-key", "--key-id", "alias/infra", check=False, secret_key="not-the-secret")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("InvalidSignatureException", proc.stderr)
        self.assertEqual(self.peer.stats()["statuses"], {"400": 1})

    def test_an_unknown_access_key_is_refused_with_unrecognized_client_exception(self):
        status, body = sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"}, access_key="AKIDNOBODY")
        self.assertEqual((status, body["__type"]), (400, "UnrecognizedClientException"))

    def test_a_request_without_authorization_is_refused(self):
        status, body = sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"}, drop_auth=True)
        self.assertEqual((status, body["__type"]), (400, "MissingAuthenticationTokenException"))

    def test_a_stale_x_amz_date_is_refused_as_expired(self):
        status, body = sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"}, amz_date="20200101T000000Z")
        self.assertEqual((status, body["__type"]), (400, "InvalidSignatureException"))
        self.assertIn("expired", body["message"])

    def test_a_credential_scoped_to_another_region_is_refused(self):
        status, body = sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"}, region="eu-west-1")
        self.assertEqual((status, body["__type"]), (400, "InvalidSignatureException"))

    def test_an_independent_signer_is_accepted(self):
        status, body = sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["KeyMetadata"]["Arn"], self.peer.keys["alias/infra"])

    def test_an_unknown_alias_is_not_found(self):
        proc = self.aws("describe-key", "--key-id", "alias/nope", check=False)
        self.assertIn("NotFoundException", proc.stderr)

    def test_a_disabled_key_refuses_decrypt_until_enabled_again(self):
        key = self.peer.create_key("alias/to-disable")
        blob, _ = self.encrypt(key, b"x")
        self.peer.disable_key("alias/to-disable")
        proc = self.decrypt(blob, check=False)
        self.assertIn("DisabledException", proc.stderr)
        described = json.loads(self.aws("describe-key", "--key-id", key).stdout)["KeyMetadata"]
        self.assertEqual((described["KeyState"], described["Enabled"]), ("Disabled", False))
        self.peer.enable_key(key)
        self.decrypt(blob)

    def test_a_tampered_blob_is_invalid_ciphertext(self):
        blob, _ = self.encrypt("alias/infra", b"x")
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        self.assertIn("InvalidCiphertextException", self.decrypt(tampered, check=False).stderr)
        self.assertIn("InvalidCiphertextException", self.decrypt(b"not a blob", check=False).stderr)

    def test_decrypt_refuses_an_algorithm_outside_the_kms_enum(self):
        blob, _ = self.encrypt("alias/infra", b"x")
        proc = self.decrypt(blob, "--encryption-algorithm", "AES_256", check=False)
        self.assertIn("ValidationException", proc.stderr)
        self.decrypt(blob, "--encryption-algorithm", "SYMMETRIC_DEFAULT")

    def test_encryption_context_must_match_on_decrypt(self):
        status, body = sign_and_send(self.peer, "Encrypt", {"KeyId": "alias/infra", "Plaintext": "eA==",
                                                            "EncryptionContext": {"a": "b"}})
        self.assertEqual(status, 200)
        status, wrong = sign_and_send(self.peer, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
        self.assertEqual(wrong["__type"], "InvalidCiphertextException")
        status, right = sign_and_send(self.peer, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"],
                                                             "EncryptionContext": {"a": "b"}})
        self.assertEqual(right["Plaintext"], "eA==")

    def test_stats_count_each_operation(self):
        blob, _ = self.encrypt("alias/infra", b"x")
        self.decrypt(blob)
        self.decrypt(blob)
        stats = self.peer.stats()
        self.assertEqual(stats["ops"], {"Encrypt": 1, "Decrypt": 2})
        self.assertEqual(stats["total"], 3)
        self.peer.reset()
        self.assertEqual(self.peer.stats()["total"], 0)

    def test_injected_failures_hit_the_next_requests_then_stop(self):
        self.peer.fail(status=503, times=2, op="DescribeKey")
        for _ in range(2):
            proc = self.aws("describe-key", "--key-id", "alias/infra", check=False)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("DependencyTimeoutException", proc.stderr)
        self.aws("describe-key", "--key-id", "alias/infra")
        stats = self.peer.stats()
        self.assertEqual(stats["injected_failures"], 2)
        self.assertEqual(stats["ops"]["DescribeKey"], 3)

    def test_throttling_can_be_injected(self):
        self.peer.fail(status=429, times=1)
        status, body = sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"})
        self.assertEqual((status, body["__type"]), (429, "ThrottlingException"))
        self.assertEqual(sign_and_send(self.peer, "DescribeKey", {"KeyId": "alias/infra"})[0], 200)

    def test_over_https_awscli_verifies_the_peer_with_its_ca(self):
        with peerlib.kms(tls=True) as peer:
            self.assertTrue(peer.url.startswith("https://127.0.0.1:"))
            base = [AWS, "--endpoint-url", peer.url, "--region", peer.region, "--output", "json", "kms",
                    "describe-key", "--key-id", "alias/infra"]
            proc = subprocess.run(base + ["--ca-bundle", peer.ca_path], env=peer.aws_env(),
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(json.loads(proc.stdout)["KeyMetadata"]["Arn"], peer.keys["alias/infra"])
            proc = subprocess.run(base, env=peer.aws_env(), capture_output=True, text=True, timeout=60)
            self.assertNotEqual(proc.returncode, 0)   # the system trust store does not know the peer's CA

    def test_keys_survive_a_restart_with_a_state_file(self):
        state = os.path.join(self.tmp, "kms-state.json")
        with peerlib.kms(state=state) as peer:
            status, body = sign_and_send(peer, "Encrypt", {"KeyId": "alias/infra", "Plaintext": "eA=="})
            self.assertEqual(status, 200)
            arn = peer.keys["alias/infra"]
            peer.restart()
            self.assertEqual(peer.keys["alias/infra"], arn)
            status, out = sign_and_send(peer, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
            self.assertEqual((status, out["Plaintext"]), (200, "eA=="))
            self.assertEqual(peer.stop(), 0)   # SIGTERM is a clean exit


class CredentialSourcesTest(unittest.TestCase):
    """STS AssumeRoleWithWebIdentity (IRSA) and the container credentials endpoint (EKS Pod
    Identity), checked with awscli, and KMS calls signed with the temporary credentials."""

    ROLE = "arn:aws:iam::111122223333:role/infra-keys"

    @classmethod
    def setUpClass(cls):
        peerlib.require_program(AWS, "awscli")
        cls.peer = peerlib.kms(web_identity_token="oidc-token-of-the-pod", container_token="pod-identity-token")
        cls.tmp = tempfile.mkdtemp(prefix="kms-peer-credentials-")

    @classmethod
    def tearDownClass(cls):
        cls.peer.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def file(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def bare_env(self, **extra):
        """awscli with no static credentials at all: only what `extra` provides."""
        env = self.peer.aws_env()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(name, None)
        env.update(extra)
        return env

    def run_aws(self, *args, env):
        return subprocess.run([AWS, "--region", self.peer.region, "--output", "json", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    def test_assume_role_with_web_identity_answers_temporary_credentials(self):
        proc = self.run_aws("sts", "assume-role-with-web-identity", "--endpoint-url", self.peer.url,
                            "--role-arn", self.ROLE, "--role-session-name", "infra-keys",
                            "--web-identity-token", "oidc-token-of-the-pod", env=self.bare_env())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = json.loads(proc.stdout)
        credentials = out["Credentials"]
        self.assertTrue(credentials["AccessKeyId"].startswith("ASIA"))
        self.assertTrue(credentials["SessionToken"] and credentials["SecretAccessKey"])
        self.assertEqual(out["AssumedRoleUser"]["Arn"], "arn:aws:sts::111122223333:assumed-role/infra-keys/infra-keys")
        self.assertEqual(out["SubjectFromWebIdentityToken"], "system:serviceaccount:infra:infra-keys")

    def test_a_wrong_web_identity_token_is_invalid_identity_token(self):
        proc = self.run_aws("sts", "assume-role-with-web-identity", "--endpoint-url", self.peer.url,
                            "--role-arn", self.ROLE, "--role-session-name", "infra-keys",
                            "--web-identity-token", "forged", env=self.bare_env())
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("InvalidIdentityToken", proc.stderr)

    def test_awscli_signs_kms_calls_with_container_credentials(self):
        # Debian's awscli 2.9 predates AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; the token in the
        # environment goes on the wire the same way (the Authorization header).
        env = self.bare_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=self.peer.url + "/v1/credentials",
                            AWS_CONTAINER_AUTHORIZATION_TOKEN="pod-identity-token")
        proc = self.run_aws("kms", "describe-key", "--key-id", "alias/infra", "--endpoint-url", self.peer.url, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("ContainerCredentials", self.peer.ops())
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong"
        proc = self.run_aws("kms", "describe-key", "--key-id", "alias/infra", "--endpoint-url", self.peer.url, env=env)
        self.assertNotEqual(proc.returncode, 0)

    def test_temporary_credentials_need_their_session_token(self):
        proc = self.run_aws("sts", "assume-role-with-web-identity", "--endpoint-url", self.peer.url,
                            "--role-arn", self.ROLE, "--role-session-name", "s1",
                            "--web-identity-token", "oidc-token-of-the-pod", env=self.bare_env())
        credentials = json.loads(proc.stdout)["Credentials"]
        env = self.bare_env(AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
                            AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"])
        proc = self.run_aws("kms", "describe-key", "--key-id", "alias/infra", "--endpoint-url", self.peer.url, env=env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("UnrecognizedClientException", proc.stderr)
        env["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
        proc = self.run_aws("kms", "describe-key", "--key-id", "alias/infra", "--endpoint-url", self.peer.url, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2, warnings="ignore")
