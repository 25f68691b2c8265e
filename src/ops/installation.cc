#include "ops/installation.h"

namespace ik::ops {

store::KeyStore& Installation::store(bool create) {
    if (!store_) {
        std::string password = config.db_password.empty() ? "" : secrets->resolve_text(config.db_password);
        store_ = store::open(config, password, create, db_url);
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
    inst.provider = providers::make(inst.config, *inst.secrets);
    inst.db_url = target.db_url;
    return inst;
}

}  // namespace ik::ops
