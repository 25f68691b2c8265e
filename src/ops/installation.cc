#include "ops/installation.h"

#include <map>

#include <fmt/ranges.h>

#include "ops/release.h"
#include "secrets/kubeconfig.h"
#include "secrets/server_pod.h"
#include "util/error.h"
#include "util/output.h"

namespace ik::ops {
namespace {

// A configuration error met while using the option `where` ("dbPassword"), named so: "secret
// env:X not found" alone does not say which option refers to it.
template <typename Use>
auto naming_option(const std::string& where, Use use) -> decltype(use()) {
    try {
        return use();
    } catch (const Error& e) {
        if (e.code() != ExitCode::usage) throw;
        throw Error(e.code(), fmt::format("{}: {}", where, e.what()), e.hint());
    }
}

// Infra up to v0.20 reads dbPassword as a secret reference, v0.21 as the password itself, and
// which release the database is can be read only once connected. So the reference first, as all
// releases but the last read it; if it does not resolve or the database refuses it, the text as
// it stands, kept only if that database then turns out to be a release that reads it so.
std::unique_ptr<store::KeyStore> open_store(Installation& inst, bool create) {
    const std::string& password = inst.config.db_password;
    bool reference = password.find(':') != std::string::npos;  // else plaintext for every release
    if (!reference || !inst.config.uses_postgres() || inst.db_url)
        return store::open(inst.config, reference ? naming_option("dbPassword", [&] { return inst.secrets->resolve_text(password); }) : password, create,
                           inst.db_url, inst.db_url_role);
    std::optional<Error> as_reference;
    try {
        return store::open(inst.config, naming_option("dbPassword", [&] { return inst.secrets->resolve_text(password); }), create, inst.db_url);
    } catch (const Error& e) {
        as_reference = e;
    }
    std::unique_ptr<store::KeyStore> literal;
    try {
        literal = store::open(inst.config, password, create, inst.db_url);
    } catch (const Error&) {
        throw *as_reference;
    }
    auto release = detect_release(*literal);
    if (!release || !release->literal_db_password) throw *as_reference;
    return literal;
}

// The server as its Deployment runs it: the config its ConfigMap mounts, read with the pod's
// environment, and its files in the Secrets mounted there. The config's dbHost is a name inside
// the cluster, so --db-url (e.g. after `kubectl port-forward`) says only where to reach it.
void open_deployment(Installation& inst, const std::string& deployment) {
    secrets::ServerPod pod(secrets::kube_connection(inst.env), secrets::parse_deployment_name(deployment));
    inst.env = pod.environment(inst.env);
    inst.config = config::parse(pod.config_text(), pod.config_source(), inst.env);
    inst.secrets = std::make_unique<secrets::SecretStorages>(inst.config, inst.env);
    pod.mount_into(*inst.secrets, inst.config, inst.env);
    inst.db_url_role = store::DbUrlRole::reaches_config;
}

}  // namespace

store::KeyStore& Installation::store(bool create) {
    if (!store_) {
        store_ = open_store(*this, create);
        out::detail("database: {}", store_->describe());
    }
    return *store_;
}

Installation open(const Target& target) {
    Installation inst;
    config::Environment process = config::process_environment();
    // --kubeconfig wins over KUBECONFIG (--context, --namespace over theirs); passing them as
    // the environment keeps one lookup path.
    std::map<std::string, std::optional<std::string>> flags = {{"KUBECONFIG", target.kubeconfig},
                                                               {secrets::context_variable, target.kube_context},
                                                               {secrets::namespace_variable, target.kube_namespace}};
    inst.env = [process, flags](const std::string& name) -> std::optional<std::string> {
        if (auto it = flags.find(name); it != flags.end() && it->second) return it->second;
        return process(name);
    };
    if (target.kube_deployment) {
        open_deployment(inst, *target.kube_deployment);
    } else {
        inst.config = config::load(config::config_path(target.config_path, inst.env), inst.env);
        inst.secrets = std::make_unique<secrets::SecretStorages>(inst.config, inst.env);
    }
    config::KeyProvider entry = inst.config.active_provider();
    inst.provider = naming_option(
        entry.line ? fmt::format("the {} entry of keys: (line {})", entry.kind, entry.line) : entry.kind + " provider",
        [&] { return providers::make(inst.config, *inst.secrets); });
    out::detail("config: {}{}", inst.config.source.empty() ? "none, the server's defaults" : inst.config.source,
                inst.config.overrides.empty() ? "" : fmt::format(" (overridden by {})", fmt::join(inst.config.overrides, ", ")));
    out::detail("root key: {}", inst.provider->describe());
    inst.db_url = target.db_url;
    return inst;
}

}  // namespace ik::ops
