// Placeholder until the vault provider lands: a clear error instead of a silent fallback.
#include "providers/remote.h"
#include "util/error.h"

namespace ik::providers {

std::unique_ptr<RootKeyProvider> make_vault(const config::Config&, const config::KeyProvider&, secrets::SecretStorages&) {
    fail(ExitCode::usage, "key provider kind 'vault' is not supported yet by this build of infra-keys");
}

}  // namespace ik::providers
