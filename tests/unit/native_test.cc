// The native root key provider: the server's wrapping of the db key, key files and their errors.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <botan/hex.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "crypto/seal.h"
#include "providers/native.h"
#include "providers/root_key_provider.h"
#include "secrets/secret_store.h"
#include "util/error.h"

using namespace ik;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/ik-native-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string key_file(const std::string& name, const SecretBytes& bytes, mode_t mode = 0600) const {
        std::string p = (path / name).string();
        std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        ::chmod(p.c_str(), mode);
        return p;
    }
};

SecretBytes key_of(uint8_t fill, size_t size = 32) { return SecretBytes(size, fill); }

Bytes bytes_of(const std::string& text) { return Bytes(text.begin(), text.end()); }

std::pair<ExitCode, std::string> error_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const Error& e) {
        return {e.code(), e.what()};
    }
    return {ExitCode::ok, {}};
}

// What `action` writes to stderr (out::warn goes there).
std::string stderr_of(const std::function<void()>& action) {
    std::fflush(stderr);
    char tmpl[] = "/tmp/ik-native-stderr-XXXXXX";
    int capture = ::mkstemp(tmpl);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(capture, STDERR_FILENO);
    action();
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(capture);
    std::ifstream in(tmpl);
    std::stringstream text;
    text << in.rdbuf();
    ::unlink(tmpl);
    return text.str();
}

nlohmann::json vector_named(const std::string& name) {
    const char* dir = std::getenv("INFRA_KEYS_VECTORS");
    REQUIRE_MESSAGE(dir != nullptr, "INFRA_KEYS_VECTORS is not set");
    std::ifstream in(std::string(dir) + "/infra-seal.json");
    REQUIRE_MESSAGE(in.good(), "cannot open infra-seal.json");
    auto all = nlohmann::json::parse(in);
    for (const auto& v : all["vectors"])
        if (v["name"] == name) return v;
    FAIL("no vector named " << name);
    return {};
}

}  // namespace

TEST_CASE("a db key wrapped by the native provider unwraps to itself") {
    TempDir dir;
    auto provider = providers::make_native_file(dir.key_file("root.key", key_of(7)));
    CHECK(provider->kind() == "native");
    CHECK(provider->algorithm() == "aesgcm");
    CHECK(provider->root_key_id() == (dir.path / "root.key").string());
    providers::DbKey key = provider->generate_db_key();
    CHECK(key.plaintext.size() == 32);
    CHECK(provider->unwrap(key.wrapped) == key.plaintext);
    // The server's shape: unpadded base64 text whose key id is SHA-256("") and root key id empty.
    auto payload = seal::parse(std::string(key.wrapped.begin(), key.wrapped.end()));
    REQUIRE(payload.has_value());
    CHECK(Botan::hex_encode(payload->key_id, false) == "e3b0c442");
    CHECK(payload->root_key_id.empty());
    CHECK(payload->algorithm == "aesgcm");
}

TEST_CASE("the native provider unwraps the server's vector \"native root wraps db key A\"") {
    auto v = vector_named("native root wraps db key A");
    TempDir dir;
    auto provider = providers::make_native_file(dir.key_file("key", Botan::hex_decode_locked(v["key_hex"].get<std::string>())));
    SecretBytes db_key = provider->unwrap(bytes_of(v["sealed"].get<std::string>()));
    CHECK(Botan::hex_encode(db_key.data(), db_key.size(), false) == v["plaintext_hex"].get<std::string>());
}

TEST_CASE("another root key does not unwrap the db key: wrong_key") {
    auto v = vector_named("native root wraps db key A");
    TempDir dir;
    auto provider = providers::make_native_file(dir.key_file("key", key_of(1)));
    auto [code, message] = error_of([&] { provider->unwrap(bytes_of(v["sealed"].get<std::string>())); });
    CHECK(code == ExitCode::wrong_key);
    CHECK(message == "root key file " + (dir.path / "key").string() +
                         " does not unwrap the db key (authentication failed)");
}

TEST_CASE("a stored db key that is not a sealed payload is a database error") {
    TempDir dir;
    auto provider = providers::make_native_file(dir.key_file("key", key_of(1)));
    CHECK(error_of([&] { provider->unwrap(bytes_of("not a payload")); }).first == ExitCode::database);
}

TEST_CASE("a root key file of 31 bytes is a provider error naming the file and size") {
    TempDir dir;
    std::string path = dir.key_file("short.key", key_of(3, 31));
    auto provider = providers::make_native_file(path);
    CHECK(provider->root_key_exists());
    auto [code, message] = error_of([&] { provider->generate_db_key(); });
    CHECK(code == ExitCode::provider);
    CHECK(message == "root key file " + path + " is 31 bytes; a root key must be exactly 32 bytes");
}

TEST_CASE("a missing root key does not exist and cannot unwrap") {
    TempDir dir;
    std::string path = (dir.path / "absent.key").string();
    auto provider = providers::make_native_file(path);
    CHECK_FALSE(provider->root_key_exists());
    auto [code, message] = error_of([&] { provider->unwrap(bytes_of("AAAA")); });
    CHECK(code == ExitCode::provider);
    CHECK(message == "root key file " + path + " does not exist");
}

TEST_CASE("a created root key file is 32 bytes with mode exactly 0600 even with umask 0") {
    TempDir dir;
    std::string path = (dir.path / "infra" / "sqlite3.db.key").string();
    auto provider = providers::make_native_file(path);
    mode_t old = ::umask(0);
    provider->create_root_key();
    ::umask(old);
    struct stat st;
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_size == 32);
    CHECK(provider->root_key().size() == 32);
    // The server would never replace a root key, so neither does create.
    CHECK(error_of([&] { provider->create_root_key(); }).first == ExitCode::refused);
}

TEST_CASE("install_root_key replaces the key and the new key unwraps what it wraps") {
    TempDir dir;
    auto provider = providers::make_native_file(dir.key_file("key", key_of(1)));
    provider->install_root_key(key_of(2));
    CHECK(provider->root_key() == key_of(2));
    Bytes wrapped = provider->wrap(key_of(9));
    CHECK(providers::make_native_in_memory(key_of(2))->unwrap(wrapped) == key_of(9));
    CHECK(error_of([&] { providers::make_native_in_memory(key_of(1))->unwrap(wrapped); }).first == ExitCode::wrong_key);
}

TEST_CASE("a group-readable root key file draws one warning") {
    TempDir dir;
    std::string path = dir.key_file("key", key_of(5), 0640);
    auto provider = providers::make_native_file(path);
    std::string first = stderr_of([&] { provider->root_key(); });
    CHECK(first.find("warning") != std::string::npos);
    CHECK(first.find(path) != std::string::npos);
    CHECK(stderr_of([&] { provider->root_key(); }).empty());
    auto private_key = providers::make_native_file(dir.key_file("private", key_of(5), 0600));
    CHECK(stderr_of([&] { private_key->root_key(); }).empty());
}

TEST_CASE("the factory builds native over the storage named by secretProvider") {
    TempDir dir;
    auto env = [&](const std::string& name) -> std::optional<std::string> {
        if (name == "HOME") return dir.path.string();
        if (name == "ROOT") return std::string(32, 'k');
        return std::nullopt;
    };
    auto cfg = config::parse("dbEncryptionKey: ROOT\nkeys:\n  - kind: native\n    config: {secretProvider: env}\n", "t.yaml", env);
    secrets::SecretStorages storages(cfg, env);
    auto provider = providers::make(cfg, storages);
    CHECK(provider->kind() == "native");
    CHECK(provider->root_key_id() == "ROOT");
    CHECK(provider->describe() == "native root key env ROOT");
    CHECK(provider->unwrap(provider->wrap(key_of(4))) == key_of(4));

    auto defaults = config::load(std::nullopt, env);
    secrets::SecretStorages plain(defaults, env);
    auto file_provider = providers::make(defaults, plain);
    CHECK(file_provider->root_key_id() == (dir.path / ".infra" / "sqlite3.db.key").string());
    CHECK_FALSE(file_provider->root_key_exists());
}
