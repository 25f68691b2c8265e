#include "secrets/kubernetes.h"

#include <botan/base64.h>
#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/secret_json.h"

namespace ik::secrets {
namespace {

using json = nlohmann::json;

struct SecretName {
    std::string object;
    std::string key;
};

SecretName split_name(const std::string& name) {
    size_t slash = name.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == name.size())
        fail(ExitCode::usage, "kubernetes secret name \"{}\" is not OBJECT/KEY", name);
    return {name.substr(0, slash), name.substr(slash + 1)};
}

}  // namespace

KubernetesSecretStorage::KubernetesSecretStorage(KubeConnection connection, const std::string& namespace_option)
    : api_(std::move(connection)),
      namespace_(!namespace_option.empty()                   ? namespace_option
                 : !api_.connection().namespace_name.empty() ? api_.connection().namespace_name
                                                             : "default") {}

std::string KubernetesSecretStorage::describe(const std::string& name) const {
    size_t slash = name.find('/');
    if (slash == std::string::npos) return fmt::format("kubernetes secret {}/{}", namespace_, name);
    return fmt::format("kubernetes secret {}/{} key {}", namespace_, name.substr(0, slash), name.substr(slash + 1));
}

std::string KubernetesSecretStorage::object_path(const std::string& object) const {
    std::string path = "/api/v1/namespaces/" + net::percent_encode(namespace_) + "/secrets";
    return object.empty() ? path : path + "/" + net::percent_encode(object);
}

std::optional<KubernetesSecretStorage::Secret> KubernetesSecretStorage::read(const std::string& object) {
    auto body = api_.get(object_path(object));
    if (!body) return std::nullopt;
    return parse_kubernetes_secret(*body, api_.where({"GET", api_.url(object_path(object)), {}, {}}));
}

KubernetesSecret parse_kubernetes_secret(std::string_view body, const std::string& where) {
    SecretJson parsed = SecretJson::parse(body, nullptr, false);
    if (!parsed.is_object()) fail(ExitCode::provider, "{}: answer is not a JSON object", where);
    KubernetesSecret secret;
    // Read field by field: a resourceVersion of another type must be a refusal, not a type_error.
    auto metadata = parsed.find("metadata");
    if (metadata != parsed.end() && metadata->is_object()) {
        auto version = metadata->find("resourceVersion");
        if (version != metadata->end() && version->is_string())
            secret.resource_version = std::string(version->get_ref<const SecretString&>());
        secret.metadata_json = std::string(metadata->dump());
    }
    auto type = parsed.find("type");
    if (type != parsed.end() && type->is_string()) secret.type = std::string(type->get_ref<const SecretString&>());
    auto data = parsed.find("data");
    if (data != parsed.end() && data->is_object())
        for (auto& [key, value] : data->items())
            if (value.is_string()) secret.data[std::string(key)] = std::string(value.get_ref<const SecretString&>());
    return secret;
}

std::optional<SecretBytes> KubernetesSecretStorage::get(const std::string& name) {
    SecretName n = split_name(name);
    auto secret = read(n.object);
    if (!secret) return std::nullopt;
    auto it = secret->data.find(n.key);
    if (it == secret->data.end()) return std::nullopt;
    try {
        SecretBytes value = Botan::base64_decode(it->second);
        for (auto& [key, encoded] : secret->data) scrub(encoded);
        return value;
    } catch (const std::exception&) {
        fail(ExitCode::provider, "{}: the value is not base64", describe(name));
    }
}

void KubernetesSecretStorage::set(const std::string& name, const SecretBytes& value) {
    SecretName n = split_name(name);
    set_many(n.object, {{n.key, value}});
}

void KubernetesSecretStorage::remove(const std::string& name) {
    SecretName n = split_name(name);
    auto secret = read(n.object);
    if (!secret || !secret->data.count(n.key)) return;
    set_many(n.object, {{n.key, std::nullopt}});
}

std::vector<std::string> KubernetesSecretStorage::names_with_prefix(const std::string& prefix) {
    size_t slash = prefix.find('/');
    if (slash == std::string::npos) return {};
    std::string object = prefix.substr(0, slash), key_prefix = prefix.substr(slash + 1);
    auto secret = read(object);
    std::vector<std::string> out;
    if (!secret) return out;
    for (auto& [key, encoded] : secret->data) {
        if (key.rfind(key_prefix, 0) == 0) out.push_back(object + "/" + key);
        scrub(encoded);
    }
    return out;  // std::map keeps them sorted
}

std::vector<std::string> KubernetesSecretStorage::warnings(const std::string& name) {
    SecretName n = split_name(name);
    auto secret = read(n.object);
    if (!secret) return {};
    for (auto& [key, encoded] : secret->data) scrub(encoded);
    json metadata = json::parse(secret->metadata_json, nullptr, false);
    if (!metadata.is_object()) return {};
    auto text_at = [&metadata](const char* map, const char* key) {
        const json& values = metadata.value(map, json::object());
        return values.is_object() ? values.value(key, std::string()) : std::string();
    };
    bool helm_managed = text_at("labels", "app.kubernetes.io/managed-by") == "Helm" ||
                        !text_at("annotations", "meta.helm.sh/release-name").empty();
    if (!helm_managed || text_at("annotations", "helm.sh/resource-policy") == "keep") return {};
    return {fmt::format("kubernetes secret {}/{} is managed by Helm without the annotation "
                        "helm.sh/resource-policy: keep: `helm uninstall` would delete the root key",
                        namespace_, n.object)};
}

std::string KubernetesSecretStorage::wrong_key_hint(const std::string& name) const {
    return fmt::format("if a GitOps tool rendered the Infra Helm chart without a cluster (helm template, "
                       "Argo CD, Flux), Helm's lookup was empty and it replaced {} with a new random key: "
                       "restore the old key (infra-keys restore BACKUP, or the Secret's previous value) "
                       "and keep the server stopped until then",
                       describe(name));
}

void KubernetesSecretStorage::create(const std::string& name, const SecretBytes& value) {
    SecretName n = split_name(name);
    auto current = read(n.object);
    if (current && current->data.count(n.key))
        fail(ExitCode::refused, "{} already exists; not replacing it", describe(name));
    write(n.object, current, {{n.key, value}});
}

void KubernetesSecretStorage::rename(const std::string& from, const std::string& to) {
    SecretName source = split_name(from), target = split_name(to);
    if (source.object != target.object) return SecretStorage::rename(from, to);
    auto current = read(source.object);
    if (!current || !current->data.count(source.key))
        fail(ExitCode::provider, "cannot move {}: it does not exist", describe(from));
    SecretBytes value;
    try {
        value = Botan::base64_decode(current->data.at(source.key));
    } catch (const std::exception&) {
        fail(ExitCode::provider, "{}: the value is not base64", describe(from));
    }
    write(source.object, current, {{target.key, value}, {source.key, std::nullopt}});
    for (auto& [key, encoded] : current->data) scrub(encoded);
}

void KubernetesSecretStorage::set_many(const std::string& object,
                                       const std::map<std::string, std::optional<SecretBytes>>& keys) {
    write(object, read(object), keys);
}

void KubernetesSecretStorage::write(const std::string& object, const std::optional<Secret>& current,
                                    const std::map<std::string, std::optional<SecretBytes>>& keys) {
    SecretJson data = SecretJson::object();
    for (const auto& [key, value] : keys)
        data[SecretString(key)] = value ? SecretJson(base64_secret(*value)) : SecretJson(nullptr);

    net::Request request;
    if (current) {
        // An update (PUT) of the whole Secret as read, so RBAC needs only get and update on it; the
        // resourceVersion read makes it conditional (a change since → 409), and the labels and
        // annotations read (helm.sh/resource-policy: keep, the chart's labels) go back unchanged.
        SecretJson merged = SecretJson::object();
        for (const auto& [key, encoded] : current->data) merged[SecretString(key)] = SecretString(encoded);
        for (auto& [key, value] : data.items()) {
            if (value.is_null()) merged.erase(key);
            else merged[key] = value;
        }
        SecretJson metadata = SecretJson::parse(current->metadata_json, nullptr, false);
        if (!metadata.is_object()) metadata = SecretJson{{"name", object}, {"namespace", namespace_}};
        metadata["resourceVersion"] = current->resource_version;
        metadata.erase("managedFields");
        request = {"PUT", api_.url(object_path(object)), {{"Content-Type", "application/json"}},
                   SecretJson{{"apiVersion", "v1"}, {"kind", "Secret"}, {"type", current->type}, {"metadata", metadata},
                              {"data", merged}}.dump()};
    } else {
        SecretJson created = SecretJson::object();
        for (auto& [key, value] : data.items())
            if (!value.is_null()) created[key] = value;
        if (created.empty()) return;  // deleting keys of a Secret that does not exist
        request = {"POST", api_.url(object_path("")), {{"Content-Type", "application/json"}},
                   SecretJson{{"apiVersion", "v1"}, {"kind", "Secret"}, {"type", "Opaque"},
                        {"metadata", {{"name", object}, {"namespace", namespace_}}}, {"data", created}}
                       .dump()};
    }

    net::Response response = api_.send(request);
    scrub(request.body);
    if (response.status == 409)
        fail(ExitCode::refused, "kubernetes secret {}/{} changed concurrently; nothing written", namespace_, object);
    if (response.status != 200 && response.status != 201) api_.fail_with(request, response);
}

std::unique_ptr<SecretStorage> make_kubernetes_storage(const config::SecretStorage& entry,
                                                       const config::Environment& env) {
    return std::make_unique<KubernetesSecretStorage>(kube_connection(env), entry.get("namespace"));
}

}  // namespace ik::secrets
