// What a storage does for a key rotation when it has nothing better: refuse to delete or list,
// and create/rename from get, set and remove.
#include "secrets/secret_store.h"
#include "util/error.h"

namespace ik::secrets {

void SecretStorage::remove(const std::string& name) {
    fail(ExitCode::usage, "{} storage cannot delete secrets ({})", kind(), describe(name));
}

std::vector<std::string> SecretStorage::names_with_prefix(const std::string& prefix) {
    (void)prefix;
    return {};
}

void SecretStorage::create(const std::string& name, const SecretBytes& value) {
    if (get(name)) fail(ExitCode::refused, "{} already exists; not replacing it", describe(name));
    set(name, value);
}

void SecretStorage::rename(const std::string& from, const std::string& to) {
    auto value = get(from);
    if (!value) fail(ExitCode::provider, "cannot move {}: it does not exist", describe(from));
    set(to, *value);
    remove(from);
}

}  // namespace ik::secrets
