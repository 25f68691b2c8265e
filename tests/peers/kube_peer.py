#!/usr/bin/python3
"""Kubernetes API server peer: core/v1 Secrets over HTTPS with bearer-token or client-cert auth.

Serves get/list/create/update/patch/delete of Secrets, get/list of ConfigMaps and apps/v1
Deployments (put in place through the control endpoint, as a Helm install would leave them),
plus the discovery documents kubectl reads.
Sources: Kubernetes API reference (Secret v1, Status, ListMeta), "API Concepts" (resourceVersion,
patch content types), "Controlling access: authenticating" (bearer tokens, X.509 client certs).
See README.md for omissions.
"""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import base64
import binascii
import copy
import datetime
import json
import re
import secrets
import tempfile
import uuid
from urllib.parse import parse_qs, unquote

import peercommon
from peercommon import App, Response, json_response

SECRET_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DATA_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
# Kinds kubectl may map (for `apply --dry-run=client` of the docs/kubernetes manifests); of these
# the peer serves get and list of ConfigMaps and Deployments, the rest are listed and nothing more.
CORE_DRY_RUN_RESOURCES = [("configmaps", "ConfigMap"), ("serviceaccounts", "ServiceAccount"),
                          ("persistentvolumeclaims", "PersistentVolumeClaim")]
GROUP_RESOURCES = {
    "apps/v1": [("deployments", "Deployment")],
    "batch/v1": [("cronjobs", "CronJob"), ("jobs", "Job")],
    "rbac.authorization.k8s.io/v1": [("roles", "Role"), ("rolebindings", "RoleBinding")],
}


# Read-only objects: resource → (API path prefix, kind).
READ_ONLY_RESOURCES = {"configmaps": ("/api/v1", "ConfigMap"), "deployments": ("/apis/apps/v1", "Deployment")}


def resource_entry(name, kind):
    return {"name": name, "singularName": kind.lower(), "namespaced": True, "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update"]}


PATCH_TYPES = ("application/strategic-merge-patch+json", "application/merge-patch+json",
               "application/json-patch+json")


class KubeError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_object(code, reason, message, details=None, status="Failure"):
    obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status,
           "message": message, "reason": reason, "code": code}
    if details:
        obj["details"] = details
    if status == "Success":
        del obj["message"], obj["reason"]
    return obj


def not_found(name):
    return KubeError(404, "NotFound", 'secrets "%s" not found' % name, {"name": name, "kind": "secrets"})


def conflict(name):
    return KubeError(409, "Conflict", 'Operation cannot be fulfilled on secrets "%s": the object has been '
                     'modified; please apply your changes to the latest version and try again' % name,
                     {"name": name, "kind": "secrets"})


def invalid(name, cause):
    return KubeError(422, "Invalid", 'Secret "%s" is invalid: %s' % (name, cause),
                     {"name": name, "kind": "Secret"})


def merge_patch(target, patch):
    """RFC 7386; for a Secret, a strategic merge patch means the same (no merge-keyed lists we model)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):   # strategic-merge directives ($patch, $retainKeys): not modelled
            raise KubeError(400, "BadRequest", "kube-peer does not implement strategic directive %s" % key)
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise KubeError(422, "Invalid", "invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target, operations):
    """RFC 6902 over objects (add, remove, replace, test); arrays are not modelled for Secrets."""
    doc = copy.deepcopy(target)
    if not isinstance(operations, list):
        raise KubeError(400, "BadRequest", "json patch must be a list of operations")
    for op in operations:
        parts = json_pointer(op.get("path", ""))
        if not parts:
            raise KubeError(422, "Invalid", "kube-peer does not replace the whole document")
        parent = doc
        for part in parts[:-1]:
            if not isinstance(parent, dict) or part not in parent:
                raise KubeError(422, "Invalid", "doc is missing path: %s" % op.get("path"))
            parent = parent[part]
        last = parts[-1]
        kind = op.get("op")
        if kind == "test":
            if parent.get(last) != op.get("value"):
                raise KubeError(422, "Invalid", "testing value %s failed" % op.get("path"))
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in parent:
                raise KubeError(422, "Invalid", "replace operation does not apply: doc is missing key: %s"
                                % op.get("path"))
            parent[last] = op.get("value")
        elif kind == "remove":
            if last not in parent:
                raise KubeError(422, "Invalid", "remove operation does not apply: doc is missing path: %s"
                                % op.get("path"))
            del parent[last]
        else:
            raise KubeError(422, "Invalid", "kube-peer does not implement json patch op %r" % kind)
    return doc


# --- the protobuf encoding kubectl's typed clients send (application/vnd.kubernetes.protobuf) ---
PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"


def protobuf_fields(buf):
    """Yields (field number, value) of one message; length-delimited values stay bytes."""
    pos = 0

    def varint():
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= len(buf):
                raise ValueError("truncated varint")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result
    while pos < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            if pos + length > len(buf):
                raise ValueError("truncated field")
            yield number, buf[pos:pos + length]
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, buf[pos:pos + size]
            pos += size
        else:
            raise ValueError("unsupported wire type %d" % wire)


def protobuf_map_entry(entry, decode_value):
    fields = dict(protobuf_fields(entry))
    return fields.get(1, b"").decode(), decode_value(fields.get(2, b""))


def secret_from_protobuf(body):
    """Decodes runtime.Unknown{raw: v1.Secret} into the JSON shape (fields per generated.proto)."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise ValueError("missing k8s protobuf magic")
    raw = dict(protobuf_fields(body[len(PROTOBUF_MAGIC):])).get(2, b"")
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": {}}
    for number, value in protobuf_fields(raw):
        if number == 1:
            meta_names = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
            for mnum, mval in protobuf_fields(value):
                if mnum in meta_names:
                    secret["metadata"][meta_names[mnum]] = mval.decode()
                elif mnum in (11, 12):
                    key, val = protobuf_map_entry(mval, bytes.decode)
                    secret["metadata"].setdefault("labels" if mnum == 11 else "annotations", {})[key] = val
        elif number == 2:
            key, val = protobuf_map_entry(value, lambda b: base64.b64encode(b).decode())
            secret.setdefault("data", {})[key] = val
        elif number == 3:
            secret["type"] = value.decode()
        elif number == 4:
            key, val = protobuf_map_entry(value, bytes.decode)
            secret.setdefault("stringData", {})[key] = val
        elif number == 5:
            secret["immutable"] = bool(value)
    return secret


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeApp(App):
    name = "kube-peer"
    control_keys = ("delete_secret", "put_secret", "set_tokens", "put_object", "delete_object")

    def __init__(self, tokens, allow_client_certs):
        self.tokens = set(tokens)
        self.allow_client_certs = allow_client_certs
        self.secrets = {}            # "ns/name" -> Secret object (with kind/apiVersion)
        self.objects = {resource: {} for resource in READ_ONLY_RESOURCES}  # resource -> "ns/name" -> object
        self.resource_version = 1000

    def to_state(self):
        return {"secrets": self.secrets, "objects": self.objects, "resource_version": self.resource_version}

    def from_state(self, state):
        self.secrets = state.get("secrets", {})
        self.objects = state.get("objects", {resource: {} for resource in READ_ONLY_RESOURCES})
        self.resource_version = state.get("resource_version", 1000)

    # routing
    def route(self, req):
        """-> (op, namespace, name)."""
        path = unquote(req.raw_path).rstrip("/") or "/"
        if path in ("/api", "/apis", "/api/v1", "/version", "/healthz", "/readyz", "/livez") or \
                path[len("/apis/"):] in GROUP_RESOURCES:
            return "discovery", None, None
        if path.startswith("/openapi/"):
            return "openapi", None, None
        if path == "/api/v1/secrets" and req.method == "GET":
            return "secrets.list", None, None
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)", path)
        if m:   # kubectl asks whether the namespace exists after a NotFound in it
            return ("namespaces.get" if req.method == "GET" else "unrouted"), None, m.group(1)
        for resource, (prefix, _) in READ_ONLY_RESOURCES.items():
            m = re.fullmatch(re.escape(prefix) + r"/namespaces/([^/]+)/%s(?:/([^/]+))?" % resource, path)
            if m:
                op = resource + (".get" if m.group(2) else ".list")
                return (op if req.method == "GET" else resource + ".unsupported"), m.group(1), m.group(2)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?", path)
        if not m:
            return "unrouted", None, None
        namespace, name = m.group(1), m.group(2)
        if name is None:
            op = {"GET": "secrets.list", "POST": "secrets.create"}.get(req.method, "secrets.unsupported")
        else:
            op = {"GET": "secrets.get", "PUT": "secrets.update", "PATCH": "secrets.patch",
                  "DELETE": "secrets.delete"}.get(req.method, "secrets.unsupported")
        return op, namespace, name

    def operation(self, req):
        return self.route(req)[0]

    def fault_response(self, fault, op):
        code = fault["status"]
        reason = {429: "TooManyRequests", 503: "ServiceUnavailable", 500: "InternalError",
                  504: "Timeout", 401: "Unauthorized", 403: "Forbidden", 409: "Conflict"}.get(code, "InternalError")
        return json_response(code, status_object(code, reason, fault.get("message", "injected by kube-peer")))

    def authenticated(self, req):
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[len("Bearer "):].strip() in self.tokens:
            return True
        return bool(self.allow_client_certs and req.client_cert)

    def handle(self, req, op):
        if op == "discovery" and req.raw_path.rstrip("/") in ("/healthz", "/readyz", "/livez"):
            return Response(200, b"ok", "text/plain")
        if not self.authenticated(req):
            return json_response(401, status_object(401, "Unauthorized", "Unauthorized"))
        try:
            if op == "discovery":
                return json_response(200, self.discovery(req.raw_path.rstrip("/")))
            if op == "openapi":
                raise KubeError(404, "NotFound", "the server could not find the requested resource")
            if op == "unrouted":
                raise KubeError(404, "NotFound", "the server could not find the requested resource")
            _, namespace, name = self.route(req)
            req.summary = {"namespace": namespace, "name": name,
                           "content_type": req.headers.get("Content-Type")}
            query = parse_qs(req.query)
            dry_run = "All" in query.get("dryRun", [])
            if op == "namespaces.get":
                return json_response(200, self.namespace(name))
            resource, _, verb = op.partition(".")
            if resource in READ_ONLY_RESOURCES:
                if verb == "get":
                    return json_response(200, self.get_object(resource, namespace, name))
                if verb == "list":
                    return json_response(200, self.list_objects(resource, namespace))
                raise KubeError(405, "MethodNotAllowed", "kube-peer serves %s read only" % resource)
            if op == "secrets.get":
                return json_response(200, self.get(namespace, name))
            if op == "secrets.list":
                return json_response(200, self.list(namespace))
            if op == "secrets.delete":
                return json_response(200, self.delete(namespace, name, dry_run))
            if op == "secrets.unsupported":
                raise KubeError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            body = self.parse_body(req, op)
            if op == "secrets.create":
                return json_response(201, self.create(namespace, body, dry_run))
            if op == "secrets.update":
                return json_response(200, self.update(namespace, name, body, dry_run))
            if op == "secrets.patch":
                return json_response(200, self.patch(namespace, name, req, body, dry_run))
        except KubeError as err:
            return json_response(err.code, status_object(err.code, err.reason, err.message, err.details))
        raise AssertionError("unhandled op " + op)

    def parse_body(self, req, op):
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip()
        allowed = PATCH_TYPES if op == "secrets.patch" else ("application/json", PROTOBUF)
        if content_type == PROTOBUF and op != "secrets.patch":
            try:
                return secret_from_protobuf(req.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise KubeError(400, "BadRequest", "error decoding protobuf body: %s" % exc)
        if content_type not in allowed:
            raise KubeError(415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types "
                            "include: %s" % ", ".join(allowed))
        try:
            return json.loads(req.body)
        except ValueError as exc:
            raise KubeError(400, "BadRequest", "error decoding body: %s" % exc)

    # discovery
    def discovery(self, path):
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % self.port}]}
        if path == "/apis":
            groups = []
            for group_version in GROUP_RESOURCES:
                group, version = group_version.split("/")
                entry = {"groupVersion": group_version, "version": version}
                groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path == "/api/v1":
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
                 "verbs": SECRET_VERBS, "storageVersionHash": "S6u1pOWzb84="}] + [
                resource_entry(name, kind) for name, kind in CORE_DRY_RUN_RESOURCES]}
        if path[len("/apis/"):] in GROUP_RESOURCES:
            group_version = path[len("/apis/"):]
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                    "resources": [resource_entry(name, kind) for name, kind in GROUP_RESOURCES[group_version]]}
        return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-peer", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
                "compiler": "gc", "platform": "linux/amd64"}

    # secrets
    def next_version(self):
        self.resource_version += 1
        return str(self.resource_version)

    def get(self, namespace, name):
        obj = self.secrets.get("%s/%s" % (namespace, name))
        if obj is None:
            raise not_found(name)
        return obj

    def list(self, namespace):
        items = []
        for key in sorted(self.secrets):
            if namespace is None or key.startswith(namespace + "/"):
                item = dict(self.secrets[key])
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        return {"kind": "SecretList", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.resource_version)}, "items": items}

    def delete(self, namespace, name, dry_run):
        obj = self.get(namespace, name)
        if not dry_run:
            del self.secrets["%s/%s" % (namespace, name)]
            self.next_version()
            self.dirty = True
        return status_object(200, "", "", {"name": name, "kind": "secrets", "uid": obj["metadata"]["uid"]},
                             status="Success")

    def normalise(self, namespace, body, name_hint=None):
        """Validates a Secret body and folds stringData into data, as the API server does."""
        if not isinstance(body, dict):
            raise KubeError(400, "BadRequest", "the body must be a Secret object")
        if body.get("kind", "Secret") != "Secret" or body.get("apiVersion", "v1") != "v1":
            raise KubeError(400, "BadRequest", "the API version in the data (%s) does not match the expected API "
                            "version (v1) or kind is not Secret" % body.get("apiVersion"))
        meta = body.get("metadata") or {}
        name = meta.get("name") or name_hint
        if not name and meta.get("generateName"):
            name = meta["generateName"] + secrets.token_hex(3)[:5]
        if not name:
            raise invalid("", "metadata.name: Required value: name or generateName is required")
        if len(name) > 253 or not NAME_RE.match(name):
            raise invalid(name, "metadata.name: Invalid value: %r: a lowercase RFC 1123 subdomain must "
                          "consist of lower case alphanumeric characters, '-' or '.'" % name)
        if meta.get("namespace") not in (None, "", namespace):
            raise KubeError(400, "BadRequest", "the namespace of the provided object does not match the "
                            "namespace sent on the request")
        data = dict(body.get("data") or {})
        for key, value in data.items():
            if not DATA_KEY_RE.match(key):
                raise invalid(name, "data[%s]: Invalid value: %r: a valid config key must consist of "
                              "alphanumeric characters, '-', '_' or '.'" % (key, key))
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise KubeError(400, "BadRequest", "error decoding data[%s]: illegal base64 data" % key)
        for key, value in (body.get("stringData") or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj = {"kind": "Secret", "apiVersion": "v1",
               "metadata": {k: v for k, v in meta.items() if k in ("labels", "annotations")},
               "type": body.get("type") or "Opaque"}
        obj["metadata"].update({"name": name, "namespace": namespace})
        if data:
            obj["data"] = data
        if body.get("immutable") is not None:
            obj["immutable"] = body["immutable"]
        return obj, meta.get("resourceVersion")

    def create(self, namespace, body, dry_run):
        obj, resource_version = self.normalise(namespace, body)
        name = obj["metadata"]["name"]
        if resource_version:
            raise invalid(name, "metadata.resourceVersion: Invalid value: %r: must be empty on create"
                          % resource_version)
        if "%s/%s" % (namespace, name) in self.secrets:
            raise KubeError(409, "AlreadyExists", 'secrets "%s" already exists' % name,
                            {"name": name, "kind": "secrets"})
        obj["metadata"].update({"uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339()})
        if not dry_run:
            obj["metadata"]["resourceVersion"] = self.next_version()
            self.secrets["%s/%s" % (namespace, name)] = obj
            self.dirty = True
        return obj

    def store(self, namespace, name, current, obj, resource_version, dry_run):
        if resource_version not in (None, "") and resource_version != current["metadata"]["resourceVersion"]:
            raise conflict(name)
        if current.get("immutable") and (obj.get("data") != current.get("data") or not obj.get("immutable")):
            raise invalid(name, "data: Forbidden: field is immutable when `immutable` is set")
        obj["metadata"].update({"uid": current["metadata"]["uid"],
                                "creationTimestamp": current["metadata"]["creationTimestamp"],
                                "resourceVersion": current["metadata"]["resourceVersion"]})
        if obj == current:   # a no-op write keeps the resourceVersion, as etcd-backed storage does
            return obj
        if not dry_run:
            obj["metadata"]["resourceVersion"] = self.next_version()
            self.secrets["%s/%s" % (namespace, name)] = obj
            self.dirty = True
        return obj

    def update(self, namespace, name, body, dry_run):
        current = self.get(namespace, name)
        obj, resource_version = self.normalise(namespace, body)
        if obj["metadata"]["name"] != name:
            raise KubeError(400, "BadRequest", "the name of the object (%s) does not match the name on the "
                            "URL (%s)" % (obj["metadata"]["name"], name))
        return self.store(namespace, name, current, obj, resource_version, dry_run)

    def patch(self, namespace, name, req, patch, dry_run):
        current = self.get(namespace, name)
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == "application/json-patch+json":
            patched = json_patch(current, patch)
        else:
            if not isinstance(patch, dict):
                raise KubeError(400, "BadRequest", "merge patch must be a JSON object")
            patched = merge_patch(current, patch)
        meta = patched.get("metadata") or {}
        if meta.get("name", name) != name or meta.get("namespace", namespace) != namespace:
            raise KubeError(400, "BadRequest", "metadata.name and metadata.namespace cannot be patched")
        if meta.get("uid", current["metadata"]["uid"]) != current["metadata"]["uid"]:
            raise KubeError(400, "BadRequest", "metadata.uid cannot be patched")
        obj, resource_version = self.normalise(namespace, patched, name)
        return self.store(namespace, name, current, obj, resource_version, dry_run)

    def namespace(self, name):
        """A namespace exists while something is in it (the peer keeps no Namespace objects)."""
        keys = list(self.secrets) + [key for objects in self.objects.values() for key in objects]
        if not any(key.startswith(name + "/") for key in keys):
            raise KubeError(404, "NotFound", 'namespaces "%s" not found' % name, {"name": name, "kind": "namespaces"})
        return {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}, "status": {"phase": "Active"}}

    # configmaps and deployments: read only, put in place by the control endpoint
    def get_object(self, resource, namespace, name):
        obj = self.objects[resource].get("%s/%s" % (namespace, name))
        if obj is None:
            group = "" if resource == "configmaps" else ".apps"
            raise KubeError(404, "NotFound", '%s%s "%s" not found' % (resource, group, name),
                            {"name": name, "kind": resource})
        return obj

    def list_objects(self, resource, namespace):
        prefix, kind = READ_ONLY_RESOURCES[resource]
        items = []
        for key in sorted(self.objects[resource]):
            if key.startswith(namespace + "/"):
                item = dict(self.objects[resource][key])
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        return {"kind": kind + "List", "apiVersion": prefix.split("/", 2)[-1],
                "metadata": {"resourceVersion": str(self.resource_version)}, "items": items}

    def put_object(self, spec):
        """{"resource": "configmaps"|"deployments", "namespace", "object"}: stored as an API server
        answers it (namespace, uid, resourceVersion, creationTimestamp set)."""
        resource, namespace = spec["resource"], spec["namespace"]
        prefix, kind = READ_ONLY_RESOURCES[resource]
        obj = copy.deepcopy(spec["object"])
        if obj.get("kind") != kind:
            raise KubeError(400, "BadRequest", "a %s must have kind %s" % (resource, kind))
        meta = obj.setdefault("metadata", {})
        if not NAME_RE.match(meta.get("name", "")):
            raise KubeError(422, "Invalid", "metadata.name %r is not a valid name" % meta.get("name"))
        meta.update({"namespace": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(),
                     "resourceVersion": self.next_version()})
        if resource == "deployments":
            meta["generation"] = 1
        self.objects[resource]["%s/%s" % (namespace, meta["name"])] = obj
        self.dirty = True
        return meta

    # peer-private controls
    def control(self, body):
        result = {}
        if "set_tokens" in body:   # the bearer tokens accepted from now on (a revocation, a rotation)
            self.tokens = set(body["set_tokens"])
            result["set_tokens"] = sorted(self.tokens)
        if "delete_secret" in body:
            key = body["delete_secret"]
            if key not in self.secrets:
                raise KeyError(key)
            del self.secrets[key]
            self.next_version()
            self.dirty = True
            result["delete_secret"] = key
        if "put_object" in body:
            result["put_object"] = self.put_object(body["put_object"])
        if "delete_object" in body:   # "configmaps/ns/name" or "deployments/ns/name"
            resource, key = body["delete_object"].split("/", 1)
            del self.objects[resource][key]
            self.next_version()
            self.dirty = True
            result["delete_object"] = body["delete_object"]
        if "put_secret" in body:   # {"namespace", "name", "data": {key: base64}} — create or replace
            spec = body["put_secret"]
            namespace, name = spec["namespace"], spec["name"]
            metadata = {"name": name}
            for field in ("labels", "annotations"):
                if spec.get(field):
                    metadata[field] = spec[field]
            obj = {"kind": "Secret", "apiVersion": "v1", "metadata": metadata, "data": spec.get("data", {}),
                   "type": spec.get("type", "Opaque")}
            key = "%s/%s" % (namespace, name)
            if key in self.secrets:
                stored = self.update(namespace, name, obj, False)
            else:
                stored = self.create(namespace, obj, False)
            result["put_secret"] = stored["metadata"]
        return result


def main():
    parser = peercommon.base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--token", action="append", default=[],
                        help="bearer token accepted (repeatable; default kube-peer-token)")
    parser.add_argument("--no-client-certs", action="store_true", help="refuse client-certificate auth")
    args = parser.parse_args()
    context, ready = peercommon.tls_server(args.cert_dir or tempfile.mkdtemp(prefix="kube-peer-"))
    app = KubeApp(args.token or ["kube-peer-token"], not args.no_client_certs)
    return peercommon.run(app, args, tls_context=context, extra_ready=ready)


if __name__ == "__main__":
    sys.exit(main())
