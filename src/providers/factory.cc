// Picks the root key provider the configuration names.
#include "config/config.h"
#include "providers/native.h"
#include "providers/remote.h"
#include "providers/root_key_provider.h"
#include "util/error.h"

namespace ik::providers {

std::unique_ptr<RootKeyProvider> make(const config::Config& cfg, secrets::SecretStorages& storages) {
    config::KeyProvider entry = cfg.active_provider();
    if (entry.kind == "native") return make_native(cfg, entry, storages);
    if (entry.kind == "awskms") return make_awskms(cfg, entry, storages);
    if (entry.kind == "vault") return make_vault(cfg, entry, storages);
    fail(ExitCode::usage, "unknown key provider \"{}\" (expected native, awskms or vault)", entry.kind);
}

}  // namespace ik::providers
