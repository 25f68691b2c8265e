// Placeholder until the awskms provider lands: a clear error instead of a silent fallback.
#include "providers/remote.h"
#include "util/error.h"

namespace ik::providers {

std::unique_ptr<RootKeyProvider> make_awskms(const config::Config&, const config::KeyProvider&, secrets::SecretStorages&) {
    fail(ExitCode::usage, "key provider kind 'awskms' is not supported yet by this build of infra-keys");
}

}  // namespace ik::providers
