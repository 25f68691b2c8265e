// The `kubernetes` secret storage: keys of Secrets in a namespace, read and written over the API.
#pragma once

#include <memory>

#include "config/config.h"
#include "secrets/secret_store.h"

namespace ik::secrets {

// `entry` is the `secrets:` entry (or a default one named "kubernetes"); `env` supplies
// KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT and HOME.
std::unique_ptr<SecretStorage> make_kubernetes_storage(const config::SecretStorage& entry,
                                                       const config::Environment& env);

}  // namespace ik::secrets
