// What every root key provider shares: unwrap in terms of try_unwrap, and no in-place rotation.
#include "providers/root_key_provider.h"

#include "util/error.h"

namespace ik::providers {

SecretBytes RootKeyProvider::unwrap(ByteView wrapped) {
    if (auto key = try_unwrap(wrapped)) return std::move(*key);
    fail(ExitCode::wrong_key, "{} does not unwrap the db key", describe());
}

std::unique_ptr<InPlaceRotation> RootKeyProvider::rotation(const std::optional<std::string>&) { return nullptr; }

}  // namespace ik::providers
