#include "ops/installation.h"

#include <fmt/ranges.h>

#include "util/error.h"
#include "util/output.h"

namespace ik::ops {

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

store::KeyStore& Installation::store(bool create) {
    if (!store_) {
        std::string password = config.db_password.empty()
                                   ? ""
                                   : naming_option("dbPassword", [&] { return secrets->resolve_text(config.db_password); });
        store_ = store::open(config, password, create, db_url);
        out::detail("database: {}", store_->describe());
    }
    return *store_;
}

Installation open(const Target& target) {
    Installation inst;
    config::Environment process = config::process_environment();
    auto kubeconfig = target.kubeconfig;
    // --kubeconfig wins over KUBECONFIG; passing it as the environment keeps one lookup path.
    inst.env = [process, kubeconfig](const std::string& name) -> std::optional<std::string> {
        if (name == "KUBECONFIG" && kubeconfig) return kubeconfig;
        return process(name);
    };
    inst.config = config::load(config::config_path(target.config_path, inst.env), inst.env);
    inst.secrets = std::make_unique<secrets::SecretStorages>(inst.config, inst.env);
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
