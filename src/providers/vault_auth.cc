#include "providers/vault_auth.h"

#include <filesystem>

#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/secret_json.h"
#include "util/files.h"

namespace ik::providers {
namespace {

using json = nlohmann::json;

constexpr const char* pod_token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";

using config::env_or;

// A token or secret id kept in a file.
SecretBytes read_secret_file(const std::string& path, const std::string& what) {
    auto secret = files::read_token(path);
    if (!secret) fail(ExitCode::usage, "vault key provider: cannot read {} {}", what, path);
    if (secret->empty()) fail(ExitCode::usage, "vault key provider: {} {} is empty", what, path);
    return std::move(*secret);
}

SecretString text_of(const SecretBytes& bytes) { return SecretString(as_text(bytes)); }

// POST auth/<mount>/login; the answer's auth.client_token is the token.
SecretBytes login(const VaultEndpoint& vault, const std::string& mount, const std::string& method, const SecretJson& body,
                  const SecretBytes& credential) {
    net::Client client(net::ClientOptions{"vault", vault.tls});
    net::Request request{"POST", vault.address + "/v1/auth/" + net::percent_encode(mount, true) + "/login",
                         {{"Content-Type", "application/json"}}, body.dump()};
    if (!vault.namespace_name.empty()) request.headers.emplace_back("X-Vault-Namespace", vault.namespace_name);
    net::Response response = client.send(request);  // bodies scrub themselves (SecretString)
    std::string where = fmt::format("{}: {} login", client.where(request), method);
    SecretJson answer = SecretJson::parse(response.body, nullptr, false);
    if (response.status != 200) {
        std::string errors;
        if (answer.is_object() && answer.contains("errors") && answer["errors"].is_array())
            for (const auto& e : answer["errors"])
                if (e.is_string()) errors += (errors.empty() ? "" : "; ") + std::string(e.get_ref<const SecretString&>());
        fail(ExitCode::provider, "{}: {} (HTTP {})", where,
             net::quote_service_text(errors.empty() ? "error" : errors, {as_text(credential)}), response.status);
    }
    SecretJson* auth = answer.is_object() && answer.contains("auth") && answer["auth"].is_object() ? &answer["auth"] : nullptr;
    if (!auth || !auth->contains("client_token") || !(*auth)["client_token"].is_string())
        fail(ExitCode::provider, "{}: the answer has no auth.client_token", where);
    const SecretString& text = (*auth)["client_token"].get_ref<const SecretString&>();
    return SecretBytes(text.begin(), text.end());
}

SecretBytes kubernetes_login(const config::Environment& env, const VaultEndpoint& vault, const std::string& role) {
    SecretBytes jwt = read_secret_file(env_or(env, "INFRA_KEYS_VAULT_K8S_TOKEN_FILE", pod_token_file),
                                       "service account token");
    return login(vault, env_or(env, "INFRA_KEYS_VAULT_K8S_MOUNT", "kubernetes"), "kubernetes",
                 SecretJson{{"role", role}, {"jwt", text_of(jwt)}}, jwt);
}

SecretBytes approle_login(const config::Environment& env, const VaultEndpoint& vault, const std::string& role_id) {
    std::string file = env_or(env, "INFRA_KEYS_VAULT_SECRET_ID_FILE");
    if (file.empty())
        fail(ExitCode::usage, "vault key provider: INFRA_KEYS_VAULT_ROLE_ID is set but INFRA_KEYS_VAULT_SECRET_ID_FILE is not");
    SecretBytes secret_id = read_secret_file(file, "AppRole secret id file");
    return login(vault, env_or(env, "INFRA_KEYS_VAULT_APPROLE_MOUNT", "approle"), "approle",
                 SecretJson{{"role_id", role_id}, {"secret_id", text_of(secret_id)}}, secret_id);
}

}  // namespace

SecretBytes vault_default_token(const config::Environment& env, const std::string& home, const VaultEndpoint& vault) {
    if (std::string token = env_or(env, "VAULT_TOKEN"); !token.empty()) {
        SecretBytes out(token.begin(), token.end());
        scrub(token);
        return out;
    }
    if (std::string file = env_or(env, "INFRA_KEYS_VAULT_TOKEN_FILE"); !file.empty())
        return read_secret_file(file, "INFRA_KEYS_VAULT_TOKEN_FILE");
    if (std::string role = env_or(env, "INFRA_KEYS_VAULT_K8S_ROLE"); !role.empty()) return kubernetes_login(env, vault, role);
    if (std::string role_id = env_or(env, "INFRA_KEYS_VAULT_ROLE_ID"); !role_id.empty())
        return approle_login(env, vault, role_id);
    std::string helper_file = env_or(env, "HOME", home) + "/.vault-token";
    if (std::filesystem::exists(helper_file)) return read_secret_file(helper_file, "token file");
    throw Error(ExitCode::usage, "vault key provider: no token",
                "set token in the keys entry, VAULT_TOKEN, INFRA_KEYS_VAULT_TOKEN_FILE, INFRA_KEYS_VAULT_K8S_ROLE "
                "(Kubernetes auth) or INFRA_KEYS_VAULT_ROLE_ID (AppRole), or log in with `vault login` (~/.vault-token)");
}

}  // namespace ik::providers
