// The `awskms` root key provider: the db key is a KMS data key (JSON 1.1 API, SigV4).
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "config/config.h"
#include "net/http.h"
#include "net/sigv4.h"
#include "providers/root_key_provider.h"
#include "secrets/secret_store.h"
#include "util/secret_json.h"
#include "util/error.h"

namespace ik::providers {

struct AwsKmsSettings {
    std::string endpoint;     // https://kms.<region>.amazonaws.com unless configured
    std::string region;
    std::string root_key_id;  // dbEncryptionKey as configured (written to encryption_keys.root_key_id)
    std::string algorithm = "AES_256";  // KeySpec of GenerateDataKey; stored as `algorithm`
    net::sigv4::Credentials credentials;
    net::TlsOptions tls;      // caBundle of the entry, else AWS_CA_BUNDLE
};

// Settings from the `keys:` entry (accessKeyID, secretAccessKey and sessionToken as secret
// references), else the AWS credential sources of aws_credentials.h; region from the entry, AWS_REGION,
// AWS_DEFAULT_REGION, else the profile in AWS_CONFIG_FILE or ~/.aws/config; endpoint from the
// entry, AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL. Throws ik::Error(usage) naming what is missing.
AwsKmsSettings awskms_settings(const config::Config& cfg, const config::KeyProvider& entry,
                               secrets::SecretStorages& storages, const config::Environment& env);

// The id to send to KMS for a configured root key id. The server makes dbEncryptionKey absolute
// even for KMS ids (docs/infra-format.md §1), so "/srv/infra/alias/infra" may reach us from a server-written
// configuration: the KMS part (from "arn:", from "alias/", else the last path segment) is used.
std::string kms_key_id(const std::string& root_key_id);

// KMS answers, parsed without a server (tests/fuzz): the JSON object, else ik::Error(provider)
// naming `where`; a base64 blob field of it (Plaintext, CiphertextBlob) decoded.
SecretJson kms_answer(std::string_view body, const std::string& where);
SecretBytes kms_blob_field(const SecretJson& body, const char* field, const std::string& where);

class AwsKmsProvider : public RootKeyProvider {
public:
    explicit AwsKmsProvider(AwsKmsSettings settings);

    std::string kind() const override { return "awskms"; }
    std::string root_key_id() const override { return settings_.root_key_id; }
    std::string algorithm() const override { return settings_.algorithm; }
    std::string describe() const override;

    bool root_key_exists() override;
    void create_root_key() override;
    DbKey generate_db_key() override;
    Bytes wrap(const SecretBytes& db_key) override;
    std::optional<SecretBytes> try_unwrap(ByteView wrapped) override;
    SecretBytes unwrap(ByteView wrapped) override;
    std::vector<std::string> status(ByteView wrapped) override;
    std::unique_ptr<InPlaceRotation> rotation(const std::optional<std::string>& to_key_id) override;

    // KMS ReEncrypt: `wrapped` re-encrypted under another KMS key inside KMS (rotate-root
    // --to-key-id); the plaintext never leaves KMS.
    Bytes reencrypt(ByteView wrapped, const std::string& destination_key_id);
    // The same endpoint and credentials for another KMS key (the destination of reencrypt).
    std::unique_ptr<AwsKmsProvider> for_key(const std::string& root_key_id) const;

private:
    struct KeyMetadata {
        std::string arn;
        std::string state;  // Enabled, Disabled, PendingDeletion, ...
        bool enabled = false;
    };
    KeyMetadata describe_key();
    // One TrentService operation's answer; `error_type` is KMS's __type without its namespace.
    struct Answer {
        long status = 0;
        SecretString body;
        std::string error_type;
        std::string where;  // "https://kms…: KMS Decrypt", for messages
    };
    Answer send(const std::string& operation, SecretString body);
    // The ik::Error for a non-200 answer: KMS's own message, wrong_key for a key that does not fit.
    Error failure(const Answer& answer) const;
    // Decrypt of a wrapped db key: the key, or KMS's error (wrong_key when another key sealed it).
    Unwrapped decrypt(ByteView wrapped);
    // POSTs one TrentService operation; returns the parsed JSON body of a 200 answer, throws
    // ik::Error naming the operation and KMS's own error for anything else.
    SecretString call(const std::string& operation, SecretString body);

    AwsKmsSettings settings_;
    std::string key_id_;  // what goes into KeyId
    net::Client client_;
};

}  // namespace ik::providers
