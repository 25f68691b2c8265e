// The Infra server as a Deployment runs it (--kube-deployment): the config its ConfigMap mounts,
// its environment (secretKeyRefs resolved through the API), and the files the config names,
// read from and written to the Secret or ConfigMap volumes they are mounted from.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "secrets/kube_api.h"
#include "secrets/secret_store.h"

namespace ik::secrets {

struct DeploymentName {
    std::string namespace_name;
    std::string name;
};

// "NAMESPACE/NAME"; anything else → ik::Error(usage).
DeploymentName parse_deployment_name(const std::string& text);

// One file of the pod as a volume holds it: data key `key` of Secret or ConfigMap `object`.
struct PodFile {
    std::string path;    // in the server container
    bool secret = true;  // else a ConfigMap
    std::string object;
    std::string key;
};

struct PodLayout;  // the server container's mounts of Secret and ConfigMap volumes
struct PodEnv;     // the server container's env and envFrom, resolved on first use

class ServerPod {
public:
    // Reads Deployment `deployment` and the ConfigMap holding the server's config file (the
    // `-f`/`--config-file` argument of the container running `server`, else its
    // INFRA_SERVER_CONFIG_FILE). A missing object, container, mount or key → ik::Error(usage)
    // naming it; an unreachable API → ik::Error(provider).
    ServerPod(KubeConnection connection, DeploymentName deployment);
    ~ServerPod();
    ServerPod(ServerPod&&) noexcept;

    const std::string& config_text() const { return config_text_; }
    // "configmap NS/X key infra.yaml (/etc/infrahq/infra.yaml of deployment NS/Y)"
    const std::string& config_source() const { return config_source_; }
    const std::string& namespace_name() const { return deployment_.namespace_name; }

    // The server's environment: the variables the container defines (value, secretKeyRef,
    // configMapKeyRef, fieldRef metadata.namespace, envFrom), resolved through the API when first
    // asked for; INFRA_SERVER_* it does not define are unset (the operator's own do not describe
    // the server); any other name comes from `local` (KUBECONFIG, HOME, AWS_*, VAULT_* of the
    // machine infra-keys runs on). A secretKeyRef to a missing Secret or key → ik::Error(usage).
    config::Environment environment(config::Environment local) const;

    // Makes `storages` see the pod's files instead of local ones: the built-in `file` storage
    // and every `secrets:` entry of kind file (with its `path` and base64 options), and the
    // built-in `kubernetes` storage in the pod's namespace.
    void mount_into(SecretStorages& storages, const config::Config& cfg, const config::Environment& env) const;

    // Where `path` (absolute, in the server container) lives; ik::Error(usage) naming the path
    // and the deployment when no Secret or ConfigMap volume holds it.
    PodFile locate(const std::string& path) const;

private:
    KubeConnection connection_;
    DeploymentName deployment_;
    std::shared_ptr<const PodLayout> layout_;
    std::shared_ptr<PodEnv> env_;
    std::string config_text_;
    std::string config_source_;
};

}  // namespace ik::secrets
