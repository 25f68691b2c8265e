#include "secrets/kube_api.h"

#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace ik::secrets {

KubeApi::KubeApi(KubeConnection connection)
    : connection_(std::move(connection)), client_(net::ClientOptions{"kubernetes", connection_.tls}) {}

net::Response KubeApi::send(net::Request request) {
    request.headers.emplace_back("Accept", "application/json");
    for (bool renewed = false;; renewed = true) {
        KubeCredential credential = connection_.auth->current();
        net::Request authorised = request;
        if (!credential.token.empty())
            authorised.headers.emplace_back("Authorization", "Bearer " + std::string(as_text(credential.token)));
        net::ClientOptions options = client_.options();
        if (!credential.client_cert_pem.empty()) {
            options.tls.client_cert_pem = credential.client_cert_pem;
            options.tls.client_key_pem = credential.client_key_pem;
            options.tls.client_cert_file.clear();
            options.tls.client_key_file.clear();
        }
        net::Response response = net::Client(options).send(authorised);
        for (auto& [name, value] : authorised.headers)
            if (name == "Authorization") scrub(value);
        scrub(authorised.body);
        // A 401 to an exec plugin's credential runs the plugin again (the token may have been
        // revoked before its expirationTimestamp), once, as client-go does.
        if (response.status == 401 && !renewed && connection_.auth->renew()) continue;
        scrub(request.body);
        if (response.status == 401) last_token_ = credential.token;
        return response;
    }
}

std::optional<SecretString> KubeApi::get(const std::string& path) {
    net::Request request{"GET", url(path), {}, {}};
    net::Response response = send(request);
    if (response.status == 404) return std::nullopt;
    if (response.status != 200) fail_with(request, response);
    return std::move(response.body);
}

void KubeApi::fail_with(const net::Request& request, const net::Response& response) const {
    // The API answers with a Status object: {"kind":"Status","message":…,"reason":…,"code":…}.
    nlohmann::json status = nlohmann::json::parse(response.body, nullptr, false);
    std::string message = status.is_object() ? status.value("message", std::string()) : std::string();
    std::string reason = status.is_object() ? status.value("reason", std::string()) : std::string();
    std::string text = message.empty() ? reason : message;
    text = net::quote_service_text(fmt::format("{} (HTTP {})", text.empty() ? "error" : text, response.status),
                                   {as_text(last_token_)});
    throw Error(ExitCode::provider,
                fmt::format("{} {}: {} [{}]", client_.where(request), request.method, text, connection_.source));
}

}  // namespace ik::secrets
