// Placeholder until Kubernetes support lands: a clear error instead of a silent fallback.
#include "secrets/kubernetes.h"
#include "util/error.h"

namespace ik::secrets {

std::unique_ptr<SecretStorage> make_kubernetes_storage(const config::SecretStorage&, const config::Environment&) {
    fail(ExitCode::usage, "kubernetes secrets are not supported yet by this build of infra-keys");
}

}  // namespace ik::secrets
