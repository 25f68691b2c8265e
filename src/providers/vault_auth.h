// Where the vault provider's token comes from when its `keys:` entry names none: what a
// laptop (the vault CLI's ~/.vault-token), a Vault Agent (a file sink) or a CronJob's pod
// (Kubernetes auth, AppRole) has.
#pragma once

#include <string>

#include "config/config.h"
#include "net/http.h"
#include "util/bytes.h"

namespace ik::providers {

struct VaultEndpoint {
    std::string address;         // https://vault:8200, no trailing slash
    std::string namespace_name;  // X-Vault-Namespace, empty for none
    net::TlsOptions tls;
};

// In this order: VAULT_TOKEN; the file INFRA_KEYS_VAULT_TOKEN_FILE (a Vault Agent sink, read
// as it is now); Kubernetes auth when INFRA_KEYS_VAULT_K8S_ROLE is set (POST
// auth/<INFRA_KEYS_VAULT_K8S_MOUNT, default kubernetes>/login with the service account token
// in INFRA_KEYS_VAULT_K8S_TOKEN_FILE, default the pod's); AppRole when INFRA_KEYS_VAULT_ROLE_ID
// is set (secret id from the file INFRA_KEYS_VAULT_SECRET_ID_FILE; auth/<INFRA_KEYS_VAULT_APPROLE_MOUNT,
// default approle>/login); else ~/.vault-token. Throws ik::Error(usage) when none is there,
// ik::Error(provider) when a login fails.
SecretBytes vault_default_token(const config::Environment& env, const std::string& home, const VaultEndpoint& vault);

}  // namespace ik::providers
