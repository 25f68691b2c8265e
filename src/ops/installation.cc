#include "ops/installation.h"

#include <map>

#include "secrets/kubeconfig.h"

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
    // --kubeconfig wins over KUBECONFIG (--context, --namespace over theirs); passing them as
    // the environment keeps one lookup path.
    std::map<std::string, std::optional<std::string>> flags = {{"KUBECONFIG", target.kubeconfig},
                                                               {secrets::context_variable, target.kube_context},
                                                               {secrets::namespace_variable, target.kube_namespace}};
    inst.env = [process, flags](const std::string& name) -> std::optional<std::string> {
        if (auto it = flags.find(name); it != flags.end() && it->second) return it->second;
        return process(name);
    };
    inst.config = config::load(config::config_path(target.config_path, inst.env), inst.env);
    inst.secrets = std::make_unique<secrets::SecretStorages>(inst.config, inst.env);
    inst.provider = providers::make(inst.config, *inst.secrets);
    inst.db_url = target.db_url;
    return inst;
}

}  // namespace ik::ops
