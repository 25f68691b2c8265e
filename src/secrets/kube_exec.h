// Kubernetes exec credential plugins (client.authentication.k8s.io v1 and v1beta1), run the way
// client-go runs them: EKS `aws eks get-token`, GKE `gke-gcloud-auth-plugin`, AKS `kubelogin`.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "secrets/kubeconfig.h"

namespace ik::secrets {

struct ExecPlugin {
    std::string api_version;  // client.authentication.k8s.io/v1 or /v1beta1
    // As the kubeconfig names it; one with a slash was made absolute against the kubeconfig's
    // directory, one without is looked up in PATH.
    std::string command;
    std::vector<std::string> args;
    std::vector<std::pair<std::string, std::string>> env;  // added to infra-keys' own environment
    std::string install_hint;
    std::string interactive_mode;  // Never | IfAvailable | Always (v1beta1 default: IfAvailable)
    std::string cluster_json;      // spec.cluster of KUBERNETES_EXEC_INFO; empty unless provideClusterInfo
    std::string where;             // "kubeconfig /x user y", for messages
};

// What the plugin printed, checked: a token or a certificate and key, and when it expires.
struct ExecResult {
    KubeCredential credential;
    std::optional<std::chrono::system_clock::time_point> expires;
};

// Parses the ExecCredential a plugin printed on stdout. Throws ik::Error(provider) naming the
// plugin for anything client-go refuses (another apiVersion, no status, neither token nor a
// certificate/key pair, only one of the pair, a malformed expirationTimestamp).
ExecResult parse_exec_credential(std::string_view stdout_text, const ExecPlugin& plugin);

// "2026-12-02T12:30:00Z", "…00.5+02:00" → the instant; nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& text);

// Validates the plugin's configuration (ik::Error(usage)) and returns the credential source:
// the plugin runs on first use, again once its credential has expired, and again on a 401.
std::shared_ptr<KubeAuth> make_exec_auth(ExecPlugin plugin);

}  // namespace ik::secrets
