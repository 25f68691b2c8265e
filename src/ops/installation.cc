#include "ops/installation.h"

#include "ops/release.h"
#include "util/error.h"

namespace ik::ops {
namespace {

// Infra up to v0.20 reads dbPassword as a secret reference, v0.21 as the password itself, and
// which release the database is can be read only once connected. So the reference first, as all
// releases but the last read it; if it does not resolve or the database refuses it, the text as
// it stands, kept only if that database then turns out to be a release that reads it so.
std::unique_ptr<store::KeyStore> open_store(Installation& inst, bool create) {
    const std::string& password = inst.config.db_password;
    bool reference = password.find(':') != std::string::npos;  // else plaintext for every release
    if (!reference || !inst.config.uses_postgres() || inst.db_url)
        return store::open(inst.config, reference ? inst.secrets->resolve_text(password) : password, create,
                           inst.db_url);
    std::optional<Error> as_reference;
    try {
        return store::open(inst.config, inst.secrets->resolve_text(password), create, inst.db_url);
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

}  // namespace

store::KeyStore& Installation::store(bool create) {
    if (!store_) store_ = open_store(*this, create);
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
