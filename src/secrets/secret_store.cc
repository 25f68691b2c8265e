#include "secrets/secret_store.h"

#include <cctype>

#include "secrets/builtin.h"
#include "secrets/kubernetes.h"
#include "util/error.h"

namespace ik::secrets {
namespace {

config::SecretStorage builtin_entry(const std::string& kind) { return {kind, kind, {}, 0}; }

// Built only when first used, so loading a config never contacts a cluster; applies the
// server's reference rules (sanitising, OBJECT/KEY) before the API storage sees a name.
class LazyKubernetesStorage : public SecretStorage {
public:
    LazyKubernetesStorage(config::SecretStorage entry, config::Environment env)
        : entry_(std::move(entry)), env_(std::move(env)) {}
    std::string kind() const override { return "kubernetes"; }
    std::optional<SecretBytes> get(const std::string& name) override { return real().get(kubernetes_secret_name(name)); }
    void set(const std::string& name, const SecretBytes& value) override {
        real().set(kubernetes_secret_name(name), value);
    }
    void remove(const std::string& name) override { real().remove(kubernetes_secret_name(name)); }
    void create(const std::string& name, const SecretBytes& value) override {
        real().create(kubernetes_secret_name(name), value);
    }
    void rename(const std::string& from, const std::string& to) override {
        real().rename(kubernetes_secret_name(from), kubernetes_secret_name(to));
    }
    std::vector<std::string> names_with_prefix(const std::string& prefix) override {
        return real().names_with_prefix(prefix);
    }
    std::vector<std::string> warnings(const std::string& name) override {
        return real().warnings(kubernetes_secret_name(name));
    }
    std::string wrong_key_hint(const std::string& name) const override {
        return real_ ? real_->wrong_key_hint(kubernetes_secret_name(name)) : std::string();
    }
    std::string describe(const std::string& name) const override {
        if (real_) return real_->describe(name);
        return fmt::format("kubernetes secret {}", name);
    }

private:
    SecretStorage& real() {
        if (!real_) real_ = make_kubernetes_storage(entry_, env_);
        return *real_;
    }
    config::SecretStorage entry_;
    config::Environment env_;
    std::unique_ptr<SecretStorage> real_;
};

bool set_and_not_empty(const config::Environment& env, const std::string& name) {
    auto value = env(name);
    return value && !value->empty();
}

// The server defines the `kubernetes` storage only inside a cluster. infra-keys also runs from an
// operator's machine against that cluster, so an explicit kubeconfig (KUBECONFIG, which
// --kubeconfig sets) makes it available too; a kubeconfig merely lying in ~/.kube does not,
// so a plain workstation never silently talks to whatever cluster is current.
bool kubernetes_available(const config::Environment& env) {
    return set_and_not_empty(env, "KUBERNETES_SERVICE_HOST") || set_and_not_empty(env, "KUBECONFIG");
}

bool looks_like_storage_name(const std::string& text) {
    if (text.empty() || text.size() > 64) return false;
    for (unsigned char c : text)
        if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
    return true;
}

}  // namespace

std::unique_ptr<SecretStorage> make_storage(const config::SecretStorage& entry, const config::Environment& env) {
    if (entry.kind == "plaintext") return make_plaintext_storage(entry);
    if (entry.kind == "env") return make_env_storage(entry, env);
    if (entry.kind == "file") return make_file_storage(entry);
    if (entry.kind == "kubernetes") return std::make_unique<LazyKubernetesStorage>(entry, env);
    return make_unsupported_storage(entry);
}

SecretStorages::SecretStorages(const config::Config& cfg, const config::Environment& env) {
    for (const char* kind : {"plaintext", "env", "file"}) add(kind, make_storage(builtin_entry(kind), env));
    if (kubernetes_available(env)) add("kubernetes", make_storage(builtin_entry("kubernetes"), env));
    // Entries may redefine a built-in name (e.g. `file` with a base path); the loader has refused duplicates.
    for (const auto& entry : cfg.secrets) add(entry.name, make_storage(entry, env));
}

void SecretStorages::add(const std::string& name, std::unique_ptr<SecretStorage> storage) {
    storages_[name] = std::move(storage);
}

bool SecretStorages::has(const std::string& name) const { return storages_.count(name) != 0; }

SecretStorage& SecretStorages::named(const std::string& name) {
    auto it = storages_.find(name);
    if (it != storages_.end()) return *it->second;
    if (name == "kubernetes")
        throw Error(ExitCode::usage, "secret storage \"kubernetes\" is not available outside a cluster",
                    "pass --kubeconfig or set KUBECONFIG, or define it under secrets:");
    fail(ExitCode::usage, "unknown secret storage \"{}\" (not built in and not defined under secrets:)", name);
}

SecretBytes SecretStorages::resolve(const std::string& reference) {
    size_t colon = reference.find(':');
    if (colon == std::string::npos) return SecretBytes(reference.begin(), reference.end());
    std::string storage = reference.substr(0, colon);
    std::string name = reference.substr(colon + 1);
    if (!has(storage) && storage != "kubernetes") {
        // A value with a colon that names no storage may itself be a secret: name it only if it
        // looks like a storage name.
        if (looks_like_storage_name(storage))
            fail(ExitCode::usage, "secret reference names unknown secret storage \"{}\"", storage);
        fail(ExitCode::usage, "a secret reference names an unknown secret storage");
    }
    SecretStorage& store = named(storage);
    auto value = store.get(name);
    if (!value) fail(ExitCode::usage, "secret {}:{} not found", storage, name);
    return std::move(*value);
}

std::string SecretStorages::resolve_text(const std::string& reference) {
    SecretBytes value = resolve(reference);
    return std::string(value.begin(), value.end());
}

}  // namespace ik::secrets
