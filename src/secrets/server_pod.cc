#include "secrets/server_pod.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include <botan/base64.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "secrets/builtin.h"
#include "secrets/kubernetes.h"
#include "util/error.h"

namespace ik::secrets {

using json = nlohmann::json;

namespace {

std::string text_at(const json& object, const char* key) {
    if (!object.is_object()) return {};
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& member(const json& object, const char* key) {
    static const json none;
    if (!object.is_object()) return none;
    auto it = object.find(key);
    return it == object.end() ? none : *it;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

std::string object_path(const std::string& ns, bool secret, const std::string& name) {
    return fmt::format("/api/v1/namespaces/{}/{}/{}", net::percent_encode(ns), secret ? "secrets" : "configmaps",
                       net::percent_encode(name));
}

std::string object_kind(bool secret) { return secret ? "secret" : "configmap"; }

// The data of a Secret or ConfigMap, decoded (a ConfigMap's binaryData is base64 too); nullopt
// when the object does not exist.
std::optional<std::map<std::string, SecretBytes>> read_data(KubeApi& api, const std::string& ns, bool secret,
                                                            const std::string& name) {
    auto body = api.get(object_path(ns, secret, name));
    if (!body) return std::nullopt;
    std::string where = fmt::format("{} {}/{}", object_kind(secret), ns, name);
    std::map<std::string, SecretBytes> out;
    auto decoded = [&](const std::string& key, const std::string& encoded) {
        try {
            return Botan::base64_decode(encoded);
        } catch (const std::exception&) {
            fail(ExitCode::provider, "{} key {}: the value is not base64", where, key);
        }
    };
    if (secret) {
        KubernetesSecret parsed = parse_kubernetes_secret(*body, where);
        for (const auto& [key, encoded] : parsed.data) out[key] = decoded(key, encoded);
        return out;
    }
    json map = json::parse(*body, nullptr, false);
    if (!map.is_object()) fail(ExitCode::provider, "{}: answer is not a JSON object", where);
    for (const auto& [key, value] : member(map, "data").items())
        if (value.is_string()) out[key] = SecretBytes(value.get_ref<const std::string&>().begin(), value.get_ref<const std::string&>().end());
    for (const auto& [key, value] : member(map, "binaryData").items())
        if (value.is_string()) out[key] = decoded(key, value.get<std::string>());
    return out;
}

std::string as_string(const SecretBytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

}  // namespace

DeploymentName parse_deployment_name(const std::string& text) {
    size_t slash = text.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == text.size() || text.find('/', slash + 1) != std::string::npos)
        fail(ExitCode::usage, "--kube-deployment \"{}\" is not NAMESPACE/NAME", text);
    return {text.substr(0, slash), text.substr(slash + 1)};
}

// --- the mounts ---------------------------------------------------------------------------

struct PodMount {
    std::string mount_path;
    std::string sub_path;
    std::string volume;
    std::string volume_kind;  // secret | configMap | what the Deployment says (emptyDir, …)
    std::string object;
    std::map<std::string, std::string> items;  // path in the volume → data key
};

struct PodLayout {
    DeploymentName deployment;
    std::vector<PodMount> mounts;  // longest mount path first

    std::string name() const { return deployment.namespace_name + "/" + deployment.name; }

    PodFile locate(const std::string& path) const {
        for (const PodMount& mount : mounts) {
            std::string relative;
            if (!mount.sub_path.empty()) {
                if (path != mount.mount_path) continue;
                relative = mount.sub_path;
            } else if (starts_with(path, mount.mount_path + "/")) {
                relative = path.substr(mount.mount_path.size() + 1);
            } else {
                continue;
            }
            if (mount.volume_kind != "secret" && mount.volume_kind != "configMap")
                fail(ExitCode::usage, "file {} is on volume {} ({}) of deployment {}, which infra-keys cannot reach "
                     "through the Kubernetes API", path, mount.volume, mount.volume_kind, name());
            // With `items`, the volume shows only the keys listed, each at its own path; a file a
            // key rotation adds beside them (KEY.new, KEY.<time>.retired) keeps its own name as key.
            auto item = mount.items.find(relative);
            std::string key = item != mount.items.end() ? item->second : relative;
            if (key.empty() || key.find('/') != std::string::npos)
                fail(ExitCode::usage, "file {} is not a key of {} {} (volume {} of deployment {})", path,
                     object_kind(mount.volume_kind == "secret"), mount.object, mount.volume, name());
            return {path, mount.volume_kind == "secret", mount.object, key};
        }
        fail(ExitCode::usage, "file {} is not on a Secret or ConfigMap volume of deployment {}", path, name());
    }

    // The path at which `key` of the volume holding `beside` appears (for names_with_prefix).
    std::string path_of_key(const std::string& beside, const std::string& key) const {
        for (const PodMount& mount : mounts)
            if (mount.sub_path.empty() && starts_with(beside, mount.mount_path + "/")) {
                for (const auto& [item_path, item_key] : mount.items)
                    if (item_key == key) return mount.mount_path + "/" + item_path;
                return mount.mount_path + "/" + key;
            }
        return beside.substr(0, beside.rfind('/') + 1) + key;
    }
};

namespace {

std::vector<PodMount> mounts_of(const json& container, const json& pod_spec) {
    std::map<std::string, const json*> volumes;
    for (const json& volume : member(pod_spec, "volumes"))
        volumes[text_at(volume, "name")] = &volume;
    std::vector<PodMount> mounts;
    for (const json& entry : member(container, "volumeMounts")) {
        PodMount mount{text_at(entry, "mountPath"), text_at(entry, "subPath"), text_at(entry, "name"), "", "", {}};
        while (mount.mount_path.size() > 1 && mount.mount_path.back() == '/') mount.mount_path.pop_back();
        auto volume = volumes.find(mount.volume);
        if (volume != volumes.end()) {
            for (const auto& [kind, source] : volume->second->items()) {
                if (kind == "name") continue;
                mount.volume_kind = kind;
                mount.object = kind == "secret" ? text_at(source, "secretName") : text_at(source, "name");
                for (const json& item : member(source, "items"))
                    mount.items[text_at(item, "path")] = text_at(item, "key");
            }
        }
        mounts.push_back(std::move(mount));
    }
    std::stable_sort(mounts.begin(), mounts.end(),
                     [](const PodMount& a, const PodMount& b) { return a.mount_path.size() > b.mount_path.size(); });
    return mounts;
}

std::vector<std::string> argv_of(const json& container) {
    std::vector<std::string> argv;
    for (const char* field : {"command", "args"})
        for (const json& arg : member(container, field))
            if (arg.is_string()) argv.push_back(arg.get<std::string>());
    return argv;
}

// The server's own flag: `-f FILE`, `--config-file FILE` (or with `=`).
std::optional<std::string> config_file_argument(const std::vector<std::string>& argv) {
    for (size_t i = 0; i < argv.size(); ++i) {
        if ((argv[i] == "-f" || argv[i] == "--config-file") && i + 1 < argv.size()) return argv[i + 1];
        for (const char* prefix : {"-f=", "--config-file="})
            if (starts_with(argv[i], prefix)) return argv[i].substr(std::string(prefix).size());
    }
    return std::nullopt;
}

// The container running `infra server`; a Deployment of one container is taken as it is.
const json& server_container(const json& pod_spec, const std::string& deployment) {
    const json& containers = member(pod_spec, "containers");
    std::vector<std::string> names;
    for (const json& container : containers) {
        auto argv = argv_of(container);
        if (std::find(argv.begin(), argv.end(), "server") != argv.end()) return container;
        names.push_back(text_at(container, "name"));
    }
    if (containers.is_array() && containers.size() == 1) return containers[0];
    fail(ExitCode::usage, "deployment {}: no container runs the Infra server (`server -f FILE`; containers: {})",
         deployment, names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", ")));
}

}  // namespace

// --- the environment ----------------------------------------------------------------------

struct PodEnv {
    std::shared_ptr<KubeApi> api;
    std::string namespace_name;
    std::string deployment;
    json env;
    json env_from;
    std::map<std::string, std::optional<std::string>> resolved;
    std::optional<std::map<std::string, std::string>> from_sources;  // envFrom, read once

    // The data key `key` of the object a *KeyRef names, or nullopt when optional and missing.
    std::optional<std::string> key_ref(const std::string& variable, const json& ref, bool secret) {
        std::string object = text_at(ref, "name"), key = text_at(ref, "key");
        bool optional = member(ref, "optional").is_boolean() && member(ref, "optional").get<bool>();
        auto data = read_data(*api, namespace_name, secret, object);
        std::string where = fmt::format("env {} of deployment {}: {} {}/{}", variable, deployment, object_kind(secret),
                                        namespace_name, object);
        if (!data) {
            if (optional) return std::nullopt;
            fail(ExitCode::usage, "{} does not exist", where);
        }
        auto value = data->find(key);
        if (value == data->end()) {
            if (optional) return std::nullopt;
            fail(ExitCode::usage, "{} has no key {}", where, key);
        }
        return as_string(value->second);
    }

    std::optional<std::string> defined(const std::string& name) {
        const json* found = nullptr;
        for (const json& entry : env)  // a name given twice: the last wins, as in the kubelet
            if (text_at(entry, "name") == name) found = &entry;
        if (!found) return from_env_from(name);
        if (found->contains("value")) return text_at(*found, "value");
        const json& from = member(*found, "valueFrom");
        if (from.contains("secretKeyRef")) return key_ref(name, from["secretKeyRef"], true);
        if (from.contains("configMapKeyRef")) return key_ref(name, from["configMapKeyRef"], false);
        if (text_at(member(from, "fieldRef"), "fieldPath") == "metadata.namespace") return namespace_name;
        return std::nullopt;
    }

    std::optional<std::string> from_env_from(const std::string& name) {
        if (!from_sources) {
            std::map<std::string, std::string> values;
            for (const json& source : env_from) {
                bool secret = source.contains("secretRef");
                const json& ref = member(source, secret ? "secretRef" : "configMapRef");
                std::string object = text_at(ref, "name");
                auto data = read_data(*api, namespace_name, secret, object);
                if (!data) {
                    if (member(ref, "optional").is_boolean() && member(ref, "optional").get<bool>()) continue;
                    fail(ExitCode::usage, "envFrom of deployment {}: {} {}/{} does not exist", deployment,
                         object_kind(secret), namespace_name, object);
                }
                for (const auto& [key, value] : *data) values[text_at(source, "prefix") + key] = as_string(value);
            }
            from_sources = std::move(values);
        }
        auto it = from_sources->find(name);
        return it == from_sources->end() ? std::nullopt : std::optional<std::string>(it->second);
    }

    std::optional<std::string> lookup(const std::string& name) {
        auto cached = resolved.find(name);
        if (cached != resolved.end()) return cached->second;
        auto value = defined(name);
        resolved[name] = value;
        return value;
    }
};

// --- the pod's files as a secret storage ---------------------------------------------------

namespace {

// NAME is a path in the server container (joined to the entry's `path`, as the file storage
// does); Secret-backed files go through the Kubernetes secret storage (conditional writes that
// keep the Secret's labels and annotations), ConfigMap-backed ones are read only.
class PodFileStorage : public SecretStorage {
public:
    PodFileStorage(std::shared_ptr<const PodLayout> layout, std::shared_ptr<KubeApi> api, const config::SecretStorage& entry)
        : layout_(std::move(layout)),
          api_(std::move(api)),
          secrets_(api_->connection(), layout_->deployment.namespace_name),
          base_(entry.get("path")),
          encoding_(encoding_of(entry)) {}

    std::string kind() const override { return "file"; }

    std::optional<SecretBytes> get(const std::string& name) override {
        PodFile file = layout_->locate(path_of(name));
        std::optional<SecretBytes> stored;
        if (file.secret) {
            stored = secrets_.get(file.object + "/" + file.key);
        } else if (auto data = read_data(*api_, layout_->deployment.namespace_name, false, file.object)) {
            if (auto it = data->find(file.key); it != data->end()) stored = std::move(it->second);
        }
        if (!stored) return std::nullopt;
        return decode(encoding_, *stored, describe(name));
    }
    void set(const std::string& name, const SecretBytes& value) override {
        secrets_.set(secret_name(name), encode(encoding_, value));
    }
    void create(const std::string& name, const SecretBytes& value) override {
        secrets_.create(secret_name(name), encode(encoding_, value));
    }
    void remove(const std::string& name) override { secrets_.remove(secret_name(name)); }
    void rename(const std::string& from, const std::string& to) override {
        secrets_.rename(secret_name(from), secret_name(to));
    }
    std::vector<std::string> names_with_prefix(const std::string& prefix) override {
        std::string path = path_of(prefix);
        PodFile file = layout_->locate(path);
        if (!file.secret) return {};
        std::vector<std::string> out;
        for (const std::string& name : secrets_.names_with_prefix(file.object + "/" + file.key))
            out.push_back(layout_->path_of_key(path, name.substr(file.object.size() + 1)));
        return out;
    }
    std::string describe(const std::string& name) const override {
        std::string path = path_of(name);
        try {
            PodFile file = layout_->locate(path);
            return fmt::format("file {} ({} {}/{} key {})", path, object_kind(file.secret),
                               layout_->deployment.namespace_name, file.object, file.key);
        } catch (const Error&) {
            return fmt::format("file {} of deployment {}", path, layout_->name());
        }
    }
    std::vector<std::string> warnings(const std::string& name) override {
        PodFile file = layout_->locate(path_of(name));
        return file.secret ? secrets_.warnings(file.object + "/" + file.key) : std::vector<std::string>{};
    }
    std::string wrong_key_hint(const std::string& name) const override {
        PodFile file = layout_->locate(path_of(name));
        return file.secret ? secrets_.wrong_key_hint(file.object + "/" + file.key) : std::string();
    }

private:
    std::string path_of(const std::string& name) const {
        if (base_.empty() || starts_with(name, "/")) return base_.empty() ? name : base_ + name;
        return base_ + "/" + name;
    }
    // The Secret data key behind a file infra-keys writes; a ConfigMap is never written.
    std::string secret_name(const std::string& name) const {
        PodFile file = layout_->locate(path_of(name));
        if (!file.secret)
            fail(ExitCode::usage, "{} is on a ConfigMap volume; infra-keys writes keys only to Secrets", describe(name));
        return file.object + "/" + file.key;
    }

    std::shared_ptr<const PodLayout> layout_;
    std::shared_ptr<KubeApi> api_;
    KubernetesSecretStorage secrets_;
    std::string base_;
    Encoding encoding_;
};

}  // namespace

// --- the Deployment -----------------------------------------------------------------------

ServerPod::ServerPod(KubeConnection connection, DeploymentName deployment)
    : connection_(std::move(connection)), deployment_(std::move(deployment)) {
    auto api = std::make_shared<KubeApi>(connection_);
    std::string name = deployment_.namespace_name + "/" + deployment_.name;
    auto body = api->get(fmt::format("/apis/apps/v1/namespaces/{}/deployments/{}",
                                     net::percent_encode(deployment_.namespace_name), net::percent_encode(deployment_.name)));
    if (!body) fail(ExitCode::usage, "deployment {} does not exist [{}]", name, connection_.source);
    json object = json::parse(*body, nullptr, false);
    const json& pod_spec = member(member(member(object, "spec"), "template"), "spec");
    const json& container = server_container(pod_spec, name);

    auto layout = std::make_shared<PodLayout>();
    layout->deployment = deployment_;
    layout->mounts = mounts_of(container, pod_spec);
    layout_ = layout;
    env_ = std::make_shared<PodEnv>();
    env_->api = api;
    env_->namespace_name = deployment_.namespace_name;
    env_->deployment = name;
    env_->env = member(container, "env").is_array() ? member(container, "env") : json::array();
    env_->env_from = member(container, "envFrom").is_array() ? member(container, "envFrom") : json::array();

    auto path = config_file_argument(argv_of(container));
    if (!path) path = env_->lookup("INFRA_SERVER_CONFIG_FILE");
    if (!path || path->empty())
        fail(ExitCode::usage, "deployment {} container {}: the server is given no config file (`-f FILE` or "
             "INFRA_SERVER_CONFIG_FILE)", name, text_at(container, "name"));
    PodFile file = layout_->locate(*path);
    auto data = read_data(*api, deployment_.namespace_name, file.secret, file.object);
    std::string object_name = fmt::format("{} {}/{}", object_kind(file.secret), deployment_.namespace_name, file.object);
    if (!data) fail(ExitCode::usage, "{} (the server's config file {} in deployment {}) does not exist", object_name, *path, name);
    auto text = data->find(file.key);
    if (text == data->end())
        fail(ExitCode::usage, "{} has no key {} (the server's config file {} in deployment {})", object_name, file.key,
             *path, name);
    config_text_ = as_string(text->second);
    config_source_ = fmt::format("{} key {} ({} of deployment {})", object_name, file.key, *path, name);
}

ServerPod::~ServerPod() = default;
ServerPod::ServerPod(ServerPod&&) noexcept = default;

PodFile ServerPod::locate(const std::string& path) const { return layout_->locate(path); }

config::Environment ServerPod::environment(config::Environment local) const {
    return [pod = env_, local = std::move(local)](const std::string& name) -> std::optional<std::string> {
        // `kubernetes:` storages default to the namespace the server runs in, as in the pod.
        if (name == namespace_variable) return pod->namespace_name;
        if (auto value = pod->lookup(name)) return value;
        if (starts_with(name, "INFRA_SERVER_")) return std::nullopt;
        return local(name);
    };
}

void ServerPod::mount_into(SecretStorages& storages, const config::Config& cfg, const config::Environment& env) const {
    auto api = std::make_shared<KubeApi>(connection_);
    storages.add("file", std::make_unique<PodFileStorage>(layout_, api, config::SecretStorage{"file", "file", {}, 0}));
    bool kubernetes_redefined = false;
    for (const auto& entry : cfg.secrets) {
        if (entry.kind == "file") storages.add(entry.name, std::make_unique<PodFileStorage>(layout_, api, entry));
        kubernetes_redefined = kubernetes_redefined || entry.name == "kubernetes";
    }
    if (!kubernetes_redefined)
        storages.add("kubernetes", make_storage({"kubernetes", "kubernetes", {{"namespace", deployment_.namespace_name}}, 0}, env));
}

}  // namespace ik::secrets
