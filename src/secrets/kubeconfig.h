// How to reach the Kubernetes API: the in-cluster service account, or a kubeconfig file.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "net/http.h"
#include "util/bytes.h"

namespace ik::secrets {

// What authenticates one request: a bearer token and/or a client certificate (PEM).
struct KubeCredential {
    SecretBytes token;
    std::string client_cert_pem;
    SecretBytes client_key_pem;
};

// Where credentials come from: fixed in the kubeconfig, a token file read again for every
// request (a projected service account token rotates under a running pod), or an exec plugin.
class KubeAuth {
public:
    virtual ~KubeAuth() = default;
    // The credential for the next request (may read a file or run a plugin).
    virtual KubeCredential current() = 0;
    // The API answered 401 to a request made with current(): fetch a fresh credential and say
    // whether there is one worth retrying with (an exec plugin runs again; a fixed token is final).
    virtual bool renew() { return false; }
};

struct KubeConnection {
    std::string server;              // https://host:port, no trailing slash
    net::TlsOptions tls;             // cluster CA, and a client certificate named in the kubeconfig
    std::shared_ptr<KubeAuth> auth;  // never null
    std::string namespace_name;      // from the context or the service account; empty if none
    std::string source;              // for messages: "kubeconfig /x (context y)", "in-cluster service account"
};

// Environment names of the --context and -n/--namespace options (set by them; a CronJob may
// set them directly): the kubeconfig context to use instead of current-context, and the
// namespace instead of the context's or service account's.
inline constexpr const char* context_variable = "INFRA_KEYS_KUBE_CONTEXT";
inline constexpr const char* namespace_variable = "INFRA_KEYS_KUBE_NAMESPACE";

// The service account of a pod: KUBERNETES_SERVICE_HOST/PORT, and token, ca.crt and namespace
// in /var/run/secrets/kubernetes.io/serviceaccount (env INFRA_KEYS_SERVICEACCOUNT_DIR for tests).
// The token file is read again for every request.
KubeConnection in_cluster_connection(const config::Environment& env);

// Context `context` (empty: current-context) of a kubeconfig: cluster server and CA (file or
// -data), user token, token file, client certificate and key (files or -data) or exec plugin.
// Relative paths are relative to the kubeconfig's directory. Throws ik::Error(usage) for a
// kubeconfig it cannot use.
KubeConnection kubeconfig_connection(const std::string& path, const std::string& context = {});
// The same from the file's text (`path` names it in messages and anchors relative paths).
KubeConnection kubeconfig_from_text(const std::string& text, const std::string& path, const std::string& context = {});

// As kubectl picks: KUBECONFIG (first existing file of the list) when set, else the service
// account when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config; then the --context and
// --namespace overrides.
KubeConnection kube_connection(const config::Environment& env);

}  // namespace ik::secrets
