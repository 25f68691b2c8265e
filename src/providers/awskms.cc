#include "providers/awskms.h"

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "providers/aws_credentials.h"
#include "providers/remote.h"
#include "util/error.h"
#include "util/secret_json.h"

namespace ik::providers {
namespace {

using json = nlohmann::json;

using config::env_or;

std::string home_of(const config::Config& cfg, const config::Environment& env) { return env_or(env, "HOME", cfg.home); }

std::string profile_of(const config::Environment& env) { return env_or(env, "AWS_PROFILE", "default"); }

net::sigv4::Credentials credentials_of(const config::Config& cfg, const config::KeyProvider& entry,
                                       secrets::SecretStorages& storages, const config::Environment& env,
                                       const std::string& region, const net::TlsOptions& tls) {
    std::string id_ref = entry.get("accesskeyid"), secret_ref = entry.get("secretaccesskey");
    if (!id_ref.empty() || !secret_ref.empty()) {
        if (id_ref.empty() || secret_ref.empty())
            fail(ExitCode::usage, "awskms key provider: accessKeyID and secretAccessKey must be given together");
        std::string token_ref = entry.get("sessiontoken");
        return {storages.resolve_text(id_ref), storages.resolve(secret_ref),
                token_ref.empty() ? SecretBytes() : storages.resolve(token_ref)};
    }
    return aws_default_credentials(env, home_of(cfg, env), region, tls);
}

std::string region_of(const config::Config& cfg, const config::KeyProvider& entry, const config::Environment& env) {
    std::string region = entry.get("region");
    if (region.empty()) region = env_or(env, "AWS_REGION", env_or(env, "AWS_DEFAULT_REGION"));
    if (region.empty()) {
        std::string file = env_or(env, "AWS_CONFIG_FILE", home_of(cfg, env) + "/.aws/config");
        std::string profile = profile_of(env);
        auto section = ini_section(file, profile == "default" ? "default" : "profile " + profile);
        region = section["region"];
    }
    if (region.empty())
        throw Error(ExitCode::usage, "awskms key provider: no AWS region",
                    "set region in the keys entry, AWS_REGION, or region in ~/.aws/config");
    return region;
}

std::string kms_endpoint(const config::KeyProvider& entry, const config::Environment& env, const std::string& region) {
    std::string endpoint = entry.get("endpoint");
    if (endpoint.empty()) endpoint = env_or(env, "AWS_ENDPOINT_URL_KMS", env_or(env, "AWS_ENDPOINT_URL"));
    if (endpoint.empty()) endpoint = "https://kms." + region + ".amazonaws.com";
    if (endpoint.find("://") == std::string::npos) endpoint = "https://" + endpoint;
    if (endpoint.back() != '/' && endpoint.find('/', endpoint.find("://") + 3) == std::string::npos) endpoint += "/";
    return endpoint;
}

Bytes ciphertext_field(const SecretJson& body, const char* field, const std::string& where) {
    SecretBytes blob = kms_blob_field(body, field, where);
    return Bytes(blob.begin(), blob.end());
}

// KMS's `__type` is sometimes qualified ("com.amazonaws.kms#NotFoundException").
std::string error_type(const json& body) {
    std::string type = body.value("__type", std::string());
    size_t hash = type.rfind('#');
    return hash == std::string::npos ? type : type.substr(hash + 1);
}

bool is_wrong_key(const std::string& type) {
    return type == "IncorrectKeyException" || type == "InvalidCiphertextException";
}

}  // namespace

SecretJson kms_answer(std::string_view body, const std::string& where) {
    SecretJson parsed = SecretJson::parse(body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) fail(ExitCode::provider, "{}: answer is not a JSON object", where);
    return parsed;
}

SecretBytes kms_blob_field(const SecretJson& body, const char* field, const std::string& where) {
    auto it = body.find(field);
    if (it == body.end() || !it->is_string()) fail(ExitCode::provider, "{}: answer has no {}", where, field);
    try {
        return base64_decode_secret(it->get_ref<const SecretString&>());
    } catch (const std::exception&) {
        fail(ExitCode::provider, "{}: {} in the answer is not base64", where, field);
    }
}

std::string kms_key_id(const std::string& root_key_id) {
    if (root_key_id.empty() || root_key_id.front() != '/') return root_key_id;
    if (size_t arn = root_key_id.find("/arn:"); arn != std::string::npos) return root_key_id.substr(arn + 1);
    if (size_t alias = root_key_id.rfind("/alias/"); alias != std::string::npos) return root_key_id.substr(alias + 1);
    return root_key_id.substr(root_key_id.rfind('/') + 1);
}

AwsKmsSettings awskms_settings(const config::Config& cfg, const config::KeyProvider& entry,
                               secrets::SecretStorages& storages, const config::Environment& env) {
    AwsKmsSettings settings;
    settings.region = region_of(cfg, entry, env);
    settings.endpoint = kms_endpoint(entry, env, settings.region);
    settings.root_key_id = cfg.db_encryption_key;
    settings.algorithm = entry.get("encryptionalgorithm", "AES_256");
    settings.tls.ca_file = entry.get("cabundle", env_or(env, "AWS_CA_BUNDLE"));
    settings.credentials = credentials_of(cfg, entry, storages, env, settings.region, settings.tls);
    return settings;
}

AwsKmsProvider::AwsKmsProvider(AwsKmsSettings settings)
    : settings_(std::move(settings)), key_id_(kms_key_id(settings_.root_key_id)),
      client_(net::ClientOptions{"awskms", settings_.tls}) {
    if (key_id_.empty() || key_id_.find('~') != std::string::npos)
        throw Error(ExitCode::usage, fmt::format("awskms key provider: \"{}\" is not a KMS key id", settings_.root_key_id),
                    "set dbEncryptionKey to a KMS key id, key ARN or alias/NAME");
}

std::string AwsKmsProvider::describe() const {
    return fmt::format("awskms key {} at {}", key_id_, net::endpoint_of(settings_.endpoint));
}

AwsKmsProvider::Answer AwsKmsProvider::send(const std::string& operation, SecretString body) {
    net::Request request{"POST", settings_.endpoint,
                         {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", SecretString("TrentService." + operation)}},
                         std::move(body)};
    net::sigv4::sign_request(request, settings_.credentials, settings_.region, "kms", std::chrono::system_clock::now());
    net::Response response = client_.send(request);
    Answer answer{response.status, std::move(response.body), {}, fmt::format("{}: KMS {}", client_.where(request), operation)};
    if (answer.status != 200) {
        json error = json::parse(answer.body, nullptr, false);
        if (error.is_object()) answer.error_type = error_type(error);
    }
    return answer;
}

Error AwsKmsProvider::failure(const Answer& answer) const {
    json error = json::parse(answer.body, nullptr, false);
    std::string message;
    if (error.is_object()) message = error.value("message", error.value("Message", std::string()));
    if (answer.error_type.empty()) message = fmt::format("HTTP {} {}", answer.status, std::string(answer.body));
    const auto& secret = settings_.credentials.secret_access_key;
    std::string text = net::quote_service_text(
        answer.error_type.empty() ? message : fmt::format("{}: {}", answer.error_type, message),
        {as_text(settings_.credentials.session_token), as_text(ByteView(secret.data(), secret.size()))});
    return Error(is_wrong_key(answer.error_type) ? ExitCode::wrong_key : ExitCode::provider,
                 fmt::format("{}: {}", answer.where, text));
}

SecretString AwsKmsProvider::call(const std::string& operation, SecretString body) {
    Answer answer = send(operation, std::move(body));
    if (answer.status != 200) throw failure(answer);
    return std::move(answer.body);
}

AwsKmsProvider::KeyMetadata AwsKmsProvider::describe_key() {
    SecretString answer = call("DescribeKey", SecretJson{{"KeyId", key_id_}}.dump());
    json metadata = json::parse(answer, nullptr, false);
    if (!metadata.is_object()) fail(ExitCode::provider, "{}: answer is not a JSON object", describe());
    metadata = metadata.value("KeyMetadata", json::object());
    return {metadata.value("Arn", key_id_), metadata.value("KeyState", std::string("unknown")),
            metadata.value("Enabled", false)};
}

bool AwsKmsProvider::root_key_exists() {
    Answer answer = send("DescribeKey", SecretJson{{"KeyId", key_id_}}.dump());
    if (answer.status != 200 && answer.error_type == "NotFoundException") return false;
    if (answer.status != 200) throw failure(answer);
    json metadata = json::parse(answer.body, nullptr, false);
    if (!metadata.is_object()) fail(ExitCode::provider, "{}: answer is not a JSON object", describe());
    return metadata.value("KeyMetadata", json::object()).value("Enabled", false);
}

void AwsKmsProvider::create_root_key() {
    // The server never creates KMS keys either: key policy and ownership belong to the operator.
    throw Error(ExitCode::provider, fmt::format("{} does not exist or is not enabled", describe()),
                "create the key in AWS KMS (or enable it) and run again");
}

DbKey AwsKmsProvider::generate_db_key() {
    SecretString answer = call("GenerateDataKey", SecretJson{{"KeyId", key_id_}, {"KeySpec", settings_.algorithm}}.dump());
    SecretJson body = kms_answer(answer, describe());
    DbKey key;
    key.plaintext = kms_blob_field(body, "Plaintext", describe());
    key.wrapped = ciphertext_field(body, "CiphertextBlob", describe());
    if (key.plaintext.size() != 32)
        fail(ExitCode::provider, "{}: GenerateDataKey returned a {}-byte key; the db key must be 32 bytes (KeySpec AES_256)",
             describe(), key.plaintext.size());
    return key;
}

Bytes AwsKmsProvider::wrap(const SecretBytes& db_key) {
    SecretString answer = call("Encrypt", SecretJson{{"KeyId", key_id_}, {"Plaintext", base64_secret(db_key)}}.dump());
    return ciphertext_field(kms_answer(answer, describe()), "CiphertextBlob", describe());
}

Unwrapped AwsKmsProvider::decrypt(ByteView wrapped) {
    // Real KMS takes only its own enum here; the configured KeySpec (AES_256) is not one (docs/infra-format.md §3).
    Answer answer = send("Decrypt", SecretJson{{"CiphertextBlob", base64_secret(wrapped)},
                                               {"KeyId", key_id_},
                                               {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}}
                                              .dump());
    if (answer.status != 200) return failure(answer);
    SecretBytes key = kms_blob_field(kms_answer(answer.body, describe()), "Plaintext", describe());
    if (key.size() != 32) fail(ExitCode::provider, "{}: the unwrapped db key has {} bytes, not 32", describe(), key.size());
    return key;
}

std::optional<SecretBytes> AwsKmsProvider::try_unwrap(ByteView wrapped) { return key_or_nothing(decrypt(wrapped)); }

SecretBytes AwsKmsProvider::unwrap(ByteView wrapped) { return key_or_throw(decrypt(wrapped)); }

Bytes AwsKmsProvider::reencrypt(ByteView wrapped, const std::string& destination_key_id) {
    SecretString answer = call("ReEncrypt", SecretJson{{"CiphertextBlob", base64_secret(wrapped)},
                                                       {"SourceKeyId", key_id_},
                                                       {"DestinationKeyId", kms_key_id(destination_key_id)}}
                                                      .dump());
    return ciphertext_field(kms_answer(answer, describe()), "CiphertextBlob", describe());
}

std::unique_ptr<AwsKmsProvider> AwsKmsProvider::for_key(const std::string& root_key_id) const {
    AwsKmsSettings settings = settings_;
    settings.root_key_id = root_key_id;
    return std::make_unique<AwsKmsProvider>(std::move(settings));
}

std::vector<std::string> AwsKmsProvider::status(ByteView) {
    KeyMetadata metadata = describe_key();
    return {fmt::format("KMS key {} state {}", metadata.arn, metadata.state)};
}

namespace {

// ReEncrypt of the row inside KMS, to the configured key (a fresh wrapping that picks up KMS's own
// key rotation) or to another key (--to-key-id), which the server's config must then name.
class KmsRotation : public InPlaceRotation {
public:
    KmsRotation(AwsKmsProvider& source, const std::string& destination)
        : source_(source), destination_(destination), target_(source.for_key(destination)) {}

    std::vector<std::string> plan() override {
        if (!target_->root_key_exists())
            throw Error(ExitCode::provider, fmt::format("{} does not exist or is not enabled", target_->describe()),
                        "create or enable the key in AWS KMS, or name another with --to-key-id");
        return {fmt::format("re-encrypt the dbkey row inside KMS under {}", target_->describe())};
    }
    Rewrapped rewrap(ByteView wrapped) override {
        return {source_.reencrypt(wrapped, destination_), source_.algorithm(), destination_,
                {fmt::format("dbkey row re-encrypted inside KMS under {}", target_->describe())}};
    }
    RootKeyProvider& target() override { return *target_; }
    std::vector<std::string> after_commit() override {
        if (destination_ == source_.root_key_id()) return {};
        return {fmt::format("update the server config: dbEncryptionKey must now be {} (it was {}; the config file "
                            "was not changed)",
                            destination_, source_.root_key_id())};
    }

private:
    AwsKmsProvider& source_;
    std::string destination_;
    std::unique_ptr<AwsKmsProvider> target_;
};

}  // namespace

std::unique_ptr<InPlaceRotation> AwsKmsProvider::rotation(const std::optional<std::string>& to_key_id) {
    return std::make_unique<KmsRotation>(*this, to_key_id.value_or(root_key_id()));
}

std::unique_ptr<RootKeyProvider> make_awskms(const config::Config& cfg, const config::KeyProvider& entry,
                                             secrets::SecretStorages& storages) {
    return std::make_unique<AwsKmsProvider>(awskms_settings(cfg, entry, storages, config::process_environment()));
}

}  // namespace ik::providers
