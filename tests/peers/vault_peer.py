#!/usr/bin/python3
"""Vault peer: the transit secrets engine's HTTP API (keys, rotate, config, encrypt, decrypt, rewrap).

Sources: Vault "Transit secrets engine (API)" and "HTTP API" overview (X-Vault-Token,
X-Vault-Namespace, {"errors": [...]} responses), "/sys/health". See README.md for omissions.
"""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import base64
import binascii
import json
import re
import secrets
import time
import uuid

import peercommon
from peercommon import App, Response, json_response

KEY_TYPES = ("aes256-gcm96", "aes128-gcm96", "chacha20-poly1305")
CIPHERTEXT_RE = re.compile(r"^vault:v(\d+):(.*)$", re.S)


class VaultError(Exception):
    def __init__(self, status, *messages):
        super().__init__(messages)
        self.status, self.messages = status, list(messages)


def errors(status, *messages):
    return json_response(status, {"errors": list(messages)})


def envelope(data):
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": None, "auth": None}


def b64decode(value, what):
    if not isinstance(value, str):
        raise VaultError(400, "missing %s" % what)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VaultError(400, "failed to base64-decode %s" % what)


class VaultApp(App):
    name = "vault-peer"
    control_keys = ("delete_key", "create_key")

    def __init__(self, token, namespace, mount, autocreate):
        self.token = token
        self.namespace = namespace.strip("/") if namespace else ""
        self.mount = mount.strip("/")
        self.autocreate = autocreate
        self.issued = set()   # tokens handed out by a login, accepted like --token
        self.kubernetes_roles = {}   # role -> service account JWTs it accepts (auth/kubernetes)
        self.approles = {}           # role_id -> secret_id (auth/approle)
        self.keys = {}   # name -> {type, versions{str(n): {material(b64), created}}, latest, min_decryption_version, min_encryption_version, deletion_allowed}

    def to_state(self):
        return {"keys": self.keys}

    def from_state(self, state):
        self.keys = state.get("keys", {})

    # routing
    def route(self, req):
        """-> (kind, name) for a transit path, ('health', None), or (None, None)."""
        path = req.raw_path
        if not path.startswith("/v1/"):
            return None, None
        rest = path[len("/v1/"):]
        if rest == "sys/health":
            return "health", None
        header_ns = req.headers.get("X-Vault-Namespace", "").strip("/")
        full = (header_ns + "/" + rest) if header_ns else rest
        login = re.fullmatch((re.escape(self.namespace + "/") if self.namespace else "") + r"auth/(kubernetes|approle)/login",
                             full)
        if login and req.method in ("POST", "PUT"):
            return "login", login.group(1)
        prefix = (self.namespace + "/" if self.namespace else "") + self.mount + "/"
        if not full.startswith(prefix):
            return "unrouted", None
        parts = full[len(prefix):].split("/")
        if len(parts) == 2 and parts[0] in ("encrypt", "decrypt", "rewrap") and parts[1]:
            return parts[0], parts[1]
        if len(parts) == 2 and parts[0] == "keys" and parts[1]:
            return "keys", parts[1]
        if len(parts) == 3 and parts[0] == "keys" and parts[2] in ("rotate", "config") and parts[1]:
            return parts[2], parts[1]
        if parts in (["keys"], ["keys", ""]):
            return "list", None
        return "unrouted", None

    def operation(self, req):
        kind, _ = self.route(req)
        if kind == "keys":
            return {"GET": "keys.read", "POST": "keys.create", "PUT": "keys.create",
                    "DELETE": "keys.delete"}.get(req.method, "keys")
        return kind or "unrouted"

    def fault_response(self, fault, op):
        status = fault["status"]
        default = {503: "Vault is sealed", 429: "request path \"%s\": rate limit quota exceeded" % op,
                   403: "permission denied"}.get(status, "internal error")
        return errors(status, fault.get("message", default))

    def handle(self, req, op):
        kind, name = self.route(req)
        if kind == "health":
            return json_response(200, {"initialized": True, "sealed": False, "standby": False,
                                       "performance_standby": False, "replication_performance_mode": "disabled",
                                       "replication_dr_mode": "disabled", "server_time_utc": int(time.time()),
                                       "version": "1.15.0+peer", "cluster_name": "vault-peer",
                                       "cluster_id": "00000000-0000-0000-0000-000000000000"})
        if kind == "login":
            return self.login(req, name)
        token = req.headers.get("X-Vault-Token")
        if token is None and req.headers.get("Authorization", "").startswith("Bearer "):
            token = req.headers["Authorization"][len("Bearer "):]
        if token != self.token and token not in self.issued:
            return errors(403, "permission denied")
        if kind in (None, "unrouted"):
            return errors(404, "no handler for route \"%s\". route entry not found." % req.raw_path[len("/v1/"):])
        try:
            body = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            return errors(400, "failed to parse JSON input: invalid character")
        if not isinstance(body, dict):
            return errors(400, "failed to parse JSON input")
        req.summary = {"name": name, "params": sorted(body)}
        try:
            data = getattr(self, "do_" + kind)(req, name, body)
        except VaultError as err:
            return errors(err.status, *err.messages)
        if data is None:
            return Response(204)
        return json_response(200, envelope(data))

    # keys
    def create(self, name, key_type="aes256-gcm96"):
        if key_type not in KEY_TYPES:
            raise VaultError(400, "unknown key type %s" % key_type)
        now = int(time.time())
        self.keys[name] = {"type": key_type, "latest": 1, "min_decryption_version": 1,
                           "min_encryption_version": 0, "deletion_allowed": False,
                           "versions": {"1": {"material": base64.b64encode(secrets.token_bytes(32)).decode(),
                                              "created": now}}}
        self.dirty = True

    def get(self, name, status=400):
        key = self.keys.get(name)
        if key is None:
            raise VaultError(status, "encryption key not found") if status == 400 else VaultError(404)
        return key

    def describe(self, name):
        key = self.keys[name]
        return {"name": name, "type": key["type"], "latest_version": key["latest"],
                "min_decryption_version": key["min_decryption_version"],
                "min_encryption_version": key["min_encryption_version"], "min_available_version": 0,
                "keys": {v: info["created"] for v, info in key["versions"].items()
                         if int(v) >= key["min_decryption_version"]},
                "deletion_allowed": key["deletion_allowed"], "derived": False, "exportable": False,
                "allow_plaintext_backup": False, "auto_rotate_period": 0, "imported_key": False,
                "supports_encryption": True, "supports_decryption": True, "supports_derivation": True,
                "supports_signing": False}

    def do_list(self, req, name, body):
        if req.method not in ("LIST", "GET"):
            raise VaultError(405, "unsupported operation")
        if not self.keys:
            raise VaultError(404)
        return {"keys": sorted(self.keys)}

    def do_keys(self, req, name, body):
        if req.method == "GET":
            self.get(name, status=404)
            return self.describe(name)
        if req.method in ("POST", "PUT"):
            if body.get("derived") or body.get("convergent_encryption"):
                raise VaultError(400, "vault-peer does not implement derived keys")
            if body.get("exportable") or body.get("allow_plaintext_backup"):
                raise VaultError(400, "vault-peer does not implement exportable keys")
            if name not in self.keys:
                self.create(name, body.get("type", "aes256-gcm96"))
            return self.describe(name)
        if req.method == "DELETE":
            key = self.get(name, status=404)
            if not key["deletion_allowed"]:
                raise VaultError(400, "deletion is not allowed for this key")
            del self.keys[name]
            self.dirty = True
            return None
        raise VaultError(405, "unsupported operation")

    def do_rotate(self, req, name, body):
        key = self.get(name)
        key["latest"] += 1
        key["versions"][str(key["latest"])] = {"material": base64.b64encode(secrets.token_bytes(32)).decode(),
                                               "created": int(time.time())}
        self.dirty = True
        return self.describe(name)

    def do_config(self, req, name, body):
        key = self.get(name)
        for field in ("min_decryption_version", "min_encryption_version"):
            if field in body:
                value = body[field]
                if not isinstance(value, int) or value < 0:
                    raise VaultError(400, "invalid %s" % field)
                if value > key["latest"]:
                    raise VaultError(400, "cannot set %s to %d, latest key version is %d"
                                     % (field.replace("_", " "), value, key["latest"]))
                key[field] = max(value, 1) if field == "min_decryption_version" else value
        if "deletion_allowed" in body:
            key["deletion_allowed"] = bool(body["deletion_allowed"])
        self.dirty = True
        return self.describe(name)

    # crypto
    def seal(self, name, version, plaintext):
        material = base64.b64decode(self.keys[name]["versions"][str(version)]["material"])
        blob = peercommon.seal(material, ("%s:v%d" % (name, version)).encode(), b"", plaintext)
        return "vault:v%d:%s" % (version, base64.b64encode(blob).decode())

    def unseal(self, name, ciphertext):
        key = self.get(name)
        if not isinstance(ciphertext, str) or not ciphertext:
            raise VaultError(400, "missing ciphertext to decrypt")
        match = CIPHERTEXT_RE.match(ciphertext)
        if not ciphertext.startswith("vault:"):
            raise VaultError(400, "invalid ciphertext: no prefix")
        if not match:
            raise VaultError(400, "invalid ciphertext: wrong number of fields")
        version = int(match.group(1))
        if version < key["min_decryption_version"]:
            raise VaultError(400, "ciphertext or signature version is disallowed by policy (too old)")
        if str(version) not in key["versions"]:
            raise VaultError(400, "invalid key version")
        try:
            blob = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise VaultError(400, "invalid ciphertext: could not decode ciphertext")
        material = base64.b64decode(key["versions"][str(version)]["material"])
        try:
            return peercommon.unseal(material, ("%s:v%d" % (name, version)).encode(), b"", blob)
        except ValueError:
            raise VaultError(400, "cipher: message authentication failed")

    def encryption_version(self, key, body):
        version = body.get("key_version") or key["latest"]
        if not isinstance(version, int) or str(version) not in key["versions"] or \
                version < max(key["min_encryption_version"], key["min_decryption_version"]):
            raise VaultError(400, "invalid key version")
        return version

    def do_encrypt(self, req, name, body):
        if "batch_input" in body:
            raise VaultError(400, "vault-peer does not implement batch_input")
        if "plaintext" not in body:
            raise VaultError(400, "missing plaintext to encrypt")
        plaintext = b64decode(body["plaintext"], "plaintext")
        if name not in self.keys:
            if not self.autocreate:
                raise VaultError(400, "encryption key not found")
            self.create(name, body.get("type", "aes256-gcm96"))
        version = self.encryption_version(self.keys[name], body)
        return {"ciphertext": self.seal(name, version, plaintext), "key_version": version}

    def do_decrypt(self, req, name, body):
        if "batch_input" in body:
            raise VaultError(400, "vault-peer does not implement batch_input")
        plaintext = self.unseal(name, body.get("ciphertext"))
        return {"plaintext": base64.b64encode(plaintext).decode()}

    def do_rewrap(self, req, name, body):
        plaintext = self.unseal(name, body.get("ciphertext"))
        version = self.encryption_version(self.keys[name], body)
        return {"ciphertext": self.seal(name, version, plaintext), "key_version": version}

    # auth methods: a login answers Vault's auth envelope with a fresh token
    def login(self, req, method):
        try:
            body = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            return errors(400, "failed to parse JSON input: invalid character")
        req.summary = {"name": method, "params": sorted(body)}
        if method == "kubernetes":
            role, jwt = body.get("role"), body.get("jwt")
            if not role:
                return errors(400, "missing role")
            if not jwt:
                return errors(400, "missing jwt")
            if role not in self.kubernetes_roles:
                return errors(400, 'invalid role name "%s"' % role)
            if jwt not in self.kubernetes_roles[role]:
                return errors(403, "permission denied")
            metadata = {"role": role, "service_account_name": "infra-keys", "service_account_namespace": "infra"}
        else:
            role_id, secret_id = body.get("role_id"), body.get("secret_id")
            if not role_id:
                return errors(400, "missing role_id")
            if role_id not in self.approles or self.approles[role_id] != secret_id:
                return errors(400, "invalid role or secret ID")
            metadata = {"role_name": "infra-keys"}
        token = "hvs." + secrets.token_urlsafe(24)
        self.issued.add(token)
        answer = envelope(None)
        answer["auth"] = {"client_token": token, "accessor": secrets.token_urlsafe(18),
                          "policies": ["default", "infra-keys"], "token_policies": ["default", "infra-keys"],
                          "metadata": metadata, "lease_duration": 3600, "renewable": True,
                          "entity_id": str(uuid.uuid4()), "token_type": "service", "orphan": True}
        return json_response(200, answer)

    # peer-private controls
    def control(self, body):
        result = {}
        if "delete_key" in body:
            if body["delete_key"] not in self.keys:
                raise KeyError(body["delete_key"])
            del self.keys[body["delete_key"]]
            self.dirty = True
            result["delete_key"] = body["delete_key"]
        if "create_key" in body:
            if body["create_key"] not in self.keys:
                self.create(body["create_key"])
            result["create_key"] = body["create_key"]
        return result


def main():
    parser = peercommon.base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--token", default="vault-peer-token")
    parser.add_argument("--namespace", help="Enterprise namespace requests must name (header or path)")
    parser.add_argument("--transit-mount", default="transit")
    parser.add_argument("--no-autocreate", action="store_true",
                        help="encrypt to a missing key fails, as with a policy lacking 'create'")
    parser.add_argument("--key", action="append", default=[], help="preload a transit key by name")
    parser.add_argument("--kubernetes-role", action="append", default=[],
                        help="ROLE=JWT: auth/kubernetes/login accepts that service account token for the role")
    parser.add_argument("--approle", action="append", default=[],
                        help="ROLE_ID=SECRET_ID: auth/approle/login accepts that pair")
    args = parser.parse_args()
    app = VaultApp(args.token, args.namespace, args.transit_mount, not args.no_autocreate)
    for spec in args.kubernetes_role:
        role, jwt = spec.split("=", 1)
        app.kubernetes_roles.setdefault(role, set()).add(jwt)
    for spec in args.approle:
        role_id, secret_id = spec.split("=", 1)
        app.approles[role_id] = secret_id
    if args.state:
        try:
            with open(args.state) as f:
                app.from_state(json.load(f))
        except FileNotFoundError:
            pass
    args.state_loaded = True
    for name in args.key:
        if name not in app.keys:
            app.create(name)
    return peercommon.run(app, args, extra_ready={"mount": app.mount, "namespace": app.namespace})


if __name__ == "__main__":
    sys.exit(main())
