#include "providers/vault.h"

#include <nlohmann/json.hpp>

#include "crypto/random.h"
#include "providers/remote.h"
#include "providers/vault_auth.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/secret_json.h"

namespace ik::providers {
namespace {

using json = nlohmann::json;

using config::env_or;

std::string normalised_mount(const std::string& mount) {
    size_t begin = mount.find_first_not_of('/');
    if (begin == std::string::npos) return "/transit";
    size_t end = mount.find_last_not_of('/');
    return "/" + mount.substr(begin, end - begin + 1);
}

}  // namespace

SecretJson vault_answer_data(std::string_view body, const std::string& where) {
    SecretJson parsed = SecretJson::parse(body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("data") || !parsed["data"].is_object())
        fail(ExitCode::provider, "{}: answer has no data object", where);
    return std::move(parsed["data"]);
}

SecretString vault_string_field(const SecretJson& data, const char* field, const std::string& where) {
    auto it = data.find(field);
    if (it == data.end() || !it->is_string()) fail(ExitCode::provider, "{}: answer has no {}", where, field);
    return it->get<SecretString>();
}

std::string vault_errors(std::string_view body) {
    json parsed = json::parse(body, nullptr, false);
    std::string out;
    if (parsed.is_object() && parsed.contains("errors") && parsed["errors"].is_array())
        for (const auto& e : parsed["errors"])
            if (e.is_string()) out += (out.empty() ? "" : "; ") + e.get<std::string>();
    return out;
}

namespace {

// Decrypt failures that mean "another key sealed this", as opposed to Vault or policy trouble.
bool is_wrong_key(long status, const std::string& errors) {
    return status == 400 && (errors.find("message authentication failed") != std::string::npos ||
                             errors.find("invalid ciphertext") != std::string::npos);
}

}  // namespace

std::string transit_key_name(const std::string& root_key_id) {
    // Config leaves an unset dbEncryptionKey at its file default; for Vault that means "no name".
    if (root_key_id.empty() || root_key_id == "~/.infra/sqlite3.db.key") return "__infra-root";
    size_t slash = root_key_id.rfind('/');
    return slash == std::string::npos ? root_key_id : root_key_id.substr(slash + 1);
}

VaultSettings vault_settings(const config::Config& cfg, const config::KeyProvider& entry,
                             secrets::SecretStorages& storages, const config::Environment& env) {
    VaultSettings settings;
    settings.address = entry.get("address", env_or(env, "VAULT_ADDR"));
    if (settings.address.empty())
        throw Error(ExitCode::usage, "vault key provider: no address", "set address in the keys entry or VAULT_ADDR");
    settings.namespace_name = entry.get("namespace", env_or(env, "VAULT_NAMESPACE"));
    settings.transit_mount = normalised_mount(entry.get("transitmount", "/transit"));
    settings.key_name = transit_key_name(cfg.db_encryption_key);
    settings.tls.ca_file = entry.get("cabundle", env_or(env, "VAULT_CACERT"));
    std::string token_ref = entry.get("token");
    if (!token_ref.empty()) {
        SecretBytes token = storages.resolve(token_ref);
        settings.token.assign(token.begin(), token.end());
    } else {
        std::string address = settings.address;
        while (!address.empty() && address.back() == '/') address.pop_back();
        SecretBytes token = vault_default_token(env, cfg.home, {address, settings.namespace_name, settings.tls});
        settings.token.assign(token.begin(), token.end());
    }
    if (settings.token.empty())
        throw Error(ExitCode::usage, "vault key provider: no token", "set token in the keys entry or VAULT_TOKEN");
    return settings;
}

VaultProvider::VaultProvider(VaultSettings settings)
    : settings_(std::move(settings)), client_(net::ClientOptions{"vault", settings_.tls}) {
    while (!settings_.address.empty() && settings_.address.back() == '/') settings_.address.pop_back();
    settings_.transit_mount = normalised_mount(settings_.transit_mount);
}

std::string VaultProvider::describe() const {
    return fmt::format("vault transit key {} at {}{}", settings_.key_name, settings_.address, settings_.transit_mount);
}

VaultProvider::Answer VaultProvider::send(const std::string& method, const std::string& path, SecretString body,
                                          bool idempotent) {
    net::Request request{method, settings_.address + "/v1" + settings_.transit_mount + "/" + path,
                         {{"X-Vault-Token", settings_.token}}, std::move(body), idempotent};
    if (!settings_.namespace_name.empty()) request.headers.emplace_back("X-Vault-Namespace", settings_.namespace_name);
    if (!request.body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    net::Response response = client_.send(request);
    Answer answer{response.status, std::move(response.body), {}, fmt::format("{} {} {}", client_.where(request), method, path)};
    if (answer.status < 200 || answer.status >= 300) answer.errors = vault_errors(answer.body);
    return answer;
}

Error VaultProvider::failure(const Answer& answer) const {
    std::string errors = answer.errors.empty() ? fmt::format("HTTP {}", answer.status)
                                               : fmt::format("HTTP {}: {}", answer.status, answer.errors);
    std::string text = net::quote_service_text(errors, {settings_.token});
    ExitCode code = is_wrong_key(answer.status, answer.errors) ? ExitCode::wrong_key : ExitCode::provider;
    return Error(code, fmt::format("{}: {}", answer.where, text));
}

std::optional<SecretString> VaultProvider::call(const std::string& method, const std::string& path,
                                                SecretString body, bool missing_ok, bool idempotent) {
    Answer answer = send(method, path, std::move(body), idempotent);
    if (answer.status >= 200 && answer.status < 300) return std::move(answer.body);
    if (answer.status == 404 && missing_ok) return std::nullopt;
    throw failure(answer);
}

bool VaultProvider::root_key_exists() { return call("GET", "keys/" + settings_.key_name, "", true).has_value(); }

void VaultProvider::create_root_key() {
    // As the server creates it: not exportable, no deletion.
    call("POST", "keys/" + settings_.key_name, SecretJson{{"type", "aes256-gcm96"}}.dump());
}

DbKey VaultProvider::generate_db_key() {
    DbKey key;
    key.plaintext = crypto::random_key(32);
    key.wrapped = wrap(key.plaintext);
    return key;
}

Bytes VaultProvider::wrap(const SecretBytes& db_key) {
    SecretString answer =
        *call("POST", "encrypt/" + settings_.key_name, SecretJson{{"plaintext", base64_secret(db_key)}}.dump());
    SecretString ciphertext = vault_string_field(vault_answer_data(answer, describe()), "ciphertext", describe());
    return Bytes(ciphertext.begin(), ciphertext.end());
}

Unwrapped VaultProvider::decrypt(ByteView wrapped) {
    std::string ciphertext(as_text(wrapped));
    if (ciphertext.rfind("vault:v", 0) != 0)
        return Error(ExitCode::wrong_key, fmt::format("{}: the wrapped db key is not a Vault ciphertext (no vault:vN: prefix)", describe()));
    Answer answer = send("POST", "decrypt/" + settings_.key_name, SecretJson{{"ciphertext", ciphertext}}.dump(), true);
    if (answer.status < 200 || answer.status >= 300) return failure(answer);
    SecretString encoded = vault_string_field(vault_answer_data(answer.body, describe()), "plaintext", describe());
    SecretBytes key;
    try {
        key = base64_decode_secret(encoded);
    } catch (const std::exception&) {
        fail(ExitCode::provider, "{}: decrypt answered a plaintext that is not base64", describe());
    }
    if (key.size() != 32) fail(ExitCode::provider, "{}: the unwrapped db key has {} bytes, not 32", describe(), key.size());
    return key;
}

std::optional<SecretBytes> VaultProvider::try_unwrap(ByteView wrapped) { return key_or_nothing(decrypt(wrapped)); }

SecretBytes VaultProvider::unwrap(ByteView wrapped) { return key_or_throw(decrypt(wrapped)); }

void VaultProvider::rotate_key() {
    // Not retried on 5xx: a rotation that did happen must not happen twice.
    call("POST", "keys/" + settings_.key_name + "/rotate", "{}", false, false);
}

Bytes VaultProvider::rewrap(ByteView wrapped) {
    SecretString answer =
        *call("POST", "rewrap/" + settings_.key_name, SecretJson{{"ciphertext", SecretString(as_text(wrapped))}}.dump());
    SecretString ciphertext = vault_string_field(vault_answer_data(answer, describe()), "ciphertext", describe());
    return Bytes(ciphertext.begin(), ciphertext.end());
}

VaultProvider::KeyInfo VaultProvider::read_key() {
    auto answer = call("GET", "keys/" + settings_.key_name, "", true);
    if (!answer) fail(ExitCode::provider, "{} does not exist", describe());
    SecretJson data = vault_answer_data(*answer, describe());
    return {data.value("latest_version", 0), data.value("min_decryption_version", 0)};
}

std::vector<std::string> VaultProvider::status(ByteView wrapped) {
    std::string text(as_text(wrapped));
    std::string version = "?";
    if (text.rfind("vault:v", 0) == 0) version = text.substr(7, text.find(':', 7) - 7);
    KeyInfo info = read_key();
    return {fmt::format("wrapped by key version {} (latest {}, min_decryption_version {})", version,
                        info.latest_version, info.min_decryption_version)};
}

namespace {

// A new transit key version, then Vault's own rewrap of the row to it; older versions keep
// decrypting until min_decryption_version is raised, so the row opens until the commit.
class VaultRotation : public InPlaceRotation {
public:
    explicit VaultRotation(VaultProvider& vault) : vault_(vault) {}

    std::vector<std::string> plan() override {
        auto info = vault_.read_key();
        return {fmt::format("rotate {} to version {}", vault_.describe(), info.latest_version + 1),
                "re-wrap the dbkey row to that version inside Vault (rewrap)"};
    }
    Rewrapped rewrap(ByteView wrapped) override {
        vault_.rotate_key();
        info_ = vault_.read_key();
        failpoint("rotate-after-provider-rotate");
        return {vault_.rewrap(wrapped), vault_.algorithm(), vault_.root_key_id(),
                {fmt::format("{} rotated to version {}", vault_.describe(), info_.latest_version),
                 fmt::format("dbkey row re-wrapped by key version {}", info_.latest_version)}};
    }
    RootKeyProvider& target() override { return vault_; }
    std::vector<std::string> after_commit() override {
        return {fmt::format("older versions still decrypt until min_decryption_version (now {}) is raised in Vault",
                            info_.min_decryption_version)};
    }

private:
    VaultProvider& vault_;
    VaultProvider::KeyInfo info_;
};

}  // namespace

std::unique_ptr<InPlaceRotation> VaultProvider::rotation(const std::optional<std::string>& to_key_id) {
    if (to_key_id) fail(ExitCode::usage, "--to-key-id applies to the awskms provider only");
    return std::make_unique<VaultRotation>(*this);
}

std::unique_ptr<RootKeyProvider> make_vault(const config::Config& cfg, const config::KeyProvider& entry,
                                            secrets::SecretStorages& storages) {
    return std::make_unique<VaultProvider>(vault_settings(cfg, entry, storages, config::process_environment()));
}

}  // namespace ik::providers
