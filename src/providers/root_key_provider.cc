// What every root key provider shares: unwrap in terms of try_unwrap, and no in-place rotation.
#include "providers/root_key_provider.h"

#include "util/error.h"

namespace ik::providers {

SecretBytes RootKeyProvider::unwrap(ByteView wrapped) {
    if (auto key = try_unwrap(wrapped)) return std::move(*key);
    fail(ExitCode::wrong_key, "{} does not unwrap the db key", describe());
}

std::unique_ptr<InPlaceRotation> RootKeyProvider::rotation(const std::optional<std::string>&) { return nullptr; }

std::optional<SecretBytes> key_or_nothing(Unwrapped answer) {
    if (auto* error = std::get_if<Error>(&answer)) {
        if (error->code() == ExitCode::wrong_key) return std::nullopt;
        throw *error;
    }
    return std::get<SecretBytes>(std::move(answer));
}

SecretBytes key_or_throw(Unwrapped answer) {
    if (auto* error = std::get_if<Error>(&answer)) throw *error;
    return std::get<SecretBytes>(std::move(answer));
}

}  // namespace ik::providers
