// How to reach the Kubernetes API: the in-cluster service account, or a kubeconfig file.
#pragma once

#include <string>

#include "config/config.h"
#include "net/http.h"

namespace ik::secrets {

struct KubeConnection {
    std::string server;          // https://host:port, no trailing slash
    net::TlsOptions tls;         // cluster CA, client certificate
    std::string token;           // bearer token, or empty with a client certificate
    std::string namespace_name;  // from the context or the service account; empty if none
    std::string source;          // for messages: "kubeconfig /x (context y)", "in-cluster service account"
};

// The service account of a pod: KUBERNETES_SERVICE_HOST/PORT, and token, ca.crt and namespace
// in /var/run/secrets/kubernetes.io/serviceaccount (env INFRA_KEYS_SERVICEACCOUNT_DIR for tests).
KubeConnection in_cluster_connection(const config::Environment& env);

// The current context of a kubeconfig: cluster server and CA (file or -data), user token,
// token file or client certificate and key (files or -data). Relative paths are relative to
// the kubeconfig's directory. Throws ik::Error(usage) for a kubeconfig it cannot use.
KubeConnection kubeconfig_connection(const std::string& path);
// The same from the file's text (`path` names it in messages and anchors relative paths).
KubeConnection kubeconfig_from_text(const std::string& text, const std::string& path);

// As kubectl picks: KUBECONFIG (first existing file of the list) when set, else the service
// account when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
KubeConnection kube_connection(const config::Environment& env);

}  // namespace ik::secrets
