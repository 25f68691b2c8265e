// One authenticated conversation with the Kubernetes API: credentials per request, one new
// credential on a 401, and errors that quote the API's Status without the token.
#pragma once

#include <optional>
#include <string>

#include "net/http.h"
#include "secrets/kubeconfig.h"

namespace ik::secrets {

class KubeApi {
public:
    explicit KubeApi(KubeConnection connection);

    // Sends `request` (a path under the server, or a full URL) with the current credential; a
    // 401 to a credential that can be renewed (an exec plugin) runs the plugin again, once, as
    // client-go does. The request's body and Authorization header are scrubbed afterwards.
    net::Response send(net::Request request);
    // GET of one object at `path` (e.g. /api/v1/namespaces/ns/configmaps/x): its JSON text, or
    // nullopt on 404; any other answer → ik::Error(provider) naming the request.
    std::optional<SecretString> get(const std::string& path);
    // ik::Error(provider): the method, the URL, the API's message and the connection's source.
    [[noreturn]] void fail_with(const net::Request& request, const net::Response& response) const;

    std::string url(const std::string& path) const { return connection_.server + path; }
    std::string where(const net::Request& request) const { return client_.where(request); }
    const KubeConnection& connection() const { return connection_; }

private:
    KubeConnection connection_;
    SecretBytes last_token_;  // the token a 401 refused, redacted from the quoted error text
    net::Client client_;
};

}  // namespace ik::secrets
