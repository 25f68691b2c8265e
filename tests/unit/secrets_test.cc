// Secret references (docs/infra-format.md §2): the built-in storages, their base64 options, and the Kubernetes name rules.
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>

#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "config/config.h"
#include "secrets/builtin.h"
#include "secrets/kubeconfig.h"
#include "secrets/secret_store.h"
#include "util/error.h"
#include "temp_dir.h"

using namespace ik;
namespace fs = std::filesystem;
using namespace std::string_literals;

namespace {

config::Environment env_of(std::map<std::string, std::string> vars) {
    return [vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

config::Config with_secrets(const std::string& yaml) { return config::parse(yaml, "test.yaml", env_of({{"HOME", "/h"}})); }

using test::TempDir;

ExitCode code_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const Error& e) {
        return e.code();
    }
    return ExitCode::ok;
}

std::string message_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("a reference without a colon is the plaintext value itself") {
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    CHECK(storages.resolve_text("hunter2") == "hunter2");
    CHECK(storages.resolve_text("") == "");
    CHECK(storages.resolve_text("plaintext:a:b") == "a:b");
}

TEST_CASE("env references read the variable and a missing one is a usage error naming it") {
    secrets::SecretStorages storages(config::Config{}, env_of({{"PGPASS", "s3cret"}}));
    CHECK(storages.resolve_text("env:PGPASS") == "s3cret");
    CHECK(code_of([&] { storages.resolve("env:NOPE"); }) == ExitCode::usage);
    CHECK(message_of([&] { storages.resolve("env:NOPE"); }) == "secret env:NOPE not found");
}

TEST_CASE("file references read the whole file without trimming") {
    TempDir dir;
    std::string path = dir.file("token", "abc\n\0x"s);
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    CHECK(storages.resolve_text("file:" + path) == "abc\n\0x"s);
    CHECK(code_of([&] { storages.resolve("file:" + (dir.path / "missing").string()); }) == ExitCode::usage);
}

TEST_CASE("a file storage with a path joins the name to that directory") {
    TempDir dir;
    dir.file("db-password", "pw");
    auto cfg = with_secrets("secrets:\n  - kind: file\n    name: mounted\n    config:\n      path: " + dir.path.string() + "\n");
    secrets::SecretStorages storages(cfg, env_of({}));
    CHECK(storages.resolve_text("mounted:db-password") == "pw");
    CHECK(storages.named("mounted").describe("db-password") == "file " + (dir.path / "db-password").string());
}

TEST_CASE("base64 options decode env, file and plaintext values") {
    const std::string hi_qq = "hi?\?>>";  // encodes with both + and / (- and _ in the URL alphabet)
    TempDir dir;
    std::string std_file = dir.file("std", "aGk/Pz4+\n");  // "hi?\?>>" with a trailing newline, as `base64` writes
    auto cfg = with_secrets(
        "secrets:\n"
        "  - {kind: env, name: b64, base64: true}\n"
        "  - {kind: env, name: b64url, base64: true, base64URLEncoded: true}\n"
        "  - {kind: env, name: b64raw, base64: true, base64Raw: true}\n"
        "  - {kind: file, name: b64file, config: {base64: true}}\n"
        "  - {kind: plaintext, name: b64plain, base64: true}\n");
    secrets::SecretStorages storages(cfg, env_of({{"STD", "aGk/Pz4+"}, {"URL", "aGk_Pz4-"}, {"RAW", "aGk"}, {"PAD", "aGk="}}));
    CHECK(storages.resolve_text("b64:STD") == hi_qq);
    CHECK(storages.resolve_text("b64:PAD") == "hi");
    CHECK(storages.resolve_text("b64url:URL") == hi_qq);
    CHECK(storages.resolve_text("b64raw:RAW") == "hi");
    CHECK(storages.resolve_text("b64file:" + std_file) == hi_qq);
    CHECK(storages.resolve_text("b64plain:aGk=") == "hi");
    // Each variant refuses the other's alphabet or padding.
    CHECK(code_of([&] { storages.resolve("b64:URL"); }) == ExitCode::usage);
    CHECK(code_of([&] { storages.resolve("b64:RAW"); }) == ExitCode::usage);
    CHECK(code_of([&] { storages.resolve("b64raw:PAD"); }) == ExitCode::usage);
}

TEST_CASE("a base64 error never shows a plaintext value") {
    auto cfg = with_secrets("secrets:\n  - {kind: plaintext, name: p, base64: true}\n");
    secrets::SecretStorages storages(cfg, env_of({}));
    std::string message = message_of([&] { storages.resolve("p:not*base64*TOPSECRET"); });
    CHECK_FALSE(message.empty());
    CHECK(message.find("TOPSECRET") == std::string::npos);
}

TEST_CASE("encode and decode round-trip every base64 variant") {
    SecretBytes value;
    for (int i = 0; i < 40; ++i) value.push_back(static_cast<uint8_t>(i * 37 + 250));
    for (auto e : {secrets::Encoding::std_padded, secrets::Encoding::std_raw, secrets::Encoding::url_padded,
                   secrets::Encoding::url_raw}) {
        for (size_t n = 0; n <= value.size(); ++n) {
            SecretBytes part(value.begin(), value.begin() + static_cast<long>(n));
            CHECK(secrets::decode(e, secrets::encode(e, part), "x") == part);
        }
    }
}

TEST_CASE("a secrets entry may redefine a built-in storage name") {
    auto cfg = with_secrets("secrets:\n  - {kind: env, name: file}\n");
    secrets::SecretStorages storages(cfg, env_of({{"X", "from-env"}}));
    CHECK(storages.named("file").kind() == "env");
    CHECK(storages.resolve_text("file:X") == "from-env");
}

TEST_CASE("an unknown storage is a usage error that does not echo a value-like prefix") {
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    CHECK(message_of([&] { storages.resolve("mystore:x"); }).find("\"mystore\"") != std::string::npos);
    std::string odd = message_of([&] { storages.resolve("p@ss w0rd:rest"); });
    CHECK_FALSE(odd.empty());
    CHECK(odd.find("p@ss") == std::string::npos);
}

TEST_CASE("file storage writes are 0600 in a 0700 directory it creates, even with umask 0") {
    TempDir dir;
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    std::string path = (dir.path / "new" / "key").string();
    mode_t old = ::umask(0);
    storages.named("file").set(path, SecretBytes{1, 2, 3});
    ::umask(old);
    struct stat st;
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    REQUIRE(::stat((dir.path / "new").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    CHECK(storages.named("file").get(path) == SecretBytes{1, 2, 3});
    CHECK(storages.named("file").names_with_prefix(path) == std::vector<std::string>{path});
    storages.named("file").remove(path);
    CHECK_FALSE(storages.named("file").get(path).has_value());
}

TEST_CASE("a file secret is created only where none exists, and renamed over another in one step") {
    TempDir dir;
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    auto& files = storages.named("file");
    std::string key = (dir.path / "root.key").string(), next = key + ".new";
    files.create(key, SecretBytes{1});
    CHECK(code_of([&] { files.create(key, SecretBytes{2}); }) == ExitCode::refused);
    CHECK(files.get(key) == SecretBytes{1});
    files.create(next, SecretBytes{2});
    files.rename(next, key);
    CHECK(files.get(key) == SecretBytes{2});
    CHECK_FALSE(files.get(next).has_value());
    CHECK(code_of([&] { files.rename(next, key); }) == ExitCode::provider);
}

TEST_CASE("env and plaintext storages refuse writes") {
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    CHECK(code_of([&] { storages.named("env").set("X", SecretBytes{1}); }) == ExitCode::usage);
    CHECK(code_of([&] { storages.named("plaintext").set("X", SecretBytes{1}); }) == ExitCode::usage);
}

TEST_CASE("kubernetes names replace characters outside [-._a-zA-Z0-9/] and need exactly one slash") {
    CHECK(secrets::kubernetes_secret_name("infra-x/__root_key") == "infra-x/__root_key");
    CHECK(secrets::kubernetes_secret_name("aws kms/access:key") == "aws_kms/access_key");
    CHECK(secrets::kubernetes_secret_name("é/k") == "__/k");
    CHECK(code_of([] { secrets::kubernetes_secret_name("no-slash"); }) == ExitCode::usage);
    CHECK(code_of([] { secrets::kubernetes_secret_name("a/b/c"); }) == ExitCode::usage);
}

TEST_CASE("the kubernetes storage exists only in a cluster, with a kubeconfig, or when configured") {
    CHECK_FALSE(secrets::SecretStorages(config::Config{}, env_of({})).has("kubernetes"));
    CHECK(secrets::SecretStorages(config::Config{}, env_of({{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}})).has("kubernetes"));
    CHECK(secrets::SecretStorages(config::Config{}, env_of({{"KUBECONFIG", "/k"}})).has("kubernetes"));
    CHECK(secrets::SecretStorages(with_secrets("secrets:\n  - kind: kubernetes\n"), env_of({})).has("kubernetes"));
    secrets::SecretStorages none(config::Config{}, env_of({}));
    CHECK(code_of([&] { none.resolve("kubernetes:a/b"); }) == ExitCode::usage);
}

TEST_CASE("vault, awsssm and awssecretsmanager storages load but are refused when used") {
    auto cfg = with_secrets("secrets:\n  - kind: vault\n    name: v\n  - kind: awsssm\n  - kind: awssecretsmanager\n");
    secrets::SecretStorages storages(cfg, env_of({}));
    for (const char* ref : {"v:x", "awsssm:x", "awssecretsmanager:x"}) {
        std::string message = message_of([&] { storages.resolve(ref); });
        CHECK(message.find("not supported") != std::string::npos);
        CHECK(code_of([&] { storages.resolve(ref); }) == ExitCode::usage);
    }
}

TEST_CASE("a kubeconfig that is not a mapping, or whose fields have the wrong shape, is a usage error") {
    for (const char* text : {"just a scalar", "42", "- a\n- b\n", "", "~", "current-context: [a]\n",
                             "current-context: c\ncontexts: 5\n", "current-context: c\ncontexts:\n- name: [x]\n",
                             "current-context: c\ncontexts:\n- name: c\n  context: scalar\n",
                             "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters: {k: 1}\n",
                             "{unclosed"}) {
        CAPTURE(text);
        CHECK(code_of([&] { secrets::kubeconfig_from_text(text, "/tmp/kubeconfig"); }) == ExitCode::usage);
    }
}

TEST_CASE("every directory created for a key file is 0700, not only the last one; existing ones keep their mode") {
    TempDir dir;
    REQUIRE(::chmod(dir.path.c_str(), 0755) == 0);
    secrets::SecretStorages storages(config::Config{}, env_of({}));
    std::string path = (dir.path / "a" / "b" / "c" / "key").string();
    mode_t old = ::umask(0);
    storages.named("file").set(path, SecretBytes{1, 2, 3});
    ::umask(old);
    struct stat st;
    for (auto sub : {dir.path / "a", dir.path / "a" / "b", dir.path / "a" / "b" / "c"}) {
        CAPTURE(sub.string());
        REQUIRE(::stat(sub.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0700);
    }
    REQUIRE(::stat(dir.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
}
