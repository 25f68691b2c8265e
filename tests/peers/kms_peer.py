#!/usr/bin/python3
"""AWS KMS peer: the JSON 1.1 protocol (X-Amz-Target: TrentService.<Op>) with real SigV4 checks.

Implements CreateKey, CreateAlias, DescribeKey, EnableKey, DisableKey, GenerateDataKey,
GenerateDataKeyWithoutPlaintext, Encrypt, Decrypt, ReEncrypt for symmetric keys; beside them
the credential sources a pod has: STS AssumeRoleWithWebIdentity (the query API, IRSA) and a
container credentials endpoint (GET /v1/credentials, as the EKS Pod Identity agent serves it).
Temporary credentials they hand out sign KMS requests with their session token.
Sources: AWS KMS API Reference (actions, common errors), AWS General Reference
"Create a signed AWS API request" (SigV4). See README.md for what is left out.
"""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import posixpath
import re
import secrets
import time
import uuid
from urllib.parse import parse_qs, quote, unquote
from xml.sax.saxutils import escape as xml_escape

import peercommon
from peercommon import App, Response

JSON11 = "application/x-amz-json-1.1"
BLOB_VERSION = b"\x01"
UUID_LEN = 36
ALGORITHMS = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                      "Check your AWS Secret Access Key and signing method. "
                      "Consult the service documentation for details.")


FORM = "application/x-www-form-urlencoded"
STS_VERSION = "2011-06-15"
CONTAINER_PATH = "/v1/credentials"
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
STS_ANSWER = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>%(subject)s</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>%(arn)s</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:infra-keys</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>%(token)s</SessionToken>
      <SecretAccessKey>%(secret)s</SecretAccessKey>
      <Expiration>%(expiration)s</Expiration>
      <AccessKeyId>%(access_key)s</AccessKeyId>
    </Credentials>
    <Provider>oidc.eks.us-east-1.amazonaws.com/id/PEER</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>%(request_id)s</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"""
STS_ERROR = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>%(code)s</Code>
    <Message>%(message)s</Message>
  </Error>
  <RequestId>%(request_id)s</RequestId>
</ErrorResponse>
"""


class StsError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class KmsError(Exception):
    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


def error_response(kind, message, status=400):
    body = json.dumps({"__type": kind, "message": message}).encode()
    return Response(status, body, JSON11, {"x-amzn-RequestId": str(uuid.uuid4())})


def validation(field, constraint, value=None):
    shown = "null" if value is None else "'%s'" % value
    return KmsError("ValidationException", "1 validation error detected: Value %s at '%s' failed to "
                    "satisfy constraint: %s" % (shown, field, constraint))


# --- SigV4 -------------------------------------------------------------------------------

def canonical_uri(raw_path):
    # Non-S3 services normalise the path, then encode the already-encoded path once more.
    path = posixpath.normpath(raw_path) if raw_path not in ("", "/") else "/"
    if raw_path.endswith("/") and not path.endswith("/"):
        path += "/"
    return quote(path, safe="/~")


def canonical_query(raw_query):
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def canonical_headers(headers, signed):
    lines = []
    for name in signed:
        values = headers.get_all(name)
        if values is None:
            raise KmsError("InvalidSignatureException", SIGNATURE_MISMATCH)
        lines.append("%s:%s\n" % (name, ",".join(" ".join(v.split()) for v in values)))
    return "".join(lines)


def parse_authorization(value):
    if not value.startswith("AWS4-HMAC-SHA256 "):
        raise KmsError("IncompleteSignatureException",
                       "Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
    fields = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise KmsError("IncompleteSignatureException",
                       "Authorization header requires '%s' parameter. Authorization=%s"
                       % (missing[0], value))
    return fields


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


class SigV4Verifier:
    def __init__(self, credentials, region, service, max_skew, session_token):
        self.credentials = credentials   # access key id -> secret
        self.region, self.service = region, service
        self.max_skew, self.session_token = max_skew, session_token
        self.temporary = {}              # access key id -> session token, for issued credentials

    def issue(self):
        """New temporary credentials (ASIA…, as STS hands out): (access key, secret, session token)."""
        access_key = "ASIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        token = base64.b64encode(secrets.token_bytes(96)).decode()
        self.credentials[access_key] = secret
        self.temporary[access_key] = token
        return access_key, secret, token

    def verify(self, req):
        auth = req.headers.get("Authorization")
        if not auth:
            raise KmsError("MissingAuthenticationTokenException", "Missing Authentication Token")
        fields = parse_authorization(auth)
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise KmsError("IncompleteSignatureException",
                           "Credential should have 5 parts: %s" % fields["Credential"])
        access_key, date, region, service, _ = scope
        secret = self.credentials.get(access_key)
        if secret is None:
            raise KmsError("UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        required_token = self.temporary.get(access_key, self.session_token)
        if required_token is not None and req.headers.get("X-Amz-Security-Token") != required_token:
            raise KmsError("UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        if service != self.service:
            raise KmsError("InvalidSignatureException",
                           "Credential should be scoped to correct service: '%s'." % self.service)
        if region != self.region:
            raise KmsError("InvalidSignatureException",
                           "Credential should be scoped to a valid region, not '%s'." % region)
        amz_date = req.headers.get("X-Amz-Date")
        if not amz_date:
            raise KmsError("IncompleteSignatureException",
                           "Authorization header requires existence of a 'X-Amz-Date' header.")
        self._check_skew(amz_date)
        if not amz_date.startswith(date):
            raise KmsError("InvalidSignatureException",
                           "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'"
                           % (date, amz_date[:8]))
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed:
            raise KmsError("InvalidSignatureException",
                           "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        if signed != sorted(signed) or any(h != h.lower() for h in signed):
            raise KmsError("InvalidSignatureException", SIGNATURE_MISMATCH)
        creq = "\n".join([req.method, canonical_uri(req.raw_path), canonical_query(req.query),
                          canonical_headers(req.headers, signed), ";".join(signed),
                          hashlib.sha256(req.body).hexdigest()])
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join(scope[1:]),
                                    hashlib.sha256(creq.encode()).hexdigest()])
        expected = hmac.new(signing_key(secret, date, region, service), string_to_sign.encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"]):
            # As some AWS services do, show what was expected: it is what makes a signer debuggable.
            raise KmsError("InvalidSignatureException", SIGNATURE_MISMATCH +
                           "\n\nThe Canonical String for this request should have been\n'%s'\n\n"
                           "The String-to-Sign should have been\n'%s'\n" % (creq, string_to_sign))

    def _check_skew(self, amz_date):
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            raise KmsError("IncompleteSignatureException",
                           "Date must be in ISO-8601 'basic format'. Got '%s'." % amz_date)
        skew = abs(time.time() - when.timestamp())
        if skew > self.max_skew:
            raise KmsError("InvalidSignatureException",
                           "Signature expired: %s is now earlier or later than the allowed window of %d s."
                           % (amz_date, self.max_skew))


# --- keys and blobs ----------------------------------------------------------------------

def b64decode_field(body, name, required=True):
    value = body.get(name)
    if value is None:
        if required:
            raise validation(name[0].lower() + name[1:], "Member must not be null")
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise KmsError("SerializationException", "Could not base64-decode %s" % name)


def context_aad(context):
    if context is None:
        return b""
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise KmsError("SerializationException", "EncryptionContext must be a map of strings")
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


class KmsApp(App):
    name = "kms-peer"
    control_keys = ("disable_key", "enable_key", "create_key")

    def __init__(self, verifier, region, account):
        self.verifier, self.region, self.account = verifier, region, account
        self.keys = {}      # uuid -> {material(b64), enabled, created, description}
        self.aliases = {}   # "alias/x" -> uuid
        self.web_identity_tokens = set()
        self.container_token = None
        self.assumed = []   # {"role", "session", "access_key"} of each AssumeRoleWithWebIdentity

    # state
    def to_state(self):
        return {"keys": self.keys, "aliases": self.aliases}

    def from_state(self, state):
        self.keys, self.aliases = state.get("keys", {}), state.get("aliases", {})

    def arn(self, key_id):
        return "arn:aws:kms:%s:%s:key/%s" % (self.region, self.account, key_id)

    def new_key(self, description="", alias=None):
        key_id = str(uuid.uuid4())
        self.keys[key_id] = {"material": base64.b64encode(secrets.token_bytes(32)).decode(),
                             "enabled": True, "created": time.time(), "description": description}
        if alias:
            self.add_alias(alias, key_id)
        self.dirty = True
        return key_id

    def add_alias(self, alias, key_id):
        if not re.fullmatch(r"alias/[a-zA-Z0-9/_-]+", alias) or alias.startswith("alias/aws/"):
            raise validation("aliasName", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$", alias)
        if alias in self.aliases:
            raise KmsError("AlreadyExistsException", "An alias with the name %s already exists" % self.alias_arn(alias))
        self.aliases[alias] = key_id
        self.dirty = True

    def alias_arn(self, alias):
        return "arn:aws:kms:%s:%s:%s" % (self.region, self.account, alias)

    def resolve(self, key_ref, need_enabled=True):
        """Key id, key ARN, alias name or alias ARN -> key uuid (NotFound/Disabled as KMS says)."""
        if not isinstance(key_ref, str) or not key_ref:
            raise validation("keyId", "Member must have length greater than or equal to 1", key_ref)
        ref = key_ref
        prefix = "arn:aws:kms:%s:%s:" % (self.region, self.account)
        if ref.startswith("arn:"):
            if not ref.startswith(prefix):
                raise KmsError("NotFoundException", "Invalid arn %s" % key_ref)
            ref = ref[len(prefix):]
            if ref.startswith("key/"):
                ref = ref[len("key/"):]
        if ref.startswith("alias/"):
            key_id = self.aliases.get(ref)
            if key_id is None:
                raise KmsError("NotFoundException", "Alias %s is not found." % self.alias_arn(ref))
        else:
            key_id = ref
            if key_id not in self.keys:
                raise KmsError("NotFoundException", "Key '%s' does not exist" % self.arn(key_id))
        if need_enabled and not self.keys[key_id]["enabled"]:
            raise KmsError("DisabledException", "%s is disabled." % self.arn(key_id))
        return key_id

    def seal_blob(self, key_id, plaintext, context):
        material = base64.b64decode(self.keys[key_id]["material"])
        header = BLOB_VERSION + key_id.encode()
        return header + peercommon.seal(material, header, context_aad(context), plaintext)

    def open_blob(self, blob, context, expected_key=None):
        """-> (key uuid, plaintext); checks the caller's KeyId against the blob's key."""
        if len(blob) < 1 + UUID_LEN + peercommon.NONCE_LEN + peercommon.TAG_LEN or blob[:1] != BLOB_VERSION:
            raise KmsError("InvalidCiphertextException", "")
        key_id = blob[1:1 + UUID_LEN].decode("ascii", "replace")
        if key_id not in self.keys:
            raise KmsError("InvalidCiphertextException", "")
        if expected_key is not None and expected_key != key_id:
            raise KmsError("IncorrectKeyException",
                           "The key ID in the request does not identify a CMK that can perform this operation.")
        if not self.keys[key_id]["enabled"]:
            raise KmsError("DisabledException", "%s is disabled." % self.arn(key_id))
        material = base64.b64decode(self.keys[key_id]["material"])
        try:
            plaintext = peercommon.unseal(material, blob[:1 + UUID_LEN], context_aad(context),
                                          blob[1 + UUID_LEN:])
        except ValueError:
            raise KmsError("InvalidCiphertextException", "")
        return key_id, plaintext

    def metadata(self, key_id):
        key = self.keys[key_id]
        return {"AWSAccountId": self.account, "KeyId": key_id, "Arn": self.arn(key_id),
                "CreationDate": key["created"], "Enabled": key["enabled"],
                "Description": key["description"], "KeyUsage": "ENCRYPT_DECRYPT",
                "KeyState": "Enabled" if key["enabled"] else "Disabled", "Origin": "AWS_KMS",
                "KeyManager": "CUSTOMER", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                "KeySpec": "SYMMETRIC_DEFAULT", "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                "MultiRegion": False}

    # protocol
    def operation(self, req):
        target = req.headers.get("X-Amz-Target", "")
        if target.startswith("TrentService."):
            return target[len("TrentService."):]
        if req.method == "GET" and req.raw_path == CONTAINER_PATH:
            return "ContainerCredentials"
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip()
        if req.method == "POST" and content_type == FORM:
            action = parse_qs(req.body.decode(errors="replace")).get("Action", [""])[0]
            return "sts." + action if action else "unknown"
        return "unknown"

    def fault_response(self, fault, op):
        status = fault["status"]
        kind = fault.get("type") or {429: "ThrottlingException", 400: "ThrottlingException",
                                     503: "DependencyTimeoutException"}.get(status, "KMSInternalException")
        return error_response(kind, fault.get("message", "injected by kms-peer"), status)

    def handle(self, req, op):
        if op.startswith("sts."):
            return self.handle_sts(req, op[len("sts."):])
        if op == "ContainerCredentials":
            return self.handle_container(req)
        try:
            self.verifier.verify(req)
            if req.method != "POST" or op == "unknown":
                raise KmsError("UnknownOperationException", "")
            content_type = req.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type != JSON11:
                raise KmsError("SerializationException",
                               "Content-Type must be %s, got '%s'" % (JSON11, content_type))
            try:
                body = json.loads(req.body or b"{}")
            except ValueError:
                raise KmsError("SerializationException", "Start of structure or map found where not expected.")
            if not isinstance(body, dict):
                raise KmsError("SerializationException", "Expected a JSON object")
            req.summary = {"params": {k: (v if k not in ("Plaintext", "CiphertextBlob") else "<%d chars>" % len(str(v)))
                                      for k, v in body.items()}}
            handler = getattr(self, "op_" + op, None)
            if handler is None:
                raise KmsError("UnknownOperationException", "")
            result = handler(body)
            return Response(200, json.dumps(result).encode(), JSON11,
                            {"x-amzn-RequestId": str(uuid.uuid4())})
        except KmsError as err:
            if err.kind in ("InvalidSignatureException", "IncompleteSignatureException"):
                sys.stderr.write("kms-peer: %s: %s\n" % (err.kind, err.message))
            return error_response(err.kind, err.message, err.status)

    # STS (query API, XML answers): only AssumeRoleWithWebIdentity, which needs no signature.
    def handle_sts(self, req, action):
        params = {k: v[0] for k, v in parse_qs(req.body.decode(errors="replace"), keep_blank_values=True).items()}
        req.summary = {"params": sorted(params)}
        try:
            if action != "AssumeRoleWithWebIdentity":
                raise StsError("InvalidAction", "Could not find operation %s for version %s"
                               % (action, params.get("Version")))
            if params.get("Version") != STS_VERSION:
                raise StsError("InvalidParameterValue", "Version must be %s" % STS_VERSION)
            for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
                if not params.get(name):
                    raise StsError("MissingParameter", "The request must contain the parameter %s" % name)
            if not ROLE_ARN_RE.match(params["RoleArn"]):
                raise StsError("ValidationError", "%s is invalid" % params["RoleArn"])
            if not SESSION_NAME_RE.match(params["RoleSessionName"]):
                raise StsError("ValidationError", "1 validation error detected: Value at 'roleSessionName' "
                               "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                               "[\\w+=,.@-]*")
            if params["WebIdentityToken"] not in self.web_identity_tokens:
                raise StsError("InvalidIdentityToken", "Couldn't retrieve verification key from your identity "
                               "provider,  please reference AssumeRoleWithWebIdentity documentation for requirements")
            duration = int(params.get("DurationSeconds") or 3600)
            access_key, secret, token = self.verifier.issue()
            self.assumed.append({"role": params["RoleArn"], "session": params["RoleSessionName"],
                                 "access_key": access_key})
            expiration = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=duration))
            role_name = params["RoleArn"].split("/")[-1]
            body = STS_ANSWER % {
                "subject": "system:serviceaccount:infra:infra-keys", "access_key": access_key,
                "secret": xml_escape(secret), "token": xml_escape(token),
                "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "arn": xml_escape("arn:aws:sts::%s:assumed-role/%s/%s" % (self.account, role_name,
                                                                         params["RoleSessionName"])),
                "request_id": uuid.uuid4()}
            return Response(200, body.encode(), "text/xml", {"x-amzn-RequestId": str(uuid.uuid4())})
        except StsError as err:
            body = STS_ERROR % {"code": err.code, "message": xml_escape(err.message), "request_id": uuid.uuid4()}
            return Response(err.status, body.encode(), "text/xml", {"x-amzn-RequestId": str(uuid.uuid4())})

    # The container credentials endpoint (ECS task role, EKS Pod Identity): the Authorization
    # header carries the token from AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE).
    def handle_container(self, req):
        if self.container_token is None or req.headers.get("Authorization") != self.container_token:
            body = json.dumps({"Code": "AccessDenied", "Message": "invalid authorization token"})
            return Response(403, body.encode(), "application/json")
        access_key, secret, token = self.verifier.issue()
        expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=6)
        body = {"AccessKeyId": access_key, "SecretAccessKey": secret, "Token": token,
                "AccountId": self.account, "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return Response(200, json.dumps(body).encode(), "application/json")

    def op_CreateKey(self, body):
        if body.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            raise KmsError("UnsupportedOperationException", "kms-peer only makes SYMMETRIC_DEFAULT keys")
        return {"KeyMetadata": self.metadata(self.new_key(body.get("Description", "")))}

    def op_CreateAlias(self, body):
        alias = body.get("AliasName")
        if alias is None:
            raise validation("aliasName", "Member must not be null")
        self.add_alias(alias, self.resolve(body.get("TargetKeyId"), need_enabled=False))
        return {}

    def op_DescribeKey(self, body):
        return {"KeyMetadata": self.metadata(self.resolve(body.get("KeyId"), need_enabled=False))}

    def op_EnableKey(self, body):
        self.keys[self.resolve(body.get("KeyId"), need_enabled=False)]["enabled"] = True
        self.dirty = True
        return {}

    def op_DisableKey(self, body):
        self.keys[self.resolve(body.get("KeyId"), need_enabled=False)]["enabled"] = False
        self.dirty = True
        return {}

    def _data_key_length(self, body):
        spec, count = body.get("KeySpec"), body.get("NumberOfBytes")
        if spec is not None and count is not None:
            raise KmsError("ValidationException", "Please specify either number of bytes or key spec.")
        if spec is not None:
            if spec not in ("AES_256", "AES_128"):
                raise validation("keySpec", "Member must satisfy enum value set: [AES_256, AES_128]", spec)
            return 32 if spec == "AES_256" else 16
        if count is not None:
            if not isinstance(count, int) or not 1 <= count <= 1024:
                raise validation("numberOfBytes", "Member must have value between 1 and 1024", count)
            return count
        raise KmsError("ValidationException", "Please specify either number of bytes or key spec.")

    def op_GenerateDataKey(self, body):
        key_id = self.resolve(body.get("KeyId"))
        plaintext = secrets.token_bytes(self._data_key_length(body))
        blob = self.seal_blob(key_id, plaintext, body.get("EncryptionContext"))
        return {"CiphertextBlob": base64.b64encode(blob).decode(),
                "Plaintext": base64.b64encode(plaintext).decode(), "KeyId": self.arn(key_id)}

    def op_GenerateDataKeyWithoutPlaintext(self, body):
        result = self.op_GenerateDataKey(body)
        del result["Plaintext"]
        return result

    def _check_algorithm(self, body, field="EncryptionAlgorithm", wire="encryptionAlgorithm"):
        algorithm = body.get(field)
        if algorithm is None:
            return
        if algorithm not in ALGORITHMS:
            raise validation(wire, "Member must satisfy enum value set: [%s]" % ", ".join(ALGORITHMS), algorithm)
        if algorithm != "SYMMETRIC_DEFAULT":
            raise KmsError("InvalidKeyUsageException",
                           "%s is not a valid encryption algorithm for a symmetric key." % algorithm)

    def op_Encrypt(self, body):
        key_id = self.resolve(body.get("KeyId"))
        self._check_algorithm(body)
        plaintext = b64decode_field(body, "Plaintext")
        if not 1 <= len(plaintext) <= 4096:
            raise validation("plaintext", "Member must have length between 1 and 4096")
        blob = self.seal_blob(key_id, plaintext, body.get("EncryptionContext"))
        return {"CiphertextBlob": base64.b64encode(blob).decode(), "KeyId": self.arn(key_id),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    def op_Decrypt(self, body):
        self._check_algorithm(body)
        blob = b64decode_field(body, "CiphertextBlob")
        expected = self.resolve(body["KeyId"], need_enabled=False) if body.get("KeyId") is not None else None
        key_id, plaintext = self.open_blob(blob, body.get("EncryptionContext"), expected)
        return {"KeyId": self.arn(key_id), "Plaintext": base64.b64encode(plaintext).decode(),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    def op_ReEncrypt(self, body):
        self._check_algorithm(body, "SourceEncryptionAlgorithm", "sourceEncryptionAlgorithm")
        self._check_algorithm(body, "DestinationEncryptionAlgorithm", "destinationEncryptionAlgorithm")
        blob = b64decode_field(body, "CiphertextBlob")
        if body.get("DestinationKeyId") is None:
            raise validation("destinationKeyId", "Member must not be null")
        destination = self.resolve(body["DestinationKeyId"])
        expected = (self.resolve(body["SourceKeyId"], need_enabled=False)
                    if body.get("SourceKeyId") is not None else None)
        source, plaintext = self.open_blob(blob, body.get("SourceEncryptionContext"), expected)
        new_blob = self.seal_blob(destination, plaintext, body.get("DestinationEncryptionContext"))
        return {"CiphertextBlob": base64.b64encode(new_blob).decode(), "SourceKeyId": self.arn(source),
                "KeyId": self.arn(destination), "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    # peer-private controls
    def control(self, body):
        result = {}
        for action in ("disable_key", "enable_key"):
            if action in body:
                try:
                    key_id = self.resolve(body[action], need_enabled=False)
                except KmsError as err:
                    raise KeyError(err.message)
                self.keys[key_id]["enabled"] = action == "enable_key"
                self.dirty = True
                result[action] = self.arn(key_id)
        if "create_key" in body:
            alias = body["create_key"] or None
            if alias and alias in self.aliases:
                result["create_key"] = self.arn(self.aliases[alias])
            else:
                result["create_key"] = self.arn(self.new_key(alias=alias))
        return result


def main():
    parser = peercommon.base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--access-key", default="AKIDKMSPEER")
    parser.add_argument("--secret-key", default="kms-peer-secret")
    parser.add_argument("--session-token", help="when set, X-Amz-Security-Token must carry it")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account", default="111122223333")
    parser.add_argument("--max-skew", type=int, default=900, help="seconds of X-Amz-Date skew allowed")
    parser.add_argument("--web-identity-token", action="append", default=[],
                        help="a web identity (OIDC) token STS AssumeRoleWithWebIdentity accepts (repeatable)")
    parser.add_argument("--container-token", help="the Authorization value GET /v1/credentials requires")
    parser.add_argument("--key", action="append", default=[],
                        help="preload a key: alias/NAME (kept across restarts with --state)")
    args = parser.parse_args()
    verifier = SigV4Verifier({args.access_key: args.secret_key}, args.region, "kms",
                             args.max_skew, args.session_token)
    app = KmsApp(verifier, args.region, args.account)
    app.web_identity_tokens = set(args.web_identity_token)
    app.container_token = args.container_token
    if args.state:
        try:
            with open(args.state) as f:
                app.from_state(json.load(f))
        except FileNotFoundError:
            pass
    preloaded = {}
    for spec in args.key:
        if spec in app.aliases:
            preloaded[spec] = app.arn(app.aliases[spec])
        else:
            preloaded[spec] = app.arn(app.new_key(alias=spec if spec.startswith("alias/") else None))
    args.state_loaded = True
    return peercommon.run(app, args, extra_ready={"keys": preloaded, "region": args.region})


if __name__ == "__main__":
    sys.exit(main())
