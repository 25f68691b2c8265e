// What a storage that cannot delete or list says when a key rotation asks it to.
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

}  // namespace ik::secrets
