#include "providers/awskms.h"

#include <fstream>
#include <map>

#include <botan/base64.h>
#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>

#include "providers/remote.h"
#include "util/error.h"

namespace ik::providers {
namespace {

using json = nlohmann::json;

std::string env_or(const config::Environment& env, const std::string& name, const std::string& fallback = {}) {
    auto value = env(name);
    return value && !value->empty() ? *value : fallback;
}

std::string trim(const std::string& s) {
    size_t begin = s.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos) return {};
    return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// One [section] of an AWS INI file (credentials or config); empty when absent.
std::map<std::string, std::string> ini_section(const std::string& path, const std::string& section) {
    std::map<std::string, std::string> out;
    std::ifstream in(path);
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.front() == '[' && line.back() == ']') {
            inside = trim(line.substr(1, line.size() - 2)) == section;
            continue;
        }
        size_t eq = line.find('=');
        if (inside && eq != std::string::npos) out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    return out;
}

std::string home_of(const config::Config& cfg, const config::Environment& env) { return env_or(env, "HOME", cfg.home); }

std::string profile_of(const config::Environment& env) { return env_or(env, "AWS_PROFILE", "default"); }

net::sigv4::Credentials credentials_of(const config::Config& cfg, const config::KeyProvider& entry,
                                       secrets::SecretStorages& storages, const config::Environment& env) {
    std::string id_ref = entry.get("accesskeyid"), secret_ref = entry.get("secretaccesskey");
    if (!id_ref.empty() || !secret_ref.empty()) {
        if (id_ref.empty() || secret_ref.empty())
            fail(ExitCode::usage, "awskms key provider: accessKeyID and secretAccessKey must be given together");
        return {storages.resolve_text(id_ref), storages.resolve(secret_ref), ""};
    }
    std::string id = env_or(env, "AWS_ACCESS_KEY_ID"), secret = env_or(env, "AWS_SECRET_ACCESS_KEY");
    if (!id.empty() && !secret.empty())
        return {id, SecretBytes(secret.begin(), secret.end()), env_or(env, "AWS_SESSION_TOKEN")};

    std::string file = env_or(env, "AWS_SHARED_CREDENTIALS_FILE", home_of(cfg, env) + "/.aws/credentials");
    auto profile = ini_section(file, profile_of(env));
    if (!profile["aws_access_key_id"].empty() && !profile["aws_secret_access_key"].empty()) {
        const std::string& key = profile["aws_secret_access_key"];
        return {profile["aws_access_key_id"], SecretBytes(key.begin(), key.end()), profile["aws_session_token"]};
    }
    throw Error(ExitCode::usage, "awskms key provider: no AWS credentials found",
                "set accessKeyID and secretAccessKey in the keys entry, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or a profile in ~/.aws/credentials (AWS_PROFILE)");
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

std::string base64(ByteView bytes) { return Botan::base64_encode(bytes.data(), bytes.size()); }

Bytes blob_field(const json& body, const char* field, const std::string& where) {
    auto it = body.find(field);
    if (it == body.end() || !it->is_string()) fail(ExitCode::provider, "{}: answer has no {}", where, field);
    try {
        SecretBytes decoded = Botan::base64_decode(it->get_ref<const std::string&>());
        return Bytes(decoded.begin(), decoded.end());
    } catch (const std::exception&) {
        fail(ExitCode::provider, "{}: {} in the answer is not base64", where, field);
    }
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

json parse_answer(const std::string& body, const std::string& where) {
    json parsed = json::parse(body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) fail(ExitCode::provider, "{}: answer is not a JSON object", where);
    return parsed;
}

void scrub(std::string& text) {
    Botan::secure_scrub_memory(text.data(), text.size());
    text.clear();
}

}  // namespace

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
    settings.credentials = credentials_of(cfg, entry, storages, env);
    settings.tls.ca_file = entry.get("cabundle", env_or(env, "AWS_CA_BUNDLE"));
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

AwsKmsProvider::Answer AwsKmsProvider::send(const std::string& operation, const std::string& body) {
    net::Request request{"POST", settings_.endpoint,
                         {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", "TrentService." + operation}},
                         body};
    net::sigv4::sign_request(request, settings_.credentials, settings_.region, "kms", std::chrono::system_clock::now());
    net::Response response = client_.send(request);
    scrub(request.body);
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
    if (answer.error_type.empty()) message = fmt::format("HTTP {} {}", answer.status, answer.body);
    const auto& secret = settings_.credentials.secret_access_key;
    std::string text = net::quote_service_text(
        answer.error_type.empty() ? message : fmt::format("{}: {}", answer.error_type, message),
        {settings_.credentials.session_token, as_text(ByteView(secret.data(), secret.size()))});
    return Error(is_wrong_key(answer.error_type) ? ExitCode::wrong_key : ExitCode::provider,
                 fmt::format("{}: {}", answer.where, text));
}

std::string AwsKmsProvider::call(const std::string& operation, const std::string& body) {
    Answer answer = send(operation, body);
    if (answer.status != 200) throw failure(answer);
    return std::move(answer.body);
}

AwsKmsProvider::KeyMetadata AwsKmsProvider::describe_key() {
    std::string answer = call("DescribeKey", json{{"KeyId", key_id_}}.dump());
    json metadata = parse_answer(answer, describe()).value("KeyMetadata", json::object());
    return {metadata.value("Arn", key_id_), metadata.value("KeyState", std::string("unknown")),
            metadata.value("Enabled", false)};
}

bool AwsKmsProvider::root_key_exists() {
    Answer answer = send("DescribeKey", json{{"KeyId", key_id_}}.dump());
    if (answer.status != 200 && answer.error_type == "NotFoundException") return false;
    if (answer.status != 200) throw failure(answer);
    return parse_answer(answer.body, describe()).value("KeyMetadata", json::object()).value("Enabled", false);
}

void AwsKmsProvider::create_root_key() {
    // The server never creates KMS keys either: key policy and ownership belong to the operator.
    throw Error(ExitCode::provider, fmt::format("{} does not exist or is not enabled", describe()),
                "create the key in AWS KMS (or enable it) and run again");
}

DbKey AwsKmsProvider::generate_db_key() {
    std::string answer = call("GenerateDataKey", json{{"KeyId", key_id_}, {"KeySpec", settings_.algorithm}}.dump());
    json body = parse_answer(answer, describe());
    scrub(answer);
    DbKey key;
    Bytes plaintext = blob_field(body, "Plaintext", describe());
    key.plaintext.assign(plaintext.begin(), plaintext.end());
    Botan::secure_scrub_memory(plaintext.data(), plaintext.size());
    key.wrapped = blob_field(body, "CiphertextBlob", describe());
    if (key.plaintext.size() != 32)
        fail(ExitCode::provider, "{}: GenerateDataKey returned a {}-byte key; the db key must be 32 bytes (KeySpec AES_256)",
             describe(), key.plaintext.size());
    return key;
}

Bytes AwsKmsProvider::wrap(const SecretBytes& db_key) {
    std::string request = json{{"KeyId", key_id_}, {"Plaintext", base64(db_key)}}.dump();
    std::string answer = call("Encrypt", request);
    scrub(request);
    return blob_field(parse_answer(answer, describe()), "CiphertextBlob", describe());
}

Unwrapped AwsKmsProvider::decrypt(ByteView wrapped) {
    // Real KMS takes only its own enum here; the configured KeySpec (AES_256) is not one (spec §3).
    Answer answer = send("Decrypt", json{{"CiphertextBlob", base64(wrapped)},
                                         {"KeyId", key_id_},
                                         {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}}
                                        .dump());
    if (answer.status != 200) return failure(answer);
    json body = parse_answer(answer.body, describe());
    scrub(answer.body);
    Bytes plaintext = blob_field(body, "Plaintext", describe());
    SecretBytes key(plaintext.begin(), plaintext.end());
    Botan::secure_scrub_memory(plaintext.data(), plaintext.size());
    if (key.size() != 32) fail(ExitCode::provider, "{}: the unwrapped db key has {} bytes, not 32", describe(), key.size());
    return key;
}

std::optional<SecretBytes> AwsKmsProvider::try_unwrap(ByteView wrapped) { return key_or_nothing(decrypt(wrapped)); }

SecretBytes AwsKmsProvider::unwrap(ByteView wrapped) { return key_or_throw(decrypt(wrapped)); }

Bytes AwsKmsProvider::reencrypt(ByteView wrapped, const std::string& destination_key_id) {
    std::string answer = call("ReEncrypt", json{{"CiphertextBlob", base64(wrapped)},
                                                {"SourceKeyId", key_id_},
                                                {"DestinationKeyId", kms_key_id(destination_key_id)}}
                                               .dump());
    return blob_field(parse_answer(answer, describe()), "CiphertextBlob", describe());
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
