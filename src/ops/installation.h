// An Infra installation opened for work: its config, secret storages, root key provider, database.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "providers/root_key_provider.h"
#include "secrets/secret_store.h"
#include "store/key_store.h"

namespace ik::ops {

// Where the installation is: the global command-line options.
struct Target {
    std::optional<std::string> config_path;
    std::optional<std::string> db_url;
    std::optional<std::string> kubeconfig;
    std::optional<std::string> kube_context;    // --context
    std::optional<std::string> kube_namespace;  // --namespace
    std::optional<std::string> kube_deployment;  // --kube-deployment NAMESPACE/NAME: instead of config_path
};

struct Installation {
    config::Config config;
    config::Environment env;
    std::unique_ptr<secrets::SecretStorages> secrets;
    std::unique_ptr<providers::RootKeyProvider> provider;

    // Opened on first use so `verify --level config` never touches the database.
    store::KeyStore& store(bool create = false);

    std::optional<std::string> db_url;
    store::DbUrlRole db_url_role = store::DbUrlRole::replaces_config;
    std::unique_ptr<store::KeyStore> store_;
};

// Reads the config and builds the secret storages and provider; touches neither key nor database.
Installation open(const Target& target);

}  // namespace ik::ops
