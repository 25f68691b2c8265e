// awskms, vault and the kubernetes secret storage against the protocol peers (run_with_peers.py).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include <botan/base64.h>

#include "error_of.h"
#include "peer_control.h"
#include "providers/aws_credentials.h"
#include "providers/awskms.h"
#include "providers/vault.h"
#include "secrets/kubernetes.h"
#include "secrets/server_pod.h"
#include "util/error.h"

using namespace ik;
using ik::test::peer_env;
namespace fs = std::filesystem;

namespace {

using test::error_of;

config::Environment env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

SecretBytes secret_of(const std::string& text) { return SecretBytes(text.begin(), text.end()); }

// ---- KMS ----

providers::AwsKmsSettings kms_settings(const std::string& key_id = "alias/infra") {
    providers::AwsKmsSettings s;
    s.endpoint = peer_env("IK_PEER_KMS_URL") + "/";
    s.region = peer_env("IK_PEER_KMS_REGION");
    s.root_key_id = key_id;
    s.credentials = {peer_env("IK_PEER_KMS_ACCESS_KEY"), secret_of(peer_env("IK_PEER_KMS_SECRET_KEY")),
                     secret_of(peer_env("IK_PEER_KMS_SESSION_TOKEN"))};
    return s;
}

test::PeerControl kms_peer() {
    test::PeerControl peer(peer_env("IK_PEER_KMS_URL"));
    peer.reset();
    return peer;
}

// ---- Vault ----

providers::VaultSettings vault_settings_for(const std::string& key_name) {
    providers::VaultSettings s;
    s.address = peer_env("IK_PEER_VAULT_URL");
    s.token = peer_env("IK_PEER_VAULT_TOKEN");
    s.key_name = key_name;
    s.tls.ca_file = peer_env("IK_PEER_VAULT_CA");
    return s;
}

test::PeerControl vault_peer() {
    test::PeerControl peer(peer_env("IK_PEER_VAULT_URL"), peer_env("IK_PEER_VAULT_CA"));
    peer.reset();
    return peer;
}

// ---- Kubernetes ----

test::PeerControl kube_peer() {
    test::PeerControl peer(peer_env("IK_PEER_KUBE_URL"), peer_env("IK_PEER_KUBE_CA"));
    peer.reset();
    return peer;
}

secrets::KubernetesSecretStorage kube_storage(const std::string& kubeconfig, const std::string& namespace_option = {}) {
    return secrets::KubernetesSecretStorage(secrets::kubeconfig_connection(kubeconfig), namespace_option);
}

void put_secret(test::PeerControl& peer, const std::string& ns, const std::string& name,
                const std::map<std::string, std::string>& data) {
    nlohmann::json encoded = nlohmann::json::object();
    for (const auto& [k, v] : data) encoded[k] = Botan::base64_encode(reinterpret_cast<const uint8_t*>(v.data()), v.size());
    peer.control({{"put_secret", {{"namespace", ns}, {"name", name}, {"data", encoded}}}});
}

std::map<std::string, std::string> secret_data(test::PeerControl& peer, const std::string& ns, const std::string& name) {
    auto secrets = peer.dump()["secrets"];
    std::map<std::string, std::string> out;
    if (!secrets.contains(ns + "/" + name)) return out;
    for (auto& [k, v] : secrets[ns + "/" + name]["data"].items()) {
        auto bytes = Botan::base64_decode(v.get<std::string>());
        out[k] = std::string(bytes.begin(), bytes.end());
    }
    return out;
}

}  // namespace

TEST_CASE("a KMS data key round-trips: GenerateDataKey stores the raw CiphertextBlob and Decrypt opens it") {
    auto peer = kms_peer();
    providers::AwsKmsProvider kms(kms_settings());
    CHECK(kms.kind() == "awskms");
    CHECK(kms.root_key_id() == "alias/infra");
    CHECK(kms.algorithm() == "AES_256");
    providers::DbKey key = kms.generate_db_key();
    CHECK(key.plaintext.size() == 32);
    CHECK(key.wrapped.front() == 0x01);  // the peer's blob format: raw bytes, not base64 text
    CHECK(kms.unwrap(key.wrapped) == key.plaintext);
    CHECK(kms.unwrap(kms.wrap(key.plaintext)) == key.plaintext);
    CHECK(peer.count("GenerateDataKey") == 1);
    CHECK(peer.count("Decrypt") == 2);
    CHECK(peer.count("Encrypt") == 1);
}

TEST_CASE("KMS ReEncrypt moves the db key to another key without changing it") {
    kms_peer();
    providers::AwsKmsProvider infra(kms_settings());
    providers::AwsKmsProvider other(kms_settings(peer_env("IK_PEER_KMS_OTHER_ARN")));
    providers::DbKey key = infra.generate_db_key();
    Bytes moved = infra.reencrypt(key.wrapped, "alias/other");
    CHECK(moved != key.wrapped);
    CHECK(other.unwrap(moved) == key.plaintext);
    CHECK(error_of([&] { infra.unwrap(moved); }).code() == ExitCode::wrong_key);
}

TEST_CASE("a db key wrapped by another KMS key is a wrong_key error naming KMS's own error") {
    kms_peer();
    providers::AwsKmsProvider infra(kms_settings());
    providers::AwsKmsProvider other(kms_settings("alias/other"));
    Error e = error_of([&] { other.unwrap(infra.generate_db_key().wrapped); });
    CHECK(e.code() == ExitCode::wrong_key);
    CHECK(std::string(e.what()).find("IncorrectKeyException") != std::string::npos);
    CHECK(std::string(e.what()).rfind("awskms " + peer_env("IK_PEER_KMS_URL") + "/: KMS Decrypt: ", 0) == 0);
}

TEST_CASE("try_unwrap answers 'not this key' as a value for another KMS key's wrapping") {
    kms_peer();
    providers::AwsKmsProvider infra(kms_settings());
    providers::AwsKmsProvider other(kms_settings("alias/other"));
    providers::DbKey key = infra.generate_db_key();
    CHECK_FALSE(other.try_unwrap(key.wrapped).has_value());
    CHECK(infra.try_unwrap(key.wrapped) == key.plaintext);
}

TEST_CASE("a disabled KMS key is a provider error and does not count as existing") {
    auto peer = kms_peer();
    providers::AwsKmsProvider kms(kms_settings());
    providers::DbKey key = kms.generate_db_key();
    CHECK(kms.root_key_exists());
    CHECK(kms.status(key.wrapped) == std::vector<std::string>{"KMS key " + peer_env("IK_PEER_KMS_KEY_ARN") + " state Enabled"});
    peer.control({{"disable_key", "alias/infra"}});
    Error e = error_of([&] { kms.unwrap(key.wrapped); });
    peer.control({{"enable_key", "alias/infra"}});
    CHECK(e.code() == ExitCode::provider);
    CHECK(std::string(e.what()).find("DisabledException") != std::string::npos);
    peer.control({{"disable_key", "alias/infra"}});
    bool exists = kms.root_key_exists();
    peer.control({{"enable_key", "alias/infra"}});
    CHECK_FALSE(exists);
}

TEST_CASE("a KMS key that does not exist is reported as missing, not as an error") {
    kms_peer();
    providers::AwsKmsProvider kms(kms_settings("alias/nonexistent"));
    CHECK_FALSE(kms.root_key_exists());
    CHECK(error_of([&] { kms.create_root_key(); }).code() == ExitCode::provider);
}

TEST_CASE("KMS answering 503 twice is retried and the third Decrypt succeeds") {
    auto peer = kms_peer();
    providers::AwsKmsProvider kms(kms_settings());
    providers::DbKey key = kms.generate_db_key();
    peer.fail({{"status", 503}, {"times", 2}, {"op", "Decrypt"}});
    CHECK(kms.unwrap(key.wrapped) == key.plaintext);
    CHECK(peer.count("Decrypt") == 3);
}

TEST_CASE("KMS answering 403 is not retried") {
    auto peer = kms_peer();
    providers::AwsKmsProvider kms(kms_settings());
    providers::DbKey key = kms.generate_db_key();
    peer.fail({{"status", 403}, {"times", 3}, {"op", "Decrypt"}, {"type", "AccessDeniedException"}, {"message", "not allowed"}});
    Error e = error_of([&] { kms.unwrap(key.wrapped); });
    CHECK(e.code() == ExitCode::provider);
    CHECK(std::string(e.what()).find("AccessDeniedException: not allowed") != std::string::npos);
    CHECK(peer.count("Decrypt") == 1);
}

TEST_CASE("a wrong KMS secret key is a provider error that names neither the secret nor the session token") {
    kms_peer();
    auto settings = kms_settings();
    settings.credentials.secret_access_key = secret_of("wrong-secret-key");
    providers::AwsKmsProvider kms(settings);
    Error e = error_of([&] { kms.root_key_exists(); });
    std::string message = e.what();
    CHECK(e.code() == ExitCode::provider);
    CHECK(message.find("InvalidSignatureException") != std::string::npos);
    CHECK(message.find(peer_env("IK_PEER_KMS_SESSION_TOKEN")) == std::string::npos);
    CHECK(message.find("wrong-secret-key") == std::string::npos);
}

TEST_CASE("KMS settings come from the keys entry, then the AWS environment, then the AWS files") {
    std::string dir = peer_env("IK_PEER_TMP") + "/aws";
    fs::create_directories(dir);
    std::ofstream(dir + "/credentials") << "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n"
                                           "[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = s2\naws_session_token = t2\n";
    std::ofstream(dir + "/config") << "[default]\nregion = us-west-2\n[profile ops]\nregion = ap-south-1\n";
    config::Config cfg;
    cfg.home = "/nonexistent";
    cfg.db_encryption_key = "alias/infra";
    config::KeyProvider entry{"awskms", {}, 0};
    auto files_env = std::map<std::string, std::string>{{"AWS_SHARED_CREDENTIALS_FILE", dir + "/credentials"},
                                                        {"AWS_CONFIG_FILE", dir + "/config"}};

    SUBCASE("the default profile and its region, and the regional endpoint") {
        auto env = env_of(files_env);
        secrets::SecretStorages storages(cfg, env);
        auto s = providers::awskms_settings(cfg, entry, storages, env);
        CHECK(s.credentials.access_key_id == "AKIDDEFAULT");
        CHECK(s.region == "us-west-2");
        CHECK(s.endpoint == "https://kms.us-west-2.amazonaws.com/");
        CHECK(s.algorithm == "AES_256");
        CHECK(s.tls.ca_file.empty());
    }
    SUBCASE("a CA bundle from the keys entry wins over AWS_CA_BUNDLE") {
        auto vars = files_env;
        vars["AWS_CA_BUNDLE"] = "/env-ca.pem";
        auto env = env_of(vars);
        secrets::SecretStorages storages(cfg, env);
        CHECK(providers::awskms_settings(cfg, entry, storages, env).tls.ca_file == "/env-ca.pem");
        config::KeyProvider with_ca{"awskms", {{"cabundle", "/etc/infra/kms-ca.pem"}}, 0};
        CHECK(providers::awskms_settings(cfg, with_ca, storages, env).tls.ca_file == "/etc/infra/kms-ca.pem");
    }
    SUBCASE("AWS_PROFILE picks another profile, with its session token and region") {
        auto vars = files_env;
        vars["AWS_PROFILE"] = "ops";
        auto env = env_of(vars);
        secrets::SecretStorages storages(cfg, env);
        auto s = providers::awskms_settings(cfg, entry, storages, env);
        CHECK(s.credentials.access_key_id == "AKIDOPS");
        CHECK(ik::as_text(s.credentials.session_token) == "t2");
        CHECK(s.region == "ap-south-1");
    }
    SUBCASE("environment credentials and region win over the files") {
        auto vars = files_env;
        vars.insert({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "s3"}, {"AWS_SESSION_TOKEN", "t3"},
                     {"AWS_REGION", "eu-central-1"}});
        auto env = env_of(vars);
        secrets::SecretStorages storages(cfg, env);
        auto s = providers::awskms_settings(cfg, entry, storages, env);
        CHECK(s.credentials.access_key_id == "AKIDENV");
        CHECK(ik::as_text(s.credentials.session_token) == "t3");
        CHECK(s.region == "eu-central-1");
    }
    SUBCASE("the keys entry wins, its secrets resolved as references") {
        auto vars = files_env;
        vars.insert({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "s3"}, {"MY_KMS_SECRET", "s4"}});
        auto env = env_of(vars);
        secrets::SecretStorages storages(cfg, env);
        config::KeyProvider configured{"awskms",
                                       {{"accesskeyid", "AKIDCONFIG"},
                                        {"secretaccesskey", "env:MY_KMS_SECRET"},
                                        {"region", "sa-east-1"},
                                        {"endpoint", "https://kms.example.test"},
                                        {"encryptionalgorithm", "AES_128"}},
                                       0};
        auto s = providers::awskms_settings(cfg, configured, storages, env);
        CHECK(s.credentials.access_key_id == "AKIDCONFIG");
        CHECK(s.credentials.secret_access_key == secret_of("s4"));
        CHECK(s.credentials.session_token.empty());
        CHECK(s.region == "sa-east-1");
        CHECK(s.endpoint == "https://kms.example.test/");
        CHECK(s.algorithm == "AES_128");
    }
    SUBCASE("no credentials anywhere is a usage error") {
        auto env = env_of({{"AWS_SHARED_CREDENTIALS_FILE", dir + "/none"}, {"AWS_REGION", "us-east-1"}});
        secrets::SecretStorages storages(cfg, env);
        CHECK(error_of([&] { providers::awskms_settings(cfg, entry, storages, env); }).code() == ExitCode::usage);
    }
}

TEST_CASE("a KMS id that the server made absolute is sent to KMS without the directory") {
    CHECK(providers::kms_key_id("alias/infra") == "alias/infra");
    CHECK(providers::kms_key_id("/srv/infra/alias/infra") == "alias/infra");
    CHECK(providers::kms_key_id("/srv/arn:aws:kms:us-east-1:111122223333:key/1234") ==
          "arn:aws:kms:us-east-1:111122223333:key/1234");
    CHECK(providers::kms_key_id("/srv/1234abcd-12ab-34cd-56ef-1234567890ab") == "1234abcd-12ab-34cd-56ef-1234567890ab");
    CHECK(error_of([] { providers::AwsKmsProvider(kms_settings("~/.infra/sqlite3.db.key")); }).code() == ExitCode::usage);
}

TEST_CASE("a Vault transit key wraps and unwraps the db key as vault:v1: text") {
    vault_peer();
    providers::VaultProvider vault(vault_settings_for("infra-roundtrip"));
    CHECK_FALSE(vault.root_key_exists());
    vault.create_root_key();
    CHECK(vault.root_key_exists());
    CHECK(vault.root_key_id() == "infra-roundtrip");
    CHECK(vault.algorithm() == "aes256-gcm96");
    providers::DbKey key = vault.generate_db_key();
    CHECK(key.plaintext.size() == 32);
    CHECK(std::string(as_text(key.wrapped)).rfind("vault:v1:", 0) == 0);
    CHECK(vault.unwrap(key.wrapped) == key.plaintext);
}

TEST_CASE("rotating the transit key and rewrapping gives vault:v2: that opens to the same db key") {
    vault_peer();
    providers::VaultProvider vault(vault_settings_for("infra-rotate"));
    vault.create_root_key();
    providers::DbKey key = vault.generate_db_key();
    vault.rotate_key();
    Bytes rewrapped = vault.rewrap(key.wrapped);
    CHECK(std::string(as_text(rewrapped)).rfind("vault:v2:", 0) == 0);
    CHECK(vault.unwrap(rewrapped) == key.plaintext);
    auto info = vault.read_key();
    CHECK(info.latest_version == 2);
    CHECK(info.min_decryption_version == 1);
    CHECK(vault.status(rewrapped) == std::vector<std::string>{"wrapped by key version 2 (latest 2, min_decryption_version 1)"});
}

TEST_CASE("a db key wrapped by another transit key is a wrong_key error") {
    vault_peer();
    providers::VaultProvider a(vault_settings_for("infra-a"));
    providers::VaultProvider b(vault_settings_for("infra-b"));
    a.create_root_key();
    b.create_root_key();
    Error e = error_of([&] { b.unwrap(a.generate_db_key().wrapped); });
    CHECK(e.code() == ExitCode::wrong_key);
    CHECK(std::string(e.what()).find("message authentication failed") != std::string::npos);
    providers::DbKey key = a.generate_db_key();
    CHECK_FALSE(b.try_unwrap(key.wrapped).has_value());
    CHECK_FALSE(b.try_unwrap(as_bytes("not a vault ciphertext")).has_value());
    CHECK(a.try_unwrap(key.wrapped) == key.plaintext);
}

TEST_CASE("a bad Vault token is a provider error whose message does not contain the token") {
    vault_peer();
    auto settings = vault_settings_for("infra-token");
    settings.token = "hvs.not-the-right-token";
    providers::VaultProvider vault(settings);
    Error e = error_of([&] { vault.create_root_key(); });
    CHECK(e.code() == ExitCode::provider);
    CHECK(std::string(e.what()).find("permission denied") != std::string::npos);
    CHECK(std::string(e.what()).find("hvs.not-the-right-token") == std::string::npos);
}

TEST_CASE("a rotation answered 503 is not repeated") {
    auto peer = vault_peer();
    providers::VaultProvider vault(vault_settings_for("infra-once"));
    vault.create_root_key();
    peer.reset();
    peer.fail({{"status", 503}, {"times", 3}});
    CHECK(error_of([&] { vault.rotate_key(); }).code() == ExitCode::provider);
    CHECK(peer.stats()["total"] == 1);
    peer.reset();
    CHECK(vault.read_key().latest_version == 1);
}

TEST_CASE("Vault settings fall back on VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE and VAULT_CACERT") {
    config::Config cfg;
    cfg.db_encryption_key = "~/.infra/sqlite3.db.key";  // config's default when unset
    auto env = env_of({{"VAULT_ADDR", "https://vault.test:8200"}, {"VAULT_TOKEN", "tok"}, {"VAULT_NAMESPACE", "team/a"},
                       {"VAULT_CACERT", "/ca.pem"}, {"MY_VAULT_TOKEN", "from-ref"}});
    secrets::SecretStorages storages(cfg, env);
    auto s = providers::vault_settings(cfg, {"vault", {}, 0}, storages, env);
    CHECK(s.address == "https://vault.test:8200");
    CHECK(s.token == "tok");
    CHECK(s.namespace_name == "team/a");
    CHECK(s.tls.ca_file == "/ca.pem");
    CHECK(s.transit_mount == "/transit");
    CHECK(s.key_name == "__infra-root");

    cfg.db_encryption_key = "/srv/infra/my-root";
    auto configured = providers::vault_settings(
        cfg, {"vault", {{"address", "https://v"}, {"token", "env:MY_VAULT_TOKEN"}, {"transitmount", "crypto/"},
                        {"cabundle", "/etc/infra/vault-ca.pem"}}, 0}, storages, env);
    CHECK(configured.token == "from-ref");
    CHECK(configured.tls.ca_file == "/etc/infra/vault-ca.pem");
    CHECK(configured.transit_mount == "/crypto");
    CHECK(configured.key_name == "my-root");
}

TEST_CASE("a kubernetes secret is read through a kubeconfig with a token; absent objects and keys are nullopt") {
    auto peer = kube_peer();
    put_secret(peer, "team", "infra-x", {{"__root_key", std::string("\x00\x01\xff", 3)}});
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_TOKEN"));
    CHECK(storage.namespace_name() == "team");
    CHECK(storage.get("infra-x/__root_key") == SecretBytes{0x00, 0x01, 0xff});
    CHECK_FALSE(storage.get("infra-x/other").has_value());
    CHECK_FALSE(storage.get("no-such-secret/key").has_value());
    CHECK(storage.describe("infra-x/__root_key") == "kubernetes secret team/infra-x key __root_key");
}

TEST_CASE("setting a key of a missing secret creates it, and of an existing one updates only that key") {
    auto peer = kube_peer();
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_TOKEN"));
    storage.set("created/a", secret_of("one"));
    CHECK(peer.count("secrets.create") == 1);
    storage.set("created/b", secret_of("two"));
    CHECK(peer.count("secrets.update") == 1);
    CHECK(secret_data(peer, "team", "created") == std::map<std::string, std::string>{{"a", "one"}, {"b", "two"}});
    CHECK(storage.names_with_prefix("created/") == std::vector<std::string>{"created/a", "created/b"});
    storage.remove("created/a");
    CHECK(secret_data(peer, "team", "created") == std::map<std::string, std::string>{{"b", "two"}});
}

TEST_CASE("set_many replaces one key and deletes another in a single update") {
    auto peer = kube_peer();
    put_secret(peer, "team", "rotating", {{"__root_key", "old"}, {"__root_key.retired", "older"}});
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_TOKEN"));
    storage.set_many("rotating", {{"__root_key", secret_of("new")}, {"__root_key.retired", std::nullopt},
                                  {"__root_key.previous", secret_of("old")}});
    CHECK(peer.count("secrets.update") == 1);
    CHECK(secret_data(peer, "team", "rotating") ==
          std::map<std::string, std::string>{{"__root_key", "new"}, {"__root_key.previous", "old"}});
}

TEST_CASE("a secret changed between read and write is refused and nothing is written") {
    auto peer = kube_peer();
    put_secret(peer, "team", "contended", {{"k", "v1"}});
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_TOKEN"));
    // Hold our PATCH back long enough for another writer to change the Secret.
    peer.fail({{"op", "secrets.update"}, {"delay_ms", 1500}, {"times", 1}});
    std::optional<Error> error;
    // No doctest assertion may run on another thread: catch there, check here.
    std::thread writer([&] {
        try {
            storage.set("contended/k", secret_of("ours"));
        } catch (const Error& e) {
            error = e;
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    put_secret(peer, "team", "contended", {{"k", "theirs"}});
    writer.join();
    REQUIRE(error.has_value());
    CHECK(error->code() == ExitCode::refused);
    CHECK(std::string(error->what()) == "kubernetes secret team/contended changed concurrently; nothing written");
    CHECK(secret_data(peer, "team", "contended") == std::map<std::string, std::string>{{"k", "theirs"}});
}

TEST_CASE("creating a kubernetes key that exists is refused, so two rotations cannot claim one slot") {
    auto peer = kube_peer();
    put_secret(peer, "team", "slots", {{"__root_key", "old"}, {"__root_key.new", "theirs"}});
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_TOKEN"));
    Error e = error_of([&] { storage.create("slots/__root_key.new", secret_of("ours")); });
    CHECK(e.code() == ExitCode::refused);
    CHECK(std::string(e.what()) == "kubernetes secret team/slots key __root_key.new already exists; not replacing it");
    storage.create("slots/__root_key.other", secret_of("ours"));
    CHECK(secret_data(peer, "team", "slots") ==
          std::map<std::string, std::string>{{"__root_key", "old"}, {"__root_key.new", "theirs"}, {"__root_key.other", "ours"}});
}

TEST_CASE("renaming a kubernetes key within one secret is a single update that replaces the target") {
    auto peer = kube_peer();
    put_secret(peer, "team", "installing", {{"__root_key", "old"}, {"__root_key.new", "new"}});
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_TOKEN"));
    peer.reset();
    storage.rename("installing/__root_key.new", "installing/__root_key");
    CHECK(peer.count("secrets.update") == 1);
    CHECK(secret_data(peer, "team", "installing") == std::map<std::string, std::string>{{"__root_key", "new"}});
    Error e = error_of([&] { storage.rename("installing/__root_key.new", "installing/__root_key"); });
    CHECK(e.code() == ExitCode::provider);
}

TEST_CASE("a kubeconfig with a client certificate reaches the API; the namespace option overrides the context") {
    auto peer = kube_peer();
    put_secret(peer, "infra", "by-cert", {{"k", "v"}});
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_CERT"), "infra");
    CHECK(storage.get("by-cert/k") == secret_of("v"));
}

TEST_CASE("a kubeconfig with inline -data fields for the CA and the client certificate works") {
    auto peer = kube_peer();
    put_secret(peer, "default", "inline", {{"k", "v"}});
    auto b64 = [](const std::string& path) {
        std::string text = read_text(path);
        return Botan::base64_encode(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    };
    std::string path = peer_env("IK_PEER_TMP") + "/kubeconfig-inline";
    std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                        << "clusters:\n- name: k\n  cluster:\n    server: " << peer_env("IK_PEER_KUBE_URL") << "/\n"
                        << "    certificate-authority-data: " << b64(peer_env("IK_PEER_KUBE_CA")) << "\n"
                        << "users:\n- name: u\n  user:\n"
                        << "    client-certificate-data: " << b64(peer_env("IK_PEER_KUBE_CLIENT_CERT")) << "\n"
                        << "    client-key-data: " << b64(peer_env("IK_PEER_KUBE_CLIENT_KEY")) << "\n"
                        << "contexts:\n- name: c\n  context: {cluster: k, user: u}\n";
    auto storage = kube_storage(path);
    CHECK(storage.namespace_name() == "default");
    CHECK(storage.get("inline/k") == secret_of("v"));
}

TEST_CASE("the in-cluster service account directory is used when KUBERNETES_SERVICE_HOST is set") {
    auto peer = kube_peer();
    put_secret(peer, "infra", "in-cluster", {{"k", "v"}});
    auto env = env_of({{"KUBERNETES_SERVICE_HOST", peer_env("IK_PEER_SA_HOST")},
                       {"KUBERNETES_SERVICE_PORT", peer_env("IK_PEER_SA_PORT")},
                       {"INFRA_KEYS_SERVICEACCOUNT_DIR", peer_env("IK_PEER_SA_DIR")}});
    auto storage = secrets::make_kubernetes_storage({"kubernetes", "kubernetes", {}, 0}, env);
    CHECK(storage->get("in-cluster/k") == secret_of("v"));
    CHECK(storage->describe("in-cluster/k") == "kubernetes secret infra/in-cluster key k");
}

TEST_CASE("the in-cluster token file is read again for each request, so a rotated token is used") {
    auto peer = kube_peer();
    put_secret(peer, "infra", "rotating", {{"k", "v"}});
    std::string dir = peer_env("IK_PEER_TMP") + "/sa-rotating";
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(peer_env("IK_PEER_SA_DIR") + "/ca.crt", dir + "/ca.crt",
                               std::filesystem::copy_options::overwrite_existing);
    std::ofstream(dir + "/namespace") << "infra";
    std::ofstream(dir + "/token") << peer_env("IK_PEER_KUBE_TOKEN");
    auto env = env_of({{"KUBERNETES_SERVICE_HOST", peer_env("IK_PEER_SA_HOST")},
                       {"KUBERNETES_SERVICE_PORT", peer_env("IK_PEER_SA_PORT")},
                       {"INFRA_KEYS_SERVICEACCOUNT_DIR", dir}});
    auto storage = secrets::make_kubernetes_storage({"kubernetes", "kubernetes", {}, 0}, env);
    CHECK(storage->get("rotating/k") == secret_of("v"));
    peer.control({{"set_tokens", {"kubelet-rotated-token"}}});
    std::ofstream(dir + "/token") << "kubelet-rotated-token\n";
    CHECK(storage->get("rotating/k") == secret_of("v"));
    peer.control({{"set_tokens", {peer_env("IK_PEER_KUBE_TOKEN")}}});
}

TEST_CASE("a 401 to an exec plugin's token runs the plugin again and retries once") {
    auto peer = kube_peer();
    put_secret(peer, "default", "renewed", {{"k", "v"}});
    std::string dir = peer_env("IK_PEER_TMP");
    std::ofstream(dir + "/exec-tokens") << "revoked-token\n" << peer_env("IK_PEER_KUBE_TOKEN") << "\n";
    std::filesystem::remove(dir + "/exec-calls");
    std::string path = dir + "/kubeconfig-exec-renew";
    std::ofstream(path) << "apiVersion: v1\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {server: \""
                        << peer_env("IK_PEER_KUBE_URL") << "\", certificate-authority: \"" << peer_env("IK_PEER_KUBE_CA")
                        << "\"}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                        << "      command: " << peer_env("IK_PEER_EXEC_PLUGIN") << "\n      interactiveMode: Never\n"
                        << "      args: [--token-file, " << dir << "/exec-tokens, --calls, " << dir << "/exec-calls]\n"
                        << "contexts:\n- name: c\n  context: {cluster: k, user: u}\n";
    auto storage = kube_storage(path);
    CHECK(storage.get("renewed/k") == secret_of("v"));
    CHECK(storage.get("renewed/k") == secret_of("v"));
    std::ifstream calls(dir + "/exec-calls");
    int count = 0;
    calls >> count;
    CHECK(count == 2);  // the revoked token, then one renewal that is reused
    CHECK(peer.stats()["statuses"].value("401", 0) == 1);
}

TEST_CASE("KUBECONFIG wins over the in-cluster service account") {
    auto peer = kube_peer();
    put_secret(peer, "team", "chosen", {{"k", "v"}});
    auto env = env_of({{"KUBERNETES_SERVICE_HOST", "127.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "1"},
                       {"KUBECONFIG", "/nonexistent:" + peer_env("IK_PEER_KUBECONFIG_TOKEN")}});
    auto storage = secrets::make_kubernetes_storage({"kubernetes", "kubernetes", {}, 0}, env);
    CHECK(storage->get("chosen/k") == secret_of("v"));
}

TEST_CASE("a rejected kubernetes token is a provider error that does not contain the token") {
    kube_peer();
    auto storage = kube_storage(peer_env("IK_PEER_KUBECONFIG_BAD_TOKEN"));
    Error e = error_of([&] { storage.get("any/key"); });
    CHECK(e.code() == ExitCode::provider);
    CHECK(std::string(e.what()).find("Unauthorized (HTTP 401)") != std::string::npos);
    CHECK(std::string(e.what()).find("not-the-kube-token") == std::string::npos);
}

TEST_CASE("a kubeconfig with an auth-provider plugin is a usage error that names the exec replacement") {
    std::string path = peer_env("IK_PEER_TMP") + "/kubeconfig-auth-provider";
    std::ofstream(path) << "apiVersion: v1\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {server: https://127.0.0.1:1}\n"
                           "users:\n- name: u\n  user:\n    auth-provider: {name: gcp}\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n";
    Error e = error_of([&] { secrets::kubeconfig_connection(path); });
    CHECK(e.code() == ExitCode::usage);
    CHECK(e.hint().find("exec plugin") != std::string::npos);
}

// ---- AWS credential sources ----

TEST_CASE("credential_process is split like a POSIX shell line, without a shell") {
    CHECK(providers::split_command_line("/usr/bin/aws-vault exec ops --json") ==
          std::vector<std::string>{"/usr/bin/aws-vault", "exec", "ops", "--json"});
    CHECK(providers::split_command_line(R"(helper 'two words' "say \"hi\"" back\ slash)") ==
          std::vector<std::string>{"helper", "two words", "say \"hi\"", "back slash"});
    CHECK(providers::split_command_line("  ").empty());
    CHECK(error_of([] { providers::split_command_line("helper 'open"); }).code() == ExitCode::usage);
}

TEST_CASE("an AssumeRoleWithWebIdentity answer gives the temporary credentials, entities decoded") {
    auto credentials = providers::sts_credentials_of(
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        "<SessionToken>FwoG&amp;token</SessionToken><SecretAccessKey>wJalr/K7&lt;x</SecretAccessKey>"
        "<Expiration>2026-12-02T13:00:00Z</Expiration><AccessKeyId>ASIAEXAMPLE</AccessKeyId>"
        "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        "sts");
    CHECK(credentials.access_key_id == "ASIAEXAMPLE");
    CHECK(std::string(as_text(credentials.secret_access_key)) == "wJalr/K7<x");
    CHECK(ik::as_text(credentials.session_token) == "FwoG&token");
    Error e = error_of([] { providers::sts_credentials_of("<ErrorResponse/>", "sts here"); });
    CHECK(e.code() == ExitCode::provider);
    CHECK(std::string(e.what()) == "sts here: the answer has no Credentials");
}

// ---- the server's Deployment (--kube-deployment) ----

namespace {

// A Deployment of two containers: a sidecar first, then the server reading its config from a
// ConfigMap mounted by subPath, its key from a Secret volume with `items`, env from the API.
void put_server_deployment(test::PeerControl& peer) {
    nlohmann::json server = {
        {"name", "api"},
        {"args", {"server", "--config-file=/config/server.yaml"}},
        {"env", {{{"name", "PLAIN"}, {"value", "first"}},
                 {{"name", "PLAIN"}, {"value", "last"}},
                 {{"name", "POD_NAMESPACE"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.namespace"}}}}}},
                 {{"name", "FROM_SECRET"}, {"valueFrom", {{"secretKeyRef", {{"name", "db"}, {"key", "password"}}}}}},
                 {{"name", "OPTIONAL_GONE"},
                  {"valueFrom", {{"secretKeyRef", {{"name", "gone"}, {"key", "x"}, {"optional", true}}}}}}}},
        {"envFrom", {{{"prefix", "CM_"}, {"configMapRef", {{"name", "settings"}}}}}},
        {"volumeMounts", {{{"name", "conf"}, {"mountPath", "/config/server.yaml"}, {"subPath", "infra.yaml"}},
                          {{"name", "key"}, {"mountPath", "/keys/"}},
                          {{"name", "scratch"}, {"mountPath", "/tmp"}}}}};
    nlohmann::json pod = {
        {"containers", {{{"name", "sidecar"}, {"args", {"sleep", "infinity"}}}, server}},
        {"volumes", {{{"name", "conf"}, {"configMap", {{"name", "server-conf"}}}},
                     {{"name", "key"}, {"secret", {{"secretName", "root"}, {"items", {{{"key", "data"}, {"path", "root.key"}}}}}}},
                     {{"name", "scratch"}, {"emptyDir", nlohmann::json::object()}}}}};
    nlohmann::json deployment = {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", {{"name", "api"}}},
                                 {"spec", {{"template", {{"spec", pod}}}}}};
    peer.control({{"put_object", {{"resource", "deployments"}, {"namespace", "pods"}, {"object", deployment}}}});
    nlohmann::json conf = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "server-conf"}}},
                           {"data", {{"infra.yaml", "dbEncryptionKey: /keys/root.key\n"}}}};
    peer.control({{"put_object", {{"resource", "configmaps"}, {"namespace", "pods"}, {"object", conf}}}});
    nlohmann::json settings = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "settings"}}},
                               {"data", {{"REGION", "eu"}}}};
    peer.control({{"put_object", {{"resource", "configmaps"}, {"namespace", "pods"}, {"object", settings}}}});
    put_secret(peer, "pods", "db", {{"password", "pw"}});
    put_secret(peer, "pods", "root", {{"data", std::string(32, 'k')}});
}

secrets::ServerPod server_pod() {
    return secrets::ServerPod(secrets::kubeconfig_connection(peer_env("IK_PEER_KUBECONFIG_TOKEN")), {"pods", "api"});
}

}  // namespace

TEST_CASE("the server container's config is read through a subPath mount, and its env through the API") {
    auto peer = kube_peer();
    put_server_deployment(peer);
    auto pod = server_pod();
    CHECK(pod.config_text() == "dbEncryptionKey: /keys/root.key\n");
    CHECK(pod.config_source() == "configmap pods/server-conf key infra.yaml (/config/server.yaml of deployment pods/api)");
    auto env = pod.environment([](const std::string& name) -> std::optional<std::string> {
        if (name == "HOME" || name == "INFRA_SERVER_DB_FILE") return "local";
        return std::nullopt;
    });
    CHECK(env("PLAIN") == "last");
    CHECK(env("POD_NAMESPACE") == "pods");
    CHECK(env("FROM_SECRET") == "pw");
    CHECK(env("OPTIONAL_GONE") == std::nullopt);
    CHECK(env("CM_REGION") == "eu");
    CHECK(env("HOME") == "local");
    CHECK(env("INFRA_SERVER_DB_FILE") == std::nullopt);  // the operator's own do not describe the server
}

TEST_CASE("files map to their volume's keys: items, companions of a rotation, and what no Secret holds") {
    auto peer = kube_peer();
    put_server_deployment(peer);
    auto pod = server_pod();
    auto file = pod.locate("/keys/root.key");
    CHECK((file.secret && file.object == "root" && file.key == "data"));
    CHECK(pod.locate("/keys/root.key.new").key == "root.key.new");
    CHECK(pod.locate("/config/server.yaml").key == "infra.yaml");
    Error scratch = error_of([&] { pod.locate("/tmp/key"); });
    CHECK(scratch.code() == ExitCode::usage);
    CHECK(std::string(scratch.what()) == "file /tmp/key is on volume scratch (emptyDir) of deployment pods/api, "
                                         "which infra-keys cannot reach through the Kubernetes API");
    CHECK(std::string(error_of([&] { pod.locate("/etc/key"); }).what()) ==
          "file /etc/key is not on a Secret or ConfigMap volume of deployment pods/api");

    config::Config cfg;
    secrets::SecretStorages storages(cfg, [](const std::string&) { return std::optional<std::string>(); });
    pod.mount_into(storages, cfg, [](const std::string&) { return std::optional<std::string>(); });
    auto& files = storages.named("file");
    CHECK(files.get("/keys/root.key") == secret_of(std::string(32, 'k')));
    CHECK(files.describe("/keys/root.key") == "file /keys/root.key (secret pods/root key data)");
    files.create("/keys/root.key.new", secret_of("next"));
    CHECK(files.names_with_prefix("/keys/root.key.") == std::vector<std::string>{"/keys/root.key.new"});
    CHECK(secret_data(peer, "pods", "root") == std::map<std::string, std::string>{{"data", std::string(32, 'k')}, {"root.key.new", "next"}});
    Error config_map = error_of([&] { files.set("/config/server.yaml", secret_of("x")); });
    CHECK(config_map.code() == ExitCode::usage);
}

TEST_CASE("a missing deployment, config key or secretKeyRef key is a usage error naming the object") {
    auto peer = kube_peer();
    put_server_deployment(peer);
    peer.control({{"delete_object", "deployments/pods/api"}});
    CHECK(std::string(error_of([] { server_pod(); }).what()).rfind("deployment pods/api does not exist [", 0) == 0);
    put_server_deployment(peer);
    put_secret(peer, "pods", "db", {{"other", "x"}});
    auto pod = server_pod();
    auto env = pod.environment([](const std::string&) { return std::optional<std::string>(); });
    Error e = error_of([&] { env("FROM_SECRET"); });
    CHECK(e.code() == ExitCode::usage);
    CHECK(std::string(e.what()) == "env FROM_SECRET of deployment pods/api: secret pods/db has no key password");
    CHECK(error_of([] { secrets::parse_deployment_name("api"); }).code() == ExitCode::usage);
}
